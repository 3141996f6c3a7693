import { resolve } from "node:path";
import { startPubSubEmulator } from "../../infra/local/pubsub/emulator.js";
import { type CliCommand, type CliContext, EXIT, UsageError } from "../command.js";

const usage = `usage: gangway pubsub-emulator [--port N] [--state-dir DIR] [--verbose]

Run the embedded Google Cloud Pub/Sub emulator (Publisher and Subscriber gRPC services) on
127.0.0.1. Prints one JSON line {"ready":true,"pubsubEmulatorHost":"127.0.0.1:PORT"} once it
accepts calls; point the official client at it with PUBSUB_EMULATOR_HOST=127.0.0.1:PORT.
Stops on SIGINT/SIGTERM.

options:
  --port N         port to listen on (default 0: any free port)
  --state-dir DIR  keep topics, subscriptions and unacknowledged messages in DIR (write-ahead
                   log, fsync before answering); without it state lives in memory only
  --verbose        log to stderr
`;

function parseArgs(argv: string[]): { port: number; stateDir: string | undefined; verbose: boolean } {
  let port = 0;
  let stateDir: string | undefined;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--port": {
        const v = value();
        if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`--port: expected 0-65535, got ${v}`);
        port = Number(v);
        break;
      }
      case "--state-dir":
        stateDir = value();
        break;
      case "--verbose":
        verbose = true;
        break;
      default:
        throw new UsageError(`pubsub-emulator: unknown argument ${JSON.stringify(arg)}`);
    }
  }
  return { port, stateDir, verbose };
}

/** `gangway pubsub-emulator`: the embedded Pub/Sub emulator as a standalone process. */
export const command: CliCommand = {
  name: "pubsub-emulator",
  summary: "run the embedded Pub/Sub emulator (gRPC, for PUBSUB_EMULATOR_HOST)",
  usage,
  async run(ctx: CliContext): Promise<number> {
    const args = parseArgs(ctx.argv);
    const log = (msg: string) => ctx.stderr(`${msg}\n`);
    const emulator = await startPubSubEmulator({
      port: args.port,
      stateDir: args.stateDir ? resolve(ctx.cwd, args.stateDir) : undefined,
      logger: args.verbose ? { info: log, warn: log } : { info: () => {}, warn: log },
    });
    if (ctx.signal.aborted) {
      await emulator.close();
      return EXIT.ok;
    }
    ctx.stdout(`${JSON.stringify({ ready: true, pubsubEmulatorHost: emulator.host })}\n`);
    await new Promise<void>((done) => ctx.signal.addEventListener("abort", () => done(), { once: true }));
    await emulator.close();
    return EXIT.ok;
  },
};
