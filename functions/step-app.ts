import { Hono } from "hono";
import type { z } from "zod";
import { serializeError, shortenError } from "../core/serialized-error.js";
import { toValidationIssues } from "../core/validation.js";

/** Body of a failed invocation: AWS Lambda's error shape plus gangway's serialized error. */
export interface FunctionErrorBody {
  errorType: string;
  errorMessage: string;
  trace?: string[];
  /** The whole error, cause chain and details included (Step Functions puts this body in Cause). */
  error?: ReturnType<typeof serializeError>;
  /** For invalid input: `{code, message, issues}` as every edge answers. */
  code?: string;
  message?: string;
  issues?: Array<{ path: string; message: string }>;
}

/** Name of the error a step answers when its input does not parse. */
export const INVALID_STEP_INPUT = "InvalidStepInput";

/**
 * The thin adapter every step function shares: a Hono app that takes the raw Step Functions
 * payload as `POST /` JSON, validates it with `input`, runs `handle`, and answers 200 with the
 * result — or a non-2xx `{errorType, errorMessage, trace, error}` whose `errorType` is the
 * error's `name`, which the state machine's Retry/Catch match on.
 *
 * @example
 * const app = createStepApp({ name: "teardown", input: ExecutionStateSchema, handle: (s) => teardown(s) });
 * await app.request("/", { method: "POST", body: JSON.stringify(state) });
 */
export function createStepApp<S extends z.ZodType, O>(spec: {
  name: string;
  input: S;
  handle: (input: z.output<S>) => Promise<O>;
}): Hono {
  const app = new Hono();
  app.get("/health", (c) => c.json({ ok: true, function: spec.name }));
  app.post("/", async (c) => {
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      const body: FunctionErrorBody = {
        errorType: INVALID_STEP_INPUT,
        errorMessage: `${spec.name}: body is not valid JSON`,
        code: INVALID_STEP_INPUT,
        message: "body is not valid JSON",
        issues: [{ path: "(root)", message: "(root): expected JSON, got invalid JSON" }],
      };
      return c.json(body, 400);
    }
    const parsed = spec.input.safeParse(raw, { reportInput: true });
    if (!parsed.success) {
      const issues = toValidationIssues(parsed.error.issues).map(({ path, message }) => ({ path, message }));
      const body: FunctionErrorBody = {
        errorType: INVALID_STEP_INPUT,
        errorMessage: `${spec.name}: invalid input: ${issues.map((i) => i.message).join("; ")}`,
        code: INVALID_STEP_INPUT,
        message: `invalid input to ${spec.name}`,
        issues,
      };
      return c.json(body, 400);
    }
    try {
      return c.json((await spec.handle(parsed.data)) ?? {}, 200);
    } catch (thrown) {
      // Shortened: Step Functions puts this body in the state (a Catch's `problem`).
      const error = shortenError(serializeError(thrown));
      const body: FunctionErrorBody = {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack?.split("\n"),
        error,
      };
      return c.json(body, 500);
    }
  });
  return app;
}
