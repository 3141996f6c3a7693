import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ParseArgsConfig } from "node:util";
import { apiTransport, GangwayApiError } from "./client/transport.js";
import { type CliContext, EXIT, parseCommandArgs, UsageError } from "./command.js";

/** How the CLI reaches a running control plane. */
export interface ApiConnection {
  api: string;
  webhookSecret?: string | undefined;
  /** Bearer token of reads and cancels, where the API asks for one (a deployed stack does). */
  apiToken?: string | undefined;
  /** What an {@link ApiUnreachable} error suggests: where the URL came from. */
  unreachableHint?: string | undefined;
}

/** Options every API command takes. */
export const CONNECTION_OPTIONS = {
  api: { type: "string" },
  "webhook-secret": { type: "string" },
  "api-token": { type: "string" },
  "state-dir": { type: "string" },
} as const;

export const CONNECTION_USAGE = `  --api URL                 the API (default: $GANGWAY_API, else the one \`gangway up\` in --state-dir runs)
  --webhook-secret S        signs submissions (default: $GANGWAY_WEBHOOK_SECRET, else gangway up's)
  --api-token T             bearer token of reads and cancels on a deployed API, or on \`gangway up --host\`
                            serving a network (default: $GANGWAY_API_TOKEN, else gangway up's)
  --state-dir DIR           where \`gangway up\` keeps its state (default .gangway)`;

/** Find the API: flags, then the environment, then the ready file `gangway up` leaves in its state dir. */
export async function resolveConnection(
  values: {
    api?: string | undefined;
    "webhook-secret"?: string | undefined;
    "api-token"?: string | undefined;
    "state-dir"?: string | undefined;
  },
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): Promise<ApiConnection> {
  let api = values.api ?? env.GANGWAY_API;
  let webhookSecret = values["webhook-secret"] ?? env.GANGWAY_WEBHOOK_SECRET;
  let apiToken = values["api-token"] ?? env.GANGWAY_API_TOKEN;
  const stateDir = resolve(cwd, values["state-dir"] ?? ".gangway");
  const readyFile = join(stateDir, "ready.json");
  // Where the URL came from, for the errors that name it.
  let source = values.api !== undefined ? "--api" : api !== undefined ? "GANGWAY_API" : undefined;
  if (api === undefined || webhookSecret === undefined || apiToken === undefined) {
    try {
      const ready = JSON.parse(await readFile(readyFile, "utf8")) as {
        api?: string;
        webhookSecret?: string;
        apiToken?: string;
      };
      api ??= ready.api;
      if (source === undefined && api !== undefined) source = readyFile;
      // The secret and the token go only to the API they belong to: another API would refuse
      // the signature as wrong (not say that none was given), and a bearer token is sent as it is.
      if (ready.api === api) {
        webhookSecret ??= ready.webhookSecret;
        apiToken ??= ready.apiToken;
      }
    } catch {
      // no stack there
    }
  }
  if (api === undefined)
    throw new UsageError("no API to talk to: give --api URL, set GANGWAY_API, or run `gangway up` first");
  if (!/^https?:\/\/[^/\s]+/.test(api))
    throw new UsageError(`${source}: expected an http(s) URL for the API, got ${JSON.stringify(api)}`);
  // A stack stopped without removing its ready file (kill -9) leaves a dead URL there.
  const unreachableHint =
    source === readyFile
      ? `is \`gangway up\` running (state dir ${stateDir})?`
      : `is it running, and is ${source} right?`;
  return { api, webhookSecret, apiToken, unreachableHint };
}

/** Run an API command; an API refusal is printed as `gangway <command>: <status> <code>: <message>`, exit 1. */
export async function reportingApiErrors(
  command: string,
  ctx: CliContext,
  fn: () => Promise<number>,
): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof GangwayApiError)) throw e;
    ctx.stderr(
      `gangway ${command}: ${e.status} ${e.code}: ${e.message}\n${e.issues.map((i) => `  ${i.message}\n`).join("")}`,
    );
    return EXIT.failed;
  }
}

/**
 * Parse an API command that takes one job id (its own `options` plus the connection's) and
 * connect: the flags' values, the job id and the API transport.
 *
 * @example
 * const { values, jobId, api } = await jobCommand(ctx, "logs", USAGE, { json: { type: "boolean" } });
 */
export async function jobCommand<O extends NonNullable<ParseArgsConfig["options"]>>(
  ctx: CliContext,
  name: string,
  usage: string,
  options: O,
) {
  const { values, positionals } = parseCommandArgs(
    { args: ctx.argv, allowPositionals: true, options: { ...options, ...CONNECTION_OPTIONS } },
    usage,
  );
  if (positionals.length !== 1) throw new UsageError(`${name} takes exactly one job id\n\n${usage}`);
  const jobId = positionals[0] ?? "";
  return { values, jobId, api: apiTransport(await resolveConnection(values, ctx.env, ctx.cwd)) };
}
