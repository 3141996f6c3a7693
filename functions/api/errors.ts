import type { Context, Hono, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { describeValue, toValidationIssues } from "../../core/validation.js";

/** One problem in a request: where, and (for problems found by checking) what was expected and got. */
export interface ApiIssue {
  path: string;
  message: string;
  expected?: string;
  got?: string;
}

/** The error body every edge answers. */
export interface ApiError {
  code: string;
  message: string;
  issues: ApiIssue[];
}

/** An error body. */
export const apiError = (code: string, message: string, issues: ApiIssue[] = []): ApiError => ({
  code,
  message,
  issues,
});

/** An issue that names its path, what was expected and what was got. */
export const issue = (path: string, expected: string, got: string): ApiIssue => ({
  path,
  expected,
  got,
  message: `${path}: expected ${expected}, got ${got}`,
});

/** A request refused for what it carries: thrown by handlers, answered by {@link errorAnswer}. */
export class ApiProblem extends Error {
  override name = "ApiProblem";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly body: ApiError,
  ) {
    super(body.message);
  }
}

/** Parse request parameters (`:id`, the query) with `schema`, or throw a 400 naming each bad one. */
export function parseParams<T>(
  schema: z.ZodType<T>,
  params: Record<string, string | undefined>,
  code: string,
): T {
  const parsed = schema.safeParse(params, { reportInput: true });
  if (parsed.success) return parsed.data;
  const issues = toValidationIssues(parsed.error.issues);
  throw new ApiProblem(400, apiError(code, issues.map((i) => i.message).join("; "), issues));
}

/** Step Functions' limit on an execution's input: 256 KiB of UTF-8. */
export const MAX_EXECUTION_INPUT_BYTES = 256 * 1024;

/**
 * The refusal of an execution input over Step Functions' limit (a job spec can be valid and still
 * too large, its defaults included), or undefined when it fits.
 */
export function inputTooLarge(input: string): ApiError | undefined {
  const bytes = Buffer.byteLength(input, "utf8");
  if (bytes <= MAX_EXECUTION_INPUT_BYTES) return undefined;
  return apiError(
    "ExecutionInputTooLarge",
    `the job spec with its defaults is ${bytes} bytes of execution input, over Step Functions' limit of ${MAX_EXECUTION_INPUT_BYTES}`,
    [
      issue(
        "(root)",
        `at most ${MAX_EXECUTION_INPUT_BYTES} bytes of JSON, defaults included`,
        `${bytes} bytes`,
      ),
    ],
  );
}

/** Step Functions errors that refuse an execution's input or name: retrying the same request never helps. */
const REFUSED_START = new Set(["ValidationException", "InvalidExecutionInput", "InvalidName"]);

/** Whether StartExecution's error `e` refuses what the request carries (not a fault of ours or a blip). */
export function refusesRequest(e: unknown): e is Error {
  return e instanceof Error && REFUSED_START.has(e.name);
}

/** The refusal of a start that Step Functions turned down for what it carries. */
export function startRefusal(e: Error): ApiError {
  return apiError(e.name, `Step Functions refused the execution: ${e.message}`, [
    issue("(root)", "an execution input and name Step Functions accepts", describeValue(e.message)),
  ]);
}

/**
 * Step Functions errors that are no fault of ours, and the status each answers: 4xx where the
 * request named something it refuses, 429/503 where the service is busy (worth retrying later).
 */
const SFN_CLIENT_ERRORS: Record<string, ContentfulStatusCode> = {
  ValidationException: 400,
  MissingRequiredParameter: 400,
  InvalidArn: 400,
  InvalidName: 400,
  InvalidToken: 400,
  InvalidExecutionInput: 400,
  ExecutionDoesNotExist: 404,
  ExecutionAlreadyExists: 409,
  ThrottlingException: 429,
  ExecutionLimitExceeded: 429,
  ServiceUnavailable: 503,
};

/**
 * The status and `{code, message, issues}` body an error thrown by a handler answers: a refusal
 * as thrown; a Step Functions error that is no fault of ours as above; any other as a 500 that
 * says only which error it was (the rest goes to `log`).
 */
export function errorAnswer(
  e: Error,
  log: (line: string) => void = (line) => console.error(line),
): { status: ContentfulStatusCode; body: ApiError } {
  if (e instanceof ApiProblem) return { status: e.status, body: e.body };
  if (e instanceof HTTPException)
    return { status: e.status as ContentfulStatusCode, body: apiError("HttpError", e.message) };
  const status = SFN_CLIENT_ERRORS[e.name];
  if (status !== undefined) return { status, body: apiError(e.name, e.message) };
  log(`internal error: ${e.stack ?? `${e.name}: ${e.message}`}`);
  return { status: 500, body: apiError("InternalError", `internal error (${e.name}); try again later`) };
}

/** An `onError` for the JSON APIs: every error answers `{code, message, issues}`. */
export const jsonOnError =
  (log?: (line: string) => void) =>
  (e: Error, c: Context): Response => {
    const { status, body } = errorAnswer(e, log);
    return c.json(body, status);
  };

/**
 * The answer to a request no route takes: 404 `{code: "NotFound", …}` naming its method and path.
 * An app that composes others (`app.route("/", jobsApi)`) sets it itself — `app.notFound(routeNotFound)`:
 * a composed app's own `notFound` is not carried over.
 */
export const routeNotFound: NotFoundHandler = (c) =>
  c.json(apiError("NotFound", `no route ${c.req.method} ${c.req.path}`), 404);

/**
 * Make `app` answer `{code, message, issues}` for what it has no route for: 405
 * `MethodNotAllowed` (with `Allow`) for a path it serves under other methods, 404 `NotFound`
 * ({@link routeNotFound}) for any other. Call once its last route is added. The 405s travel with
 * it into an app that composes it; the 404 does not (see {@link routeNotFound}).
 */
export function answerUnknownRoutes(app: Hono): Hono {
  const methods = new Map<string, Set<string>>();
  for (const route of app.routes) {
    if (route.method === "ALL") continue; // middleware
    const known = methods.get(route.path) ?? new Set<string>();
    known.add(route.method);
    methods.set(route.path, known);
  }
  for (const [path, known] of methods) {
    // Hono answers HEAD with the GET route.
    if (known.has("GET")) known.add("HEAD");
    const allow = [...known].join(", ");
    app.all(path, (c) =>
      c.json(apiError("MethodNotAllowed", `${c.req.method} ${c.req.path}: this path takes ${allow}`), 405, {
        Allow: allow,
      }),
    );
  }
  app.notFound(routeNotFound);
  return app;
}
