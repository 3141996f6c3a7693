import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_STATE_FILE,
  readClusterState,
  removeClusterState,
  writeClusterState,
} from "../../infra/local/cluster/state-file.js";
import { parseInventory } from "../../infra/local/cluster/static-provider.js";
import { startLocalStack } from "../../infra/local/stack.js";
import { type CliCommand, type CliContext, EXIT, UsageError, withStopBeforeExit } from "../command.js";
import { clusterOption } from "../options.js";

const USAGE = `usage: gangway up [--cluster SPEC | --inventory FILE] [--state-dir DIR] [--port N] [--verbose] …

Start the embedded stack: the Step Functions engine, the Pub/Sub emulator, the step functions,
the ingest API and a local cluster (or the agents of an inventory of real hosts); register the
state machine gangway-multislice; create the topics and push subscriptions. Prints one JSON line
when ready:
  {"ready":true,"api":URL,"sfnEndpoint":URL,"pubsubEmulatorHost":"host:port","stateMachineArn":ARN,"projectId":ID}
Ctrl-C stops everything and leaves no process behind. Started again on the same --state-dir,
running jobs go on. \`gangway preempt <slice>\` injects a preemption into its local cluster;
\`gangway submit|status|logs|cancel|history\` find its API in --state-dir.

  --cluster SPEC            local cluster, e.g. v4-16x2,v4-8x1 · cpux4 · gpu-h100-8x2 (default v4-16x2)
  --state-dir DIR           where state lives (default .gangway)
  --port N                  port of the API (default: any free port)
  --provisioning-delay-ms N time for a new or replacement slice to come up, in milliseconds
                            (default 1000)
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
      cluster?: string;
      "state-dir": string;
      port?: string;
      "provisioning-delay-ms"?: string;
      "provisioning-delay"?: string;
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
          cluster: { type: "string" },
          "state-dir": { type: "string", default: ".gangway" },
          port: { type: "string" },
          "provisioning-delay-ms": { type: "string" },
          // The name it had first; `gangway cluster` says -ms, and so does the help now.
          "provisioning-delay": { type: "string" },
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
    // Every value is checked before anything starts: bad usage is exit 2 with nothing to stop.
    const portOf = (flag: string, text: string | undefined) => {
      const n = text === undefined ? 0 : Number(text);
      if (!Number.isInteger(n) || n < 0 || n > 65_535)
        throw new UsageError(`--${flag}: expected 0 to 65535, got ${text}`);
      return n;
    };
    const port = portOf("port", values.port);
    const pubsubPort = portOf("pubsub-port", values["pubsub-port"]);
    if (values.inventory !== undefined && values.cluster !== undefined)
      throw new UsageError("--cluster and --inventory: give one (an inventory's slices are its own)");
    const cluster = values.cluster ?? "v4-16x2";
    clusterOption(cluster);
    const delay = provisioningDelay(values);
    const inventory = await inventoryOption(ctx.cwd, values);
    // Until the stack is closed, a second Ctrl-C must not kill this process: its workloads would live on.
    // Whatever ends the wait — Ctrl-C, or a failure after the ready line — the stack stops: a CLI
    // that reported an error must not go on serving.
    await withStopBeforeExit(
      () =>
        startLocalStack({
          cluster,
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
          // So that a plain `gangway preempt <slice>` finds this stack's cluster. Best-effort: the
          // file is shared by every user of this machine's temporary directory (one left by
          // another user cannot be replaced), and the stack is whole without it.
          if (!inventory) sharedState = shareClusterState(ctx, resolve(ctx.cwd, values["state-dir"]));
          // Not "ready" for a stack that is about to stop.
          if (!ctx.signal.aborted) ctx.stdout(`${JSON.stringify(stack.readyLine())}\n`);
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

/** `--provisioning-delay-ms` (or its first name, `--provisioning-delay`), whole milliseconds. */
function provisioningDelay(v: { "provisioning-delay-ms"?: string; "provisioning-delay"?: string }): number {
  const ms = v["provisioning-delay-ms"];
  const old = v["provisioning-delay"];
  if (ms !== undefined && old !== undefined)
    throw new UsageError("--provisioning-delay-ms and --provisioning-delay are the same option: give one");
  const flag = old === undefined ? "--provisioning-delay-ms" : "--provisioning-delay";
  const text = ms ?? old ?? "1000";
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new UsageError(`${flag}: expected a whole number of milliseconds ≥ 0, got ${JSON.stringify(text)}`);
  return n;
}

/**
 * Copy the stack's cluster state (`<state-dir>/cluster.json`) to the shared default state file;
 * whether it was written. A failure is a warning naming the file, not the stack's end.
 */
function shareClusterState(ctx: CliContext, stateDir: string): boolean {
  const own = join(stateDir, "cluster.json");
  try {
    writeClusterState(DEFAULT_STATE_FILE, readClusterState(own));
    return true;
  } catch (e) {
    ctx.stderr(
      `gangway up: warning: could not write ${DEFAULT_STATE_FILE} (${(e as Error).message}); \`gangway preempt\` reaches this cluster with --state-file ${own}\n`,
    );
    return false;
  }
}

/** The inventory flags, files read; `undefined` without `--inventory`. */
async function inventoryOption(
  cwd: string,
  v: { inventory?: string; "agent-token-file"?: string; "agent-ca"?: string },
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
  const tlsCa = v["agent-ca"] === undefined ? undefined : await read("agent-ca", v["agent-ca"]);
  // Parsed here too, so that a bad inventory is bad usage before anything starts; the stack
  // reads the file again itself.
  try {
    parseInventory(await read("inventory", v.inventory), v.inventory);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--inventory: ${(e as Error).message}`);
  }
  return {
    file: resolve(cwd, v.inventory),
    ...(token === undefined ? {} : { agentToken: token }),
    ...(tlsCa === undefined ? {} : { tlsCa }),
  };
}
