/**
 * The Task state: the Lambda integration (`arn:aws:states:::lambda:invoke`, its
 * `.waitForTaskToken` form, and plain function ARNs), with TimeoutSeconds / HeartbeatSeconds
 * deadlines that are persisted so a restart keeps the remaining time.
 */
import type { StateDef } from "./definition.js";
import { runtimeError, STATES, StatesError } from "./errors.js";
import type { Branch, ExecutionRun } from "./execution.js";
import type { BranchCheckpoint } from "./model.js";
import { applyFilterPath, evaluateTemplate, resolvePath } from "./payload.js";
import { type TokenOutcome, TokenRegistry } from "./tokens.js";

const DEFAULT_TIMEOUT_SECONDS = 99_999_999;

type Kind =
  | { kind: "invoke"; wait: boolean; resource: string }
  | { kind: "function"; functionName: string }
  | { kind: "unsupported" };

function classify(resource: string): Kind {
  if (resource === "arn:aws:states:::lambda:invoke")
    return { kind: "invoke", wait: false, resource: "invoke" };
  if (resource === "arn:aws:states:::lambda:invoke.waitForTaskToken")
    return { kind: "invoke", wait: true, resource: "invoke.waitForTaskToken" };
  const m = /^arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:([^:]+)(:[^:]+)?$/.exec(resource);
  if (m) return { kind: "function", functionName: m[1] as string };
  return { kind: "unsupported" };
}

/** The function name inside `name`, `name:alias`, `123:function:name` or a full function ARN. */
export function functionNameOf(ref: string): string {
  const arn = /(?:^|:)function:([^:]+)/.exec(ref);
  if (arn) return arn[1] as string;
  return ref.split(":")[0] ?? ref;
}

function seconds(
  st: StateDef,
  field: "TimeoutSeconds" | "HeartbeatSeconds",
  input: unknown,
  run: ExecutionRun,
  b: Branch,
  cp: BranchCheckpoint,
): number | undefined {
  if (typeof st[field] === "number") return st[field] as number;
  const path = st[`${field}Path`];
  if (typeof path !== "string") return undefined;
  const r = resolvePath(path, input, run.scope(b, cp));
  if (!r.found || typeof r.value !== "number" || !Number.isInteger(r.value) || r.value <= 0)
    throw runtimeError(
      cp.state,
      cp.entered,
      `The ${field}Path parameter does not reference a positive integer: ${path}`,
    );
  return r.value;
}

/** Run one attempt of a Task state; returns the task's raw result or throws its error. */
export async function runTask(
  run: ExecutionRun,
  b: Branch,
  st: StateDef,
  cpIn: BranchCheckpoint,
): Promise<unknown> {
  const resource = st.Resource as string;
  const k = classify(resource);
  if (k.kind === "unsupported")
    throw runtimeError(
      cpIn.state,
      cpIn.entered,
      `The resource '${resource}' is not supported by the embedded engine`,
    );
  let cp = cpIn;
  const resuming = cp.phase === "task";
  const wait = k.kind === "invoke" && k.wait;
  const token = resuming ? cp.token : wait ? TokenRegistry.create() : undefined;
  const scope = run.scope(b, cp, token);
  const effective = applyFilterPath("InputPath", st.InputPath as string | null | undefined, cp.input, scope);
  const params = st.Parameters !== undefined ? evaluateTemplate(st.Parameters, effective, scope) : effective;
  const timeoutSeconds = seconds(st, "TimeoutSeconds", effective, run, b, cp);
  const heartbeatSeconds = seconds(st, "HeartbeatSeconds", effective, run, b, cp);
  const host = run.host;
  const resourceType = "lambda";
  const resourceName = k.kind === "invoke" ? k.resource : resource;
  let functionName: string;
  let payload: unknown;
  if (k.kind === "invoke") {
    const p = params as Record<string, unknown> | null;
    if (!p || typeof p !== "object" || typeof p.FunctionName !== "string")
      throw runtimeError(cp.state, cp.entered, "The field 'FunctionName' is required by lambda:invoke");
    functionName = functionNameOf(p.FunctionName);
    payload = p.Payload ?? {};
  } else {
    functionName = k.functionName;
    payload = params;
  }

  if (!resuming) {
    const limits: Record<string, number> = {};
    if (timeoutSeconds !== undefined) limits.timeoutInSeconds = timeoutSeconds;
    if (heartbeatSeconds !== undefined) limits.heartbeatInSeconds = heartbeatSeconds;
    if (k.kind === "invoke") {
      run.emit(b.id, "TaskScheduled", {
        taskScheduledEventDetails: {
          resourceType,
          resource: resourceName,
          region: host.region,
          parameters: JSON.stringify(params),
          ...limits,
        },
      });
      run.emit(b.id, "TaskStarted", { taskStartedEventDetails: { resourceType, resource: resourceName } });
    } else {
      const d: Record<string, unknown> = {
        resource,
        input: JSON.stringify(params),
        inputDetails: { truncated: false },
      };
      if (timeoutSeconds !== undefined) d.timeoutInSeconds = timeoutSeconds;
      run.emit(b.id, "LambdaFunctionScheduled", { lambdaFunctionScheduledEventDetails: d });
      run.emit(b.id, "LambdaFunctionStarted");
    }
    const now = host.now();
    cp = {
      ...cp,
      phase: "task",
      submitted: false,
      timeoutAt: now + (timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000,
    };
    if (token !== undefined) cp.token = token;
    if (heartbeatSeconds !== undefined) {
      cp.heartbeatSeconds = heartbeatSeconds;
      cp.heartbeatAt = now + heartbeatSeconds * 1000;
    }
    run.checkpoint(b.id, cp);
  }
  // Nothing is invoked before the schedule (and the token) are durable.
  host.flush();

  const fail = (error: string, cause: string): never => {
    if (k.kind === "invoke")
      run.emit(b.id, "TaskFailed", {
        taskFailedEventDetails: { resourceType, resource: resourceName, error, cause },
      });
    else run.emit(b.id, "LambdaFunctionFailed", { lambdaFunctionFailedEventDetails: { error, cause } });
    throw new StatesError(error, cause);
  };

  const attempt = new AbortController();
  const onAbort = () => attempt.abort();
  b.signal.addEventListener("abort", onAbort, { once: true });
  let settleToken: ((o: TokenOutcome) => void) | undefined;
  const tokenOutcome =
    token === undefined
      ? undefined
      : new Promise<TokenOutcome>((resolve) => {
          settleToken = resolve;
        });
  let current = cp;
  if (token !== undefined && settleToken) {
    const settle = settleToken;
    host.tokens.register(token, {
      executionArn: run.exec.executionArn,
      settle: (o) => {
        host.tokens.unregister(token);
        settle(o);
      },
      heartbeat: () => {
        if (current.heartbeatSeconds === undefined) return;
        current = { ...current, heartbeatAt: host.now() + current.heartbeatSeconds * 1000 };
        run.checkpoint(b.id, current);
        restartHeartbeat();
      },
    });
  }

  // Deadlines: a promise that rejects with States.Timeout / States.HeartbeatTimeout.
  let rejectDeadline: (e: StatesError) => void = () => {};
  const deadline = new Promise<never>((_, reject) => {
    rejectDeadline = reject;
  });
  deadline.catch(() => {});
  const timers: NodeJS.Timeout[] = [];
  let heartbeatTimer: NodeJS.Timeout | undefined;
  const arm = (at: number, error: string) =>
    setTimeout(
      () => rejectDeadline(new StatesError(error, undefined)),
      Math.max(0, Math.min(at - host.now(), 2 ** 31 - 1)),
    );
  if (current.timeoutAt !== undefined) timers.push(arm(current.timeoutAt, STATES.timeout));
  const restartHeartbeat = () => {
    clearTimeout(heartbeatTimer);
    if (current.heartbeatAt !== undefined && token !== undefined)
      heartbeatTimer = arm(current.heartbeatAt, STATES.heartbeatTimeout);
  };
  restartHeartbeat();
  const aborted = new Promise<never>((_, reject) => {
    if (attempt.signal.aborted) reject(new Error("aborted"));
    attempt.signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true });
  });
  aborted.catch(() => {});

  try {
    let lambdaResult: unknown;
    if (!(token !== undefined && current.submitted)) {
      const left = (current.timeoutAt ?? host.now() + DEFAULT_TIMEOUT_SECONDS * 1000) - host.now();
      const outcome = await Promise.race([
        host.invokeLambda(functionName, payload, left, attempt.signal),
        deadline,
        aborted,
      ]);
      if (!outcome.ok) fail(outcome.error, outcome.cause);
      else if (k.kind === "invoke") {
        lambdaResult = {
          ExecutedVersion: "$LATEST",
          Payload: outcome.payload,
          SdkHttpMetadata: {
            AllHttpHeaders: { "Content-Type": ["application/json"], "X-Amz-Executed-Version": ["$LATEST"] },
            HttpHeaders: { "Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST" },
            HttpStatusCode: 200,
          },
          SdkResponseMetadata: { RequestId: outcome.requestId },
          StatusCode: 200,
        };
      } else lambdaResult = outcome.payload;
      if (token !== undefined) {
        run.emit(b.id, "TaskSubmitted", {
          taskSubmittedEventDetails: {
            resourceType,
            resource: resourceName,
            output: JSON.stringify(lambdaResult),
            outputDetails: { truncated: false },
          },
        });
        current = { ...current, submitted: true };
        run.checkpoint(b.id, current);
      }
    }
    let result = lambdaResult;
    if (token !== undefined && tokenOutcome !== undefined) {
      const o = await Promise.race([tokenOutcome, deadline, aborted]);
      if ("error" in o) fail(o.error, o.cause);
      else result = JSON.parse(o.output);
    }
    const output = JSON.stringify(result);
    if (k.kind === "invoke")
      run.emit(b.id, "TaskSucceeded", {
        taskSucceededEventDetails: {
          resourceType,
          resource: resourceName,
          output,
          outputDetails: { truncated: false },
        },
      });
    else
      run.emit(b.id, "LambdaFunctionSucceeded", {
        lambdaFunctionSucceededEventDetails: { output, outputDetails: { truncated: false } },
      });
    return result;
  } catch (e) {
    if (b.signal.aborted) throw e;
    if (
      e instanceof StatesError &&
      (e.name === STATES.timeout || e.name === STATES.heartbeatTimeout) &&
      !e.cause
    ) {
      attempt.abort();
      if (token !== undefined) host.tokens.markTimedOut(token);
      if (k.kind === "invoke")
        run.emit(b.id, "TaskTimedOut", {
          taskTimedOutEventDetails: { resourceType, resource: resourceName, error: e.name },
        });
      else
        run.emit(b.id, "LambdaFunctionTimedOut", { lambdaFunctionTimedOutEventDetails: { error: e.name } });
      throw new StatesError(e.name, undefined);
    }
    throw e;
  } finally {
    for (const t of timers) clearTimeout(t);
    clearTimeout(heartbeatTimer);
    b.signal.removeEventListener("abort", onAbort);
    if (token !== undefined) host.tokens.unregister(token);
  }
}
