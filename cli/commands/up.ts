import { parseArgs } from "node:util";
import { startLocalStack } from "../../infra/local/stack.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";

const USAGE = `usage: gangway up [--cluster SPEC] [--state-dir DIR] [--port N] [--provisioning-delay MS] [--verbose]

Start the embedded stack: the Step Functions engine, the Pub/Sub emulator, the step functions,
the ingest API and a local cluster; register the state machine gangway-multislice; create the
topics and push subscriptions. Prints one JSON line when ready:
  {"ready":true,"api":URL,"sfnEndpoint":URL,"pubsubEmulatorHost":"host:port","stateMachineArn":ARN,"projectId":ID}
Ctrl-C stops everything and leaves no process behind. Started again on the same --state-dir,
running jobs go on.

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
    await new Promise<void>((done) => {
      if (ctx.signal.aborted) done();
      else ctx.signal.addEventListener("abort", () => done(), { once: true });
    });
    await stack.close();
    return EXIT.ok;
  },
};
