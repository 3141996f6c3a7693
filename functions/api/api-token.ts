import { timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { apiError } from "./errors.js";

/** Whether `authorization` is `Bearer <token>`, compared in constant time. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(authorization ?? "");
  if (!m?.[1]) return false;
  const given = Buffer.from(m[1]);
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The answer to a call without the right credentials. */
export const unauthorized = (message: string) => apiError("Unauthorized", message);

/**
 * Guard of the jobs API's reads and cancels (mount on `/v1/jobs/*`, which covers `/v1/jobs`):
 * `Authorization: Bearer <token>`, else 401. Submissions (`POST /v1/jobs`) carry their own HMAC
 * signature and pass.
 *
 * @example
 * api.use("/v1/jobs/*", requireApiToken(token));
 */
export function requireApiToken(token: string): MiddlewareHandler {
  return async (c, next) => {
    const submission = c.req.method === "POST" && c.req.path === "/v1/jobs";
    if (!submission && !bearerMatches(c.req.header("authorization"), token))
      return c.json(unauthorized("expected Authorization: Bearer <API token>"), 401);
    return next();
  };
}
