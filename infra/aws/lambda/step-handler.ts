import type { Hono } from "hono";
import type { FunctionErrorBody } from "../../../functions/step-app.js";

/**
 * A step function's failure as Lambda reports it: `name` is the body's `errorType` (what the
 * state machine's Retry/Catch match on, as on the embedded engine) and `message` is the whole
 * body as JSON, so the serialized error (cause chain, details) reaches the Task's `Cause`.
 */
export class StepFunctionError extends Error {
  override readonly name: string;
  readonly body: FunctionErrorBody;
  constructor(body: FunctionErrorBody, status: number) {
    super(JSON.stringify(body));
    this.name = body.errorType || `Lambda.Http${status}`;
    this.body = body;
    // The Lambda runtime reports `stack` as the trace: make it the function's, not this adapter's.
    const trace = body.trace?.length ? body.trace : [`${this.name}: ${body.errorMessage}`];
    this.stack = trace.join("\n");
  }
}

/** The step's answer was not JSON (a bug in the app, never a named failure). */
export class StepAnswerNotJson extends Error {
  override readonly name = "StepAnswerNotJson";
}

const asErrorBody = (status: number, text: string): FunctionErrorBody => {
  try {
    const parsed = JSON.parse(text) as Partial<FunctionErrorBody>;
    if (parsed && typeof parsed.errorType === "string" && typeof parsed.errorMessage === "string")
      return parsed as FunctionErrorBody;
  } catch {
    // not JSON: reported as text below
  }
  return { errorType: `Lambda.Http${status}`, errorMessage: text.slice(0, 4096) };
};

/**
 * The thin adapter from a Lambda invocation (the raw Step Functions payload as the event) to a
 * step's Hono app: `POST /` with the event as JSON; 200 → the parsed result; anything else →
 * a thrown {@link StepFunctionError}. `app` is awaited per call, so deps can be built lazily
 * once (cold start) and a failed build is retried on the next invocation.
 *
 * @example
 * export const handler = createStepHandler(() => appPromise);
 */
export function createStepHandler(app: () => Promise<Hono> | Hono): (event: unknown) => Promise<unknown> {
  return async (event) => {
    const body = event === undefined ? "" : JSON.stringify(event);
    const response = await (await app()).request("/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await response.text();
    if (!response.ok) throw new StepFunctionError(asErrorBody(response.status, text), response.status);
    try {
      return text === "" ? null : JSON.parse(text);
    } catch {
      throw new StepAnswerNotJson(`the step answered ${response.status} with text that is not JSON`);
    }
  };
}

/**
 * A value built once on first use and shared by later calls; a failed build is forgotten, so
 * the next invocation tries again (a Secrets Manager hiccup must not poison a warm container).
 */
export function once<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    if (!pending) {
      const attempt = build();
      pending = attempt;
      attempt.catch(() => {
        if (pending === attempt) pending = undefined;
      });
    }
    return pending;
  };
}
