import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_STATE_FILE,
  removeClusterState,
  writeClusterState,
} from "../../infra/local/cluster/state-file.js";
import { startLocalStack } from "../../infra/local/stack.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";

const USAGE = `usage: gangway up [--cluster SPEC] [--state-dir DIR] [--port N] [--provisioning-delay MS] [--verbose]

Start the embedded stack: the Step Functions engine, the Pub/Sub emulator, the step functions,
the ingest API and a local cluster; register the state machine gangway-multislice; create the
topics and push subscriptions. Prints one JSON line when ready:
  {"ready":true,"api":URL,"sfnEndpoint":URL,"pubsubEmulatorHost":"host:port","stateMachineArn":ARN,"projectId":ID}
Ctrl-C stops everything and leaves no process behind. Started again on the same --state-dir,
running jobs go on. \`gangway preempt <slice>\` injects a preemption into its local cluster;
\`gangway submit|status|logs|cancel|history\` find its API in --state-dir.

  --cluster SPEC            local cluster, e.g. v4-16x2,v4-8x1 (default v4-16x2)
  --state-dir DIR           where state lives (default .gangway)
  --port N                  port of the API (default: any free port)
  --provisioning-delay MS   time for a new or replacement slice to come up (default 1000)
  --verbose                 log what the stack does to stderr`;

/** `gangway up`: the embedded stack. */
export const command: CliCommand = {
  name: "up",
  summary: "start the embedded stack (engine, Pub/Sub, functions, local cluster)",
  usage: USAGE,
  async run(ctx) {
    let values: {
      cluster: string;
      "state-dir": string;
      port?: string;
      "provisioning-delay": string;
      verbose: boolean;
    };
    try {
      values = parseArgs({
        args: ctx.argv,
        options: {
          cluster: { type: "string", default: "v4-16x2" },
          "state-dir": { type: "string", default: ".gangway" },
          port: { type: "string" },
          "provisioning-delay": { type: "string", default: "1000" },
          verbose: { type: "boolean", default: false },
        },
      }).values as typeof values;
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    const port = values.port === undefined ? 0 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535)
      throw new UsageError(`--port: expected 0 to 65535, got ${values.port}`);
    const delay = Number(values["provisioning-delay"]);
    if (!Number.isFinite(delay) || delay < 0)
      throw new UsageError(
        `--provisioning-delay: expected milliseconds ≥ 0, got ${values["provisioning-delay"]}`,
      );
    const stack = await startLocalStack({
      cluster: values.cluster,
      stateDir: values["state-dir"],
      port,
      provisioningDelayMs: delay,
      workloadCwd: ctx.cwd,
      log: values.verbose ? (line) => ctx.stderr(`${line}\n`) : undefined,
    });
    ctx.stdout(`${JSON.stringify(stack.readyLine())}\n`);
    // So that a plain `gangway preempt <slice>` finds this stack's cluster.
    const stateDir = resolve(ctx.cwd, values["state-dir"]);
    const { readFile } = await import("node:fs/promises");
    const cluster = JSON.parse(await readFile(join(stateDir, "cluster.json"), "utf8")) as Parameters<
      typeof writeClusterState
    >[1];
    writeClusterState(DEFAULT_STATE_FILE, cluster);
    await new Promise<void>((done) => {
      if (ctx.signal.aborted) done();
      else ctx.signal.addEventListener("abort", () => done(), { once: true });
    });
    removeClusterState(DEFAULT_STATE_FILE);
    await stack.close();
    return EXIT.ok;
  },
};
