import { resolve } from "node:path";
import { createSfnEngine } from "../../infra/local/sfn/engine.js";
import { startSfnServer } from "../../infra/local/sfn/server.js";
import { type CliCommand, EXIT, parseCommandArgs, UsageError } from "../command.js";

const USAGE = `usage: gangway sfn-local [--port N] [--state-dir DIR] [--host ADDR] [--lambda NAME=URL]...

Serve the embedded Step Functions engine (the AWS Step Functions API, JSON 1.0) until SIGINT/SIGTERM.
Prints one JSON line {"ready":true,"sfnEndpoint":URL} once it accepts requests.

  --port N          port to listen on (default 0: an ephemeral port)
  --host ADDR       address to bind (default 127.0.0.1)
  --state-dir DIR   where executions are kept (default .gangway-sfn, apart from \`gangway up\`'s
                    engine); running ones resume on restart
  --lambda NAME=URL serve Lambda function NAME (Task states) by POSTing its payload to URL; repeatable
`;

/** The state dir when none is given: not `gangway up`'s (.gangway/sfn is its engine's journal). */
const DEFAULT_STATE_DIR = ".gangway-sfn";

/** The command line, checked: port, host, state dir and the Lambda functions' URLs by name. */
function parseOptions(argv: string[]): {
  port: number;
  host: string;
  stateDir: string;
  lambdas: Record<string, string>;
} {
  const { values } = parseCommandArgs(
    {
      args: argv,
      options: {
        port: { type: "string", default: "0" },
        host: { type: "string", default: "127.0.0.1" },
        "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
        lambda: { type: "string", multiple: true, default: [] },
      },
    },
    USAGE,
  );
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535)
    throw new UsageError(`--port: expected an integer 0-65535, got ${JSON.stringify(values.port)}`);
  const lambdas: Record<string, string> = {};
  for (const v of values.lambda) {
    const m = /^([A-Za-z0-9_-]{1,64})=(https?:\/\/.+)$/.exec(v);
    if (!m) throw new UsageError(`--lambda: expected NAME=http(s)://…, got ${JSON.stringify(v)}`);
    lambdas[m[1] as string] = m[2] as string;
  }
  return { port, host: values.host, stateDir: values["state-dir"], lambdas };
}

/** `gangway sfn-local`: the embedded Step Functions engine on its own. */
export const command: CliCommand = {
  name: "sfn-local",
  summary: "serve the embedded Step Functions engine (AWS Step Functions API)",
  usage: USAGE,
  async run(ctx) {
    const args = parseOptions(ctx.argv);
    const engine = await createSfnEngine({
      stateDir: resolve(ctx.cwd, args.stateDir),
      lambdas: args.lambdas,
      log: (line) => ctx.stderr(`sfn-local: ${line}\n`),
    });
    // Closed however this ends (a --port in use too): the engine holds its state dir's journal.
    try {
      const server = await startSfnServer({ engine, port: args.port, host: args.host });
      if (!ctx.signal.aborted) ctx.stdout(`${JSON.stringify({ ready: true, sfnEndpoint: server.url })}\n`);
      await new Promise<void>((done) => {
        if (ctx.signal.aborted) done();
        else ctx.signal.addEventListener("abort", () => done(), { once: true });
      });
      await server.close();
    } finally {
      await engine.close();
    }
    return EXIT.ok;
  },
};
