import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultWorkDir, eventSinkFromFlags, readTokenFile } from "../../infra/agent/cli-support.js";
import { GCE_PREEMPTED_URL } from "../../infra/agent/preemption-probe.js";
import { startAgentServer } from "../../infra/agent/server.js";
import { type CliCommand, EXIT, UsageError, withStopBeforeExit } from "../command.js";

const USAGE = `usage: gangway agent --listen HOST:PORT --token-file F [options]

Run a host agent: the gRPC service (agent.proto) that leases this host to one job attempt, runs the
workload as a process group, cancels it, reports its exit and result, and watches for preemption.
Prints one JSON line {"ready":true,"address":"HOST:PORT"} once it serves; stops on SIGINT/SIGTERM
(cancelling the workload first).

  --listen HOST:PORT       address to serve on (port 0: any free port, printed)
  --token-file F           file whose first line is the bearer token every call must carry
  --tls-cert F --tls-key F serve TLS with this PEM cert and key
  --work-dir DIR           run directories (result and error files), held by this agent alone;
                           default $TMPDIR/gangway-agent-<host>-<port> (one per --listen)
  --lockfile F             libtpu lockfile deleted before every run (default /tmp/libtpu_lockfile)
  --kill-vfio-holders      SIGKILL processes holding /dev/vfio before every run (default off)
  --grace-ms N             SIGTERM → SIGKILL grace (default 5000)
  --preemption-url URL     metadata endpoint to watch (default the GCE one)
  --no-preemption-probe    do not poll for preemption
  --pubsub-project P       publish events to Pub/Sub in project P (PUBSUB_EMULATOR_HOST honoured)
  --events-file F          append events as JSON lines to F instead`;

/** `gangway agent`: one host agent as its own process. */
export const command: CliCommand = {
  name: "agent",
  summary: "run a host agent (gRPC): leases, runs, cancels and reports workloads on this host",
  usage: USAGE,
  async run(ctx) {
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: ctx.argv,
        options: {
          listen: { type: "string" },
          "token-file": { type: "string" },
          "tls-cert": { type: "string" },
          "tls-key": { type: "string" },
          "work-dir": { type: "string" },
          lockfile: { type: "string" },
          "kill-vfio-holders": { type: "boolean", default: false },
          "grace-ms": { type: "string" },
          "preemption-url": { type: "string" },
          "no-preemption-probe": { type: "boolean", default: false },
          "pubsub-project": { type: "string" },
          "events-file": { type: "string" },
        },
      }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    const str = (k: string) => values[k] as string | undefined;
    const listen = str("listen");
    const tokenFile = str("token-file");
    if (!listen || !/^.+:\d+$/.test(listen)) throw new UsageError(`--listen: expected HOST:PORT\n\n${USAGE}`);
    if (!tokenFile) throw new UsageError(`--token-file is required\n\n${USAGE}`);
    if (!!str("tls-cert") !== !!str("tls-key")) throw new UsageError("--tls-cert and --tls-key go together");
    const graceMs = str("grace-ms") === undefined ? undefined : Number(str("grace-ms"));
    if (graceMs !== undefined && (!Number.isInteger(graceMs) || graceMs < 0))
      throw new UsageError(`--grace-ms: expected a whole number ≥ 0, got ${str("grace-ms")}`);
    let token: string;
    try {
      token = readTokenFile(resolve(ctx.cwd, tokenFile));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const path = (k: string) => (str(k) ? resolve(ctx.cwd, str(k) as string) : undefined);
    const tlsCert = path("tls-cert");
    const tlsKey = path("tls-key");
    const events = eventSinkFromFlags(
      { pubsubProject: str("pubsub-project"), eventsFile: str("events-file") },
      ctx.cwd,
    );
    // Until the agent is closed, a second Ctrl-C must not kill this process: its workload would live on.
    await withStopBeforeExit(
      () =>
        startAgentServer({
          listen,
          token,
          tls: tlsCert && tlsKey ? { cert: readFileSync(tlsCert), key: readFileSync(tlsKey) } : undefined,
          workDir: path("work-dir") ?? defaultWorkDir(listen),
          lockfilePath: path("lockfile"),
          killVfioHolders: values["kill-vfio-holders"] === true,
          graceMs,
          killLeftovers: true,
          eventSink: events.sink,
          preemptionProbe: values["no-preemption-probe"]
            ? false
            : { url: str("preemption-url") ?? GCE_PREEMPTED_URL },
          log: (line) => ctx.stderr(`${line}\n`),
        }),
      async (server) => {
        if (ctx.signal.aborted) return;
        ctx.stdout(`${JSON.stringify({ ready: true, address: server.address })}\n`);
        await new Promise<void>((done) => ctx.signal.addEventListener("abort", () => done(), { once: true }));
      },
      async (server) => {
        await server.close();
        await events.close();
      },
    );
    return EXIT.ok;
  },
};
