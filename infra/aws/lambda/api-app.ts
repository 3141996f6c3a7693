import { Hono } from "hono";
import { requireApiToken, unauthorized } from "../../../functions/api/api-token.js";
import { routeNotFound } from "../../../functions/api/errors.js";
import { createJobsApi } from "../../../functions/api/jobs.js";
import { createLaunchRequestsApp } from "../../../functions/api/launch-requests.js";
import { createConsoleApp } from "../../../functions/console/index.js";
import { createIngestApp } from "../../../functions/ingest/index.js";
import type {
  AgentConnector,
  Clock,
  ExecutionsApi,
  ResultsStore,
  TaskTokens,
} from "../../../functions/ports.js";

/** Checks a push's bearer token for `audience`; answers why it is refused, or `undefined`. */
export type PushVerifier = (
  authorization: string | undefined,
  nowMs: number,
  audience: string,
) => Promise<string | undefined>;

/** What the AWS API needs: the jobs API's sources plus its three ways of telling callers apart. */
export interface AwsApiDeps {
  executions: ExecutionsApi;
  store: ResultsStore;
  tokens: TaskTokens;
  clock: Clock;
  agents?: AgentConnector | undefined;
  stateMachineArn: string;
  /** The definition the console draws. */
  definition: string;
  /** HMAC secret `POST /v1/jobs` must be signed with. */
  webhookSecret: string;
  /** Bearer token of every read, of cancelling, and of the console. */
  apiToken: string;
  /** Checks Pub/Sub pushes; without one every push is refused (a public URL must not take them). */
  verifyPush?: PushVerifier | undefined;
  /** Audience pushes are minted for; default the URL the request came to (the Function URL). */
  pushAudience?: string | undefined;
  log?: ((line: string) => void) | undefined;
}

/**
 * The API as deployed on AWS behind a public Function URL: the same webhook, jobs API, console
 * and Pub/Sub push routes as the embedded stack, with every route authenticated — job
 * submissions by their HMAC signature, pushes by Google-signed OIDC tokens, reads, cancels and
 * the console by the API token. Only `/health` and the OpenAPI document are open.
 */
export function createAwsApiApp(deps: AwsApiDeps): Hono {
  const api = new Hono();
  // The composed apps' own 404s are not carried over: an unknown route answers JSON here.
  // (A known path under another method answers the jobs API's 405, which is.)
  api.notFound(routeNotFound);
  api.get("/health", (c) => c.json({ ok: true }));

  api.use("/push/*", async (c, next) => {
    if (!deps.verifyPush) return c.json(unauthorized("this deployment takes no Pub/Sub pushes"), 401);
    const audience = deps.pushAudience ?? new URL(c.req.url).origin;
    const problem = await deps.verifyPush(c.req.header("authorization"), deps.clock.now(), audience);
    if (problem !== undefined) return c.json(unauthorized(problem), 401);
    return next();
  });
  api.use("/v1/jobs/*", requireApiToken(deps.apiToken));

  api.route(
    "/",
    createIngestApp({ store: deps.store, tokens: deps.tokens, clock: deps.clock, log: deps.log }),
  );
  api.route(
    "/",
    createLaunchRequestsApp({
      executions: deps.executions,
      store: deps.store,
      stateMachineArn: deps.stateMachineArn,
      log: deps.log,
    }),
  );
  api.route(
    "/",
    createJobsApi({
      executions: deps.executions,
      store: deps.store,
      tokens: deps.tokens,
      clock: deps.clock,
      agents: deps.agents,
      stateMachineArn: deps.stateMachineArn,
      webhookSecret: deps.webhookSecret,
      log: deps.log,
    }),
  );
  api.route(
    "/",
    createConsoleApp({
      executions: deps.executions,
      store: deps.store,
      stateMachineArn: deps.stateMachineArn,
      definition: deps.definition,
      token: deps.apiToken,
      log: deps.log,
    }),
  );
  return api;
}
