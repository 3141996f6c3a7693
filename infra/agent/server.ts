import * as grpc from "@grpc/grpc-js";
import { createAgentClient } from "../../functions/clients/agent/client.js";
import type { Clock } from "./clock.js";
import type { EventSink } from "./events.js";
import { HostAgentService } from "./grpc-service.js";
import { HostAgent, type HostAgentOptions } from "./host-agent.js";
import { claimWorkDir, killLeftoverRuns, type WorkDirClaim } from "./leftovers.js";
import { isPreempted, type PreemptionProbe, startPreemptionProbe } from "./preemption-probe.js";

/** PEM cert and key the agent serves TLS with. */
export interface AgentTls {
  cert: Buffer | string;
  key: Buffer | string;
}

/** Options of {@link startAgentServer}. */
export interface AgentServerOptions
  extends Omit<HostAgentOptions, "address" | "eventSink" | "clock" | "killVfioHolders" | "lockfilePath"> {
  /** `host:port` to bind (port 0: any free port). The host part is also the host's address. */
  listen: string;
  /** Bearer token every call must carry. */
  token: string;
  tls?: AgentTls | undefined;
  lockfilePath?: string | undefined;
  killVfioHolders?: boolean | undefined;
  eventSink?: EventSink | undefined;
  /** Poll the metadata endpoint for preemption (`false`: never; the local provider injects instead). */
  preemptionProbe?: false | { url?: string; intervalMs?: number; timeoutMs?: number } | undefined;
  clock?: Clock | undefined;
  /** Largest request accepted (default 8 MiB). */
  maxMessageBytes?: number | undefined;
  /**
   * Claim `workDir` for this agent alone (a second agent on it fails with WorkDirInUse), then,
   * before serving, SIGKILL workloads a previous (crashed) agent with the same `workDir` left
   * running and wait until they are gone (default off: one scan of /proc per agent; `gangway
   * agent` turns it on).
   */
  killLeftovers?: boolean | undefined;
  /** Most Watch streams open at once (default 64); more are refused with RESOURCE_EXHAUSTED. */
  maxWatchStreams?: number | undefined;
  /** CA of the peers' TLS certs, when a slice head reaches peers that serve TLS (default: `tls.cert`). */
  peerCa?: Buffer | string | undefined;
}

/** A running agent server. */
export interface AgentServerHandle {
  /** `host:port` it serves on (the real port when asked for port 0). */
  address: string;
  agent: HostAgent;
  /** Graceful stop: the workload is cancelled (SIGTERM, grace, SIGKILL), the server shut down. */
  close(): Promise<void>;
  /** Die as a VM does: workloads SIGKILLed, connections dropped, nothing published. */
  kill(): Promise<void>;
}

function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen);
  if (!m?.[1] || m[2] === undefined)
    throw new Error(`listen: expected HOST:PORT, got ${JSON.stringify(listen)}`);
  return { host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/**
 * Start a host agent serving gRPC on `listen`.
 *
 * @example
 * const agent = await startAgentServer({ listen: "127.0.1.1:0", token, workDir: "/tmp/gw" });
 * // … createAgentClient(agent.address, { token })
 * await agent.close();
 */
export async function startAgentServer(options: AgentServerOptions): Promise<AgentServerHandle> {
  const { host } = splitHostPort(options.listen);
  // Leftovers are matched by work dir alone: only an agent that holds its dir may kill them, or a
  // second agent on the same dir would kill the first one's live workloads.
  const claim = options.killLeftovers ? await claimWorkDir(options.workDir) : undefined;
  try {
    if (options.killLeftovers) {
      const { groups, remaining } = await killLeftoverRuns(options.workDir);
      if (groups.length > 0)
        options.log?.(`killed ${groups.length} workload group(s) left by a previous agent`);
      if (remaining.length > 0)
        options.log?.(`left by a previous agent and still there after SIGKILL: pids ${remaining.join(", ")}`);
    }
    return await serve(options, host, claim);
  } catch (e) {
    await claim?.release();
    throw e;
  }
}

async function serve(
  options: AgentServerOptions,
  host: string,
  claim: WorkDirClaim | undefined,
): Promise<AgentServerHandle> {
  const peerCa = options.peerCa ?? options.tls?.cert;
  const probeConfig = options.preemptionProbe || undefined;
  const agent = new HostAgent({
    // A slice head reaches its peers with the same token (and TLS trust) it serves with.
    peerClients: (peer: string) =>
      createAgentClient(peer, {
        token: options.token,
        tls: peerCa ? { ca: peerCa } : undefined,
        deadlineMs: 5000,
      }),
    ...options,
    address: host,
    eventSink: options.eventSink,
    clock: options.clock,
    lockfilePath: options.lockfilePath,
    killVfioHolders: options.killVfioHolders,
    // With a probe configured, a failing workload's host is asked once more whether it is preempted.
    metadataPreempted: probeConfig ? () => isPreempted(probeConfig.url, probeConfig.timeoutMs) : undefined,
  } as HostAgentOptions);
  const service = new HostAgentService(agent, {
    token: options.token,
    log: options.log,
    maxWatchStreams: options.maxWatchStreams,
  });
  const maxBytes = options.maxMessageBytes ?? 8 * 1024 * 1024;
  // Channelz stays on here: without it grpc-js (1.14) does not track sessions, and
  // forceShutdown (a killed agent) would leave open connections answering.
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
  });
  service.addToServer(server);
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(
        null,
        [{ private_key: Buffer.from(options.tls.key), cert_chain: Buffer.from(options.tls.cert) }],
        false,
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listen, credentials, (err, p) => (err ? reject(err) : resolve(p)));
  }).catch((e: unknown) => {
    server.forceShutdown(); // nothing half-bound stays behind
    throw e;
  });
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  agent.agent = address;
  await claim?.noteAddress(address);

  let probe: PreemptionProbe | undefined;
  if (options.preemptionProbe) {
    probe = startPreemptionProbe({
      ...options.preemptionProbe,
      onPreempted: () => agent.reportPreemption("metadata endpoint says the VM is preempted"),
    });
  }

  const shutdown = () =>
    new Promise<void>((resolve) => {
      service.endStreams();
      // tryShutdown waits for calls in flight; force it after a short while so close() always ends.
      const force = setTimeout(() => server.forceShutdown(), 2000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  let closing: Promise<void> | undefined;
  return {
    address,
    agent,
    close() {
      closing ??= (async () => {
        probe?.stop();
        await agent.close();
        await shutdown();
        await claim?.release();
      })();
      return closing;
    },
    kill() {
      closing ??= (async () => {
        probe?.stop();
        server.forceShutdown();
        await agent.kill();
        // A dead VM's lock goes with it: a replacement agent on the same dir may start.
        await claim?.release();
      })();
      return closing;
    },
  };
}
