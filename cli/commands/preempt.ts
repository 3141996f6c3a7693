import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { readTokenFile } from "../../infra/agent/cli-support.js";
import { DEFAULT_STATE_FILE, readClusterState } from "../../infra/local/cluster/state-file.js";
import { networkErrorCode } from "../client/transport.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";

const USAGE = `usage: gangway preempt <slice> [--admin URL --token-file F] [--state-file F]

Preempt a slice of a running local cluster (\`gangway cluster\`) as GCE would: its agents and
workloads die at once, a notice per host is published, and a fresh slice comes back after the
cluster's provisioning delay. Prints the notices as one JSON line.

The cluster is found through its state file (default ${DEFAULT_STATE_FILE}, which names its admin URL
and token file), or given with --admin URL (printed by gangway cluster) and --token-file F.

exit codes: 0 preempted · 1 unknown slice or cluster unreachable · 2 bad usage`;

/** `gangway preempt`: inject a preemption into a running local cluster. */
export const command: CliCommand = {
  name: "preempt",
  summary: "preempt a slice of a running local cluster (its hosts vanish; a fresh slice comes back)",
  usage: USAGE,
  async run(ctx) {
    let parsed: { values: Record<string, string | undefined>; positionals: string[] };
    try {
      parsed = parseArgs({
        args: ctx.argv,
        allowPositionals: true,
        options: {
          admin: { type: "string" },
          "token-file": { type: "string" },
          "state-file": { type: "string" },
        },
      }) as typeof parsed;
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(`preempt takes exactly one slice name\n\n${USAGE}`);
    let admin = values.admin;
    let tokenFile = values["token-file"] ? resolve(ctx.cwd, values["token-file"]) : undefined;
    const stateFile = resolve(ctx.cwd, values["state-file"] ?? DEFAULT_STATE_FILE);
    if (!admin || !tokenFile) {
      const state = readClusterState(stateFile);
      admin ??= state.admin;
      tokenFile ??= state.tokenFile;
    }
    let url: URL;
    try {
      url = new URL("/v1/preempt", admin);
    } catch {
      throw new UsageError(`--admin: expected an http(s) URL, got ${JSON.stringify(admin)}`);
    }
    let token: string;
    try {
      token = readTokenFile(tokenFile);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ slice: positionals[0] }),
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(60_000)]),
      });
    } catch (e) {
      if ((e as Error).name === "AbortError" || (e as Error).name === "TimeoutError") throw e;
      // A state file left by a cluster that was killed names an admin port nothing listens on.
      const code = networkErrorCode(e);
      const where =
        values.admin === undefined
          ? `is \`gangway up\` or \`gangway cluster\` running (state file ${stateFile})?`
          : "is the cluster running, and is --admin right?";
      ctx.stderr(
        `gangway: preempt: cannot reach the cluster's admin API at ${url.origin}${code ? ` (${code})` : ""} — ${where}\n`,
      );
      return EXIT.failed;
    }
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    if (!res.ok) {
      ctx.stderr(`gangway: preempt: ${body.error ?? `HTTP ${res.status}`}\n`);
      return EXIT.failed;
    }
    ctx.stdout(`${JSON.stringify(body)}\n`);
    return EXIT.ok;
  },
};
