import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_STATE_FILE,
  removeClusterState,
  writeClusterState,
} from "../../infra/local/cluster/state-file.js";
import { startLocalStack } from "../../infra/local/stack.js";
import { type CliCommand, EXIT, UsageError, withStopBeforeExit } from "../command.js";

const USAGE = `usage: gangway up [--cluster SPEC | --inventory FILE] [--state-dir DIR] [--port N] [--verbose] …

Start the embedded stack: the Step Functions engine, the Pub/Sub emulator, the step functions,
the ingest API and a local cluster (or the agents of an inventory of real hosts); register the
state machine gangway-multislice; create the topics and push subscriptions. Prints one JSON line
when ready:
  {"ready":true,"api":URL,"sfnEndpoint":URL,"pubsubEmulatorHost":"host:port","stateMachineArn":ARN,"projectId":ID}
Ctrl-C stops everything and leaves no process behind. Started again on the same --state-dir,
running jobs go on. \`gangway preempt <slice>\` injects a preemption into its local cluster;
\`gangway submit|status|logs|cancel|history\` find its API in --state-dir.

  --cluster SPEC            local cluster, e.g. v4-16x2,v4-8x1 (default v4-16x2)
  --state-dir DIR           where state lives (default .gangway)
  --port N                  port of the API (default: any free port)
  --provisioning-delay MS   time for a new or replacement slice to come up (default 1000)
  --verbose                 log what the stack does to stderr
Real hosts running \`gangway agent\` (docs/static-inventory.md):
  --inventory FILE          slices and their agents (JSON or YAML) instead of a local cluster
  --agent-token-file F      the agents' bearer token (default: <state-dir>/agent-token, made once)
  --agent-ca F              CA certificate of the agents' TLS (default: plaintext gRPC)
  --host ADDR               address to serve on (default 127.0.0.1; agents publish their events
                            to the Pub/Sub emulator here, so they must reach it). On an address
                            other than loopback the API's reads and cancels need a bearer token:
                            $GANGWAY_API_TOKEN, else one made once in the state dir and printed
                            in the ready line as apiToken
  --pubsub-port N           fixed port of the Pub/Sub emulator, for the agents' PUBSUB_EMULATOR_HOST`;

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
      inventory?: string;
      "agent-token-file"?: string;
      "agent-ca"?: string;
      host: string;
      "pubsub-port"?: string;
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
          inventory: { type: "string" },
          "agent-token-file": { type: "string" },
          "agent-ca": { type: "string" },
          host: { type: "string", default: "127.0.0.1" },
          "pubsub-port": { type: "string" },
        },
      }).values as typeof values;
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    const portOf = (flag: string, text: string | undefined) => {
      const n = text === undefined ? 0 : Number(text);
      if (!Number.isInteger(n) || n < 0 || n > 65_535)
        throw new UsageError(`--${flag}: expected 0 to 65535, got ${text}`);
      return n;
    };
    const port = portOf("port", values.port);
    const pubsubPort = portOf("pubsub-port", values["pubsub-port"]);
    const inventory = await inventoryOption(ctx.cwd, values);
    const delay = Number(values["provisioning-delay"]);
    if (!Number.isFinite(delay) || delay < 0)
      throw new UsageError(
        `--provisioning-delay: expected milliseconds ≥ 0, got ${values["provisioning-delay"]}`,
      );
    // Until the stack is closed, a second Ctrl-C must not kill this process: its workloads would live on.
    // Whatever ends the wait — Ctrl-C, or a failure after the ready line — the stack stops: a CLI
    // that reported an error must not go on serving.
    await withStopBeforeExit(
      () =>
        startLocalStack({
          cluster: values.cluster,
          stateDir: values["state-dir"],
          port,
          host: values.host,
          pubsubPort,
          inventory,
          provisioningDelayMs: delay,
          workloadCwd: ctx.cwd,
          log: values.verbose ? (line) => ctx.stderr(`${line}\n`) : undefined,
        }),
      async (stack) => {
        let sharedState = false;
        try {
          ctx.stdout(`${JSON.stringify(stack.readyLine())}\n`);
          // So that a plain `gangway preempt <slice>` finds this stack's cluster.
          const stateDir = resolve(ctx.cwd, values["state-dir"]);
          if (!inventory) {
            const cluster = JSON.parse(await readFile(join(stateDir, "cluster.json"), "utf8")) as Parameters<
              typeof writeClusterState
            >[1];
            writeClusterState(DEFAULT_STATE_FILE, cluster);
            sharedState = true;
          }
          await new Promise<void>((done) => {
            if (ctx.signal.aborted) done();
            else ctx.signal.addEventListener("abort", () => done(), { once: true });
          });
        } finally {
          if (sharedState) removeClusterState(DEFAULT_STATE_FILE);
        }
      },
      (stack) => stack.close(),
    );
    return EXIT.ok;
  },
};

/** The inventory flags, files read; `undefined` without `--inventory`. */
async function inventoryOption(
  cwd: string,
  v: { cluster: string; inventory?: string; "agent-token-file"?: string; "agent-ca"?: string },
): Promise<{ file: string; agentToken?: string; tlsCa?: string } | undefined> {
  if (v.inventory === undefined) {
    if (v["agent-token-file"] !== undefined || v["agent-ca"] !== undefined)
      throw new UsageError("--agent-token-file and --agent-ca go with --inventory");
    return undefined;
  }
  const read = async (flag: string, path: string) => {
    try {
      return await readFile(resolve(cwd, path), "utf8");
    } catch (e) {
      throw new UsageError(`--${flag}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const token =
    v["agent-token-file"] === undefined
      ? undefined
      : (await read("agent-token-file", v["agent-token-file"])).trim();
  if (token !== undefined && token.length < 16)
    throw new UsageError(
      `--agent-token-file: expected a token of at least 16 characters, got ${token.length}`,
    );
  return {
    file: resolve(cwd, v.inventory),
    ...(token === undefined ? {} : { agentToken: token }),
    ...(v["agent-ca"] === undefined ? {} : { tlsCa: await read("agent-ca", v["agent-ca"]) }),
  };
}
