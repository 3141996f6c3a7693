/**
 * Lambda functions as the embedded engine sees them: a name resolved to an in-process Hono app
 * (anything with `fetch(Request)`), a plain async function, or an HTTP URL. A function's error is
 * a non-2xx answer whose JSON names it (`errorType`/`errorMessage`, or `name`/`message`, or
 * `{error:{name,message}}`); the Task sees it under that name, as on AWS.
 */
import { randomUUID } from "node:crypto";
import type { LambdaOutcome } from "./execution.js";
import { jsonDepth, MAX_PAYLOAD_DEPTH } from "./payload.js";

/** What a function name can be bound to. */
export type LambdaTarget =
  | string
  | { fetch(request: Request): Response | Promise<Response> }
  | ((payload: unknown) => unknown);

function functionError(body: unknown, fallback: string): { error: string; message: string } {
  const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
  const nested = (b.error && typeof b.error === "object" ? b.error : {}) as Record<string, unknown>;
  const error = [b.errorType, b.name, nested.name, typeof b.error === "string" ? b.error : undefined].find(
    (x): x is string => typeof x === "string" && x.length > 0,
  );
  const message = [b.errorMessage, b.message, nested.message, b.cause].find(
    (x): x is string => typeof x === "string",
  );
  return {
    error: error ?? fallback,
    message: message ?? (typeof body === "string" ? body : JSON.stringify(body)),
  };
}

function failed(error: string, message: string, functionError: boolean): LambdaOutcome {
  return {
    ok: false,
    error,
    cause: functionError ? JSON.stringify({ errorMessage: message, errorType: error, trace: [] }) : message,
    functionError,
  };
}

/** Invoke `target` with `payload`; never throws (transport failures become Lambda.* errors). */
export async function invokeTarget(
  target: LambdaTarget,
  payload: unknown,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<LambdaOutcome> {
  const requestId = randomUUID();
  try {
    if (typeof target === "function") {
      const value = await target(payload);
      return { ok: true, payload: value === undefined ? null : value, requestId };
    }
    const both = AbortSignal.any([
      signal,
      AbortSignal.timeout(Math.max(1, Math.min(timeoutMs, 2 ** 31 - 1))),
    ]);
    const init: RequestInit = {
      method: "POST",
      headers: { "content-type": "application/json", "x-amzn-requestid": requestId },
      body: JSON.stringify(payload),
      signal: both,
    };
    const response =
      typeof target === "string"
        ? await fetch(target, init)
        : await target.fetch(new Request("http://lambda.local/", init));
    const text = await response.text();
    let body: unknown = null;
    if (jsonDepth(text) > MAX_PAYLOAD_DEPTH)
      return failed(
        "Lambda.InvalidResponseException",
        `The function's answer nests deeper than ${MAX_PAYLOAD_DEPTH} levels`,
        false,
      );
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        if (response.ok)
          return failed("Lambda.InvalidResponseException", "The function returned invalid JSON", false);
        body = text;
      }
    }
    if (response.ok) return { ok: true, payload: body, requestId };
    const e = functionError(body, response.status >= 500 ? "Lambda.Unknown" : "Lambda.Unknown");
    return failed(e.error, e.message, true);
  } catch (e) {
    const err = e as Error;
    if (typeof target === "function") return failed(err?.name || "Error", err?.message ?? String(e), true);
    return failed(
      "Lambda.SdkClientException",
      `Unable to invoke the function: ${err?.message ?? String(e)}`,
      false,
    );
  }
}

/** A registry of function name → target. */
export class LambdaRegistry {
  private readonly targets = new Map<string, LambdaTarget>();

  constructor(initial: Record<string, LambdaTarget> = {}) {
    for (const [k, v] of Object.entries(initial)) this.targets.set(k, v);
  }

  /** Bind `name` (a function name, not an ARN) to a target. */
  register(name: string, target: LambdaTarget): void {
    this.targets.set(name, target);
  }

  async invoke(
    name: string,
    payload: unknown,
    timeoutMs: number,
    signal: AbortSignal,
    arn: string,
  ): Promise<LambdaOutcome> {
    const target = this.targets.get(name);
    if (!target) return failed("Lambda.ResourceNotFoundException", `Function not found: ${arn}`, false);
    return invokeTarget(target, payload, timeoutMs, signal);
  }
}
