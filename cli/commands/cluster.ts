import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { eventSinkFromFlags, readTokenFile } from "../../infra/agent/cli-support.js";
import { ensureEventTopics } from "../../infra/agent/pubsub-event-sink.js";
import { startClusterAdmin } from "../../infra/local/cluster/admin-server.js";
import { createLocalProvider } from "../../infra/local/cluster/local-provider.js";
import {
  DEFAULT_STATE_FILE,
  removeClusterState,
  writeClusterState,
} from "../../infra/local/cluster/state-file.js";
import { type CliCommand, EXIT, UsageError, withStopBeforeExit } from "../command.js";
import { clusterOption } from "../options.js";

const USAGE = `usage: gangway cluster --cluster SPEC [options]

Bring up a local cluster alone: every simulated host is a host agent on its own loopback address
(127.0.1.x) and port, all in this process; workloads are real child processes. Prints one JSON line
{"ready":true,"slices":[{"name","type","kind","hosts":[{"address","workerId","agent"}]}],
 "admin":URL,"tokenFile":F,"stateFile":F} and serves until SIGINT/SIGTERM, then stops every agent
and workload. \`gangway preempt <slice>\` finds it through the state file (or --admin URL).

  --cluster SPEC              slices, e.g. v4-16x2,v4-8x1 · cpux4 · gpu-h100-8x2
  --token-file F              bearer token of the agents and the admin API (default: a new random
                              token written to <work-dir>/token, mode 0600)
  --work-dir DIR              run directories (default: a new directory under $TMPDIR, removed on exit)
  --provisioning-delay-ms N   time for requested or replacement slices to come up (default 0)
  --max-hosts N               quota: most hosts at once
  --state-file F              where to say how to reach this cluster (default ${DEFAULT_STATE_FILE})
  --pubsub-project P          publish host events and notices to Pub/Sub (PUBSUB_EMULATOR_HOST honoured)
  --events-file F             append events as JSON lines to F instead`;

const wholeNumber = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag}: expected a whole number ≥ 0, got ${v}`);
  return n;
};

/** `gangway cluster`: the embedded local cluster as its own process. */
export const command: CliCommand = {
  name: "cluster",
  summary: "bring up a local cluster of simulated hosts (one agent per loopback address)",
  usage: USAGE,
  async run(ctx) {
    let values: Record<string, string | undefined>;
    try {
      ({ values } = parseArgs({
        args: ctx.argv,
        options: {
          cluster: { type: "string" },
          "token-file": { type: "string" },
          "work-dir": { type: "string" },
          "provisioning-delay-ms": { type: "string" },
          "max-hosts": { type: "string" },
          "state-file": { type: "string" },
          "pubsub-project": { type: "string" },
          "events-file": { type: "string" },
        },
      }) as { values: Record<string, string | undefined> });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    if (!values.cluster) throw new UsageError(`--cluster is required\n\n${USAGE}`);
    const pools = clusterOption(values.cluster);
    const delay = wholeNumber("--provisioning-delay-ms", values["provisioning-delay-ms"]);
    const maxHosts = wholeNumber("--max-hosts", values["max-hosts"]);
    const workDir = values["work-dir"]
      ? resolve(ctx.cwd, values["work-dir"])
      : mkdtempSync(join(tmpdir(), "gangway-cluster-"));
    mkdirSync(workDir, { recursive: true });
    let tokenFile: string;
    let token: string;
    if (values["token-file"]) {
      tokenFile = resolve(ctx.cwd, values["token-file"]);
      try {
        token = readTokenFile(tokenFile);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    } else {
      token = randomBytes(24).toString("base64url");
      tokenFile = join(workDir, "token");
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    }
    const stateFile = resolve(ctx.cwd, values["state-file"] ?? DEFAULT_STATE_FILE);
    const events = eventSinkFromFlags(
      { pubsubProject: values["pubsub-project"], eventsFile: values["events-file"] },
      ctx.cwd,
    );
    // A local cluster owns its local topics (on an emulator nobody else creates them) — in the
    // background: the emulator may come up after the cluster (`gangway up --inventory` needs the
    // cluster's addresses first), and events published before that are retried by the client.
    if (events.pubsub) {
      ensureEventTopics(events.pubsub).catch((e: unknown) =>
        ctx.stderr(`could not create the event topics: ${(e as Error).message}\n`),
      );
    }
    // Until the cluster is closed, a second Ctrl-C must not kill this process: its workloads would live on.
    await withStopBeforeExit(
      () =>
        createLocalProvider({
          pools,
          token,
          workDir,
          eventSink: events.sink,
          provisioningDelayMs: delay,
          quota: maxHosts === undefined ? undefined : { maxHosts },
          log: (line) => ctx.stderr(`${line}\n`),
        }),
      async (provider) => {
        const admin = await startClusterAdmin(provider, { token });
        try {
          writeClusterState(stateFile, { admin: admin.url, tokenFile, pid: process.pid });
          if (!ctx.signal.aborted) {
            const slices = provider.listSlices();
            ctx.stdout(
              `${JSON.stringify({ ready: true, slices, admin: admin.url, tokenFile, stateFile })}\n`,
            );
            await new Promise<void>((done) =>
              ctx.signal.addEventListener("abort", () => done(), { once: true }),
            );
          }
        } finally {
          removeClusterState(stateFile);
          await admin.close();
        }
      },
      async (provider) => {
        await provider.close();
        await events.close();
        // A work dir of our own making (runs, the generated token) goes with the cluster.
        if (!values["work-dir"]) rmSync(workDir, { recursive: true, force: true });
      },
    );
    return EXIT.ok;
  },
};
