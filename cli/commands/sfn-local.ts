import { resolve } from "node:path";
import { createSfnEngine } from "../../infra/local/sfn/engine.js";
import { startSfnServer } from "../../infra/local/sfn/server.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";

const USAGE = `usage: gangway sfn-local [--port N] [--state-dir DIR] [--host ADDR] [--lambda NAME=URL]...

Serve the embedded Step Functions engine (the AWS Step Functions API, JSON 1.0) until SIGINT/SIGTERM.
Prints one JSON line {"ready":true,"sfnEndpoint":URL} once it accepts requests.

  --port N          port to listen on (default 0: an ephemeral port)
  --host ADDR       address to bind (default 127.0.0.1)
  --state-dir DIR   where executions are kept (default .gangway/sfn); running ones resume on restart
  --lambda NAME=URL serve Lambda function NAME (Task states) by POSTing its payload to URL; repeatable
`;

function parseArgs(argv: string[]): {
  port: number;
  host: string;
  stateDir: string;
  lambdas: Record<string, string>;
} {
  const out = { port: 0, host: "127.0.0.1", stateDir: ".gangway/sfn", lambdas: {} as Record<string, string> };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === "--port") {
      const v = value();
      const n = Number(v);
      if (!/^\d+$/.test(v) || n > 65535)
        throw new UsageError(`--port: expected an integer 0-65535, got ${JSON.stringify(v)}`);
      out.port = n;
    } else if (a === "--host") out.host = value();
    else if (a === "--state-dir") out.stateDir = value();
    else if (a === "--lambda") {
      const v = value();
      const m = /^([A-Za-z0-9_-]{1,64})=(https?:\/\/.+)$/.exec(v);
      if (!m) throw new UsageError(`--lambda: expected NAME=http(s)://…, got ${JSON.stringify(v)}`);
      out.lambdas[m[1] as string] = m[2] as string;
    } else throw new UsageError(`unknown argument ${JSON.stringify(a)}\n\n${USAGE}`);
  }
  return out;
}

/** `gangway sfn-local`: the embedded Step Functions engine on its own. */
export const command: CliCommand = {
  name: "sfn-local",
  summary: "serve the embedded Step Functions engine (AWS Step Functions API)",
  usage: USAGE,
  async run(ctx) {
    const args = parseArgs(ctx.argv);
    const engine = await createSfnEngine({
      stateDir: resolve(ctx.cwd, args.stateDir),
      lambdas: args.lambdas,
      log: (line) => ctx.stderr(`sfn-local: ${line}\n`),
    });
    const server = await startSfnServer({ engine, port: args.port, host: args.host });
    ctx.stdout(`${JSON.stringify({ ready: true, sfnEndpoint: server.url })}\n`);
    await new Promise<void>((done) => {
      if (ctx.signal.aborted) done();
      else ctx.signal.addEventListener("abort", () => done(), { once: true });
    });
    await server.close();
    await engine.close();
    return EXIT.ok;
  },
};
