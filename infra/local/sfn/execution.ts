/**
 * Runs one execution: a loop over states per branch, with every move journaled (events and a
 * checkpoint) so that a restarted engine resumes each branch exactly where it stood.
 */
import { setMaxListeners } from "node:events";
import { evaluateRule, parseTimestamp } from "./choice.js";
import type { StateDef, StatesBlock } from "./definition.js";
import { errorMatches, runtimeError, STATES, StatesError } from "./errors.js";
import { runMap, runParallel } from "./fanout.js";
import type { History } from "./history.js";
import { evaluateIntrinsic, isIntrinsic } from "./intrinsics.js";
import { jsonataCatch, runJsonataState } from "./jsonata.js";
import {
  type BranchCheckpoint,
  type BranchDone,
  type ExecutionData,
  type HistoryEvent,
  type JournalRecord,
  NOT_TRUNCATED,
} from "./model.js";
import {
  applyFilterPath,
  applyResultPath,
  checkOutputSize,
  type EvalScope,
  evaluateAssign,
  evaluateTemplate,
  MAX_PAYLOAD_BYTES,
  resolvePath,
} from "./payload.js";
import { runTask } from "./task.js";
import type { TokenRegistry } from "./tokens.js";

// Executions yield to the event loop once a stretch of uninterrupted transitions (shared by all)
// has lasted this long: measured from the stretch's first check, not from the last yield, so an
// execution that starts after a quiet spell does not yield at once for nothing.
const YIELD_EVERY_MS = 5;
let stretchStart: number | undefined;
const endStretch = () => {
  stretchStart = undefined;
};
function stretchIsLong(): boolean {
  const now = Date.now();
  if (stretchStart === undefined) {
    stretchStart = now;
    // The stretch ends when the event loop next gets a turn.
    setImmediate(endStretch).unref();
    return false;
  }
  return now - stretchStart > YIELD_EVERY_MS;
}

/** Marks branch ids whose events are not recorded (DISTRIBUTED Map iterations). */
export const QUIET = "~";

/** AWS's cap on an execution's history; reaching it fails the execution. */
export const MAX_HISTORY_EVENTS = 25_000;

/** What a Lambda invocation came back with. */
export type LambdaOutcome =
  | { ok: true; payload: unknown; requestId: string }
  | { ok: false; error: string; cause: string; functionError: boolean };

/** What the runner needs from the engine around it. */
export interface RunnerHost {
  now(): number;
  region: string;
  accountId: string;
  record(r: JournalRecord): void;
  /** Journal event `id` of execution `x`'s `history`: a plain StateEntered/StateExited of branch `b`. */
  recordStateEvent(x: number, b: string, history: History, id: number): void;
  flush(): void;
  invokeLambda(
    functionName: string,
    payload: unknown,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<LambdaOutcome>;
  tokens: TokenRegistry;
  finished(exec: ExecutionData): void;
}

/** A running branch: the machine itself, a Parallel branch or a Map iteration. */
export interface Branch {
  id: string;
  signal: AbortSignal;
  /** `$$.Map.Item` of a Map iteration. */
  mapItem?: { Index: number; Value: unknown };
}

/** A state's evaluation scope whose context object is built only if a `$$` path asks for it. */
class LazyScope implements EvalScope {
  readonly stateName: string;
  readonly enteredEventId: number;
  readonly variables: Record<string, unknown>;
  private built: unknown;
  constructor(
    private readonly run: ExecutionRun,
    private readonly b: Branch,
    private readonly cp: BranchCheckpoint,
    private readonly token: string | undefined,
  ) {
    this.stateName = cp.state;
    this.enteredEventId = cp.entered;
    this.variables = cp.vars;
  }
  get context(): unknown {
    this.built ??= this.run.context(this.b, this.cp, this.token);
    return this.built;
  }
}

/** What a state hands on: its output, the next state (none at the end) and the variables. */
type StateOutcome = { output: unknown; next?: string; vars: Record<string, unknown> };

/** Thrown into a branch when it must stop (execution stopped, sibling failed). */
export class Aborted extends Error {
  override readonly name = "Aborted";
}

/**
 * Sleep until the clock reads `until`, or throw `Aborted` when `signal` fires. A timer may fire a
 * millisecond before `now()` reaches its deadline: a Wait (or back-off) never ends early.
 */
export async function sleepUntil(until: number, now: () => number, signal: AbortSignal): Promise<void> {
  await sleep(Math.max(0, until - now()), signal);
  while (now() < until) await sleep(until - now(), signal);
}

/** Sleep until `ms` from now, or throw `Aborted` when `signal` fires. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new Aborted());
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    const arm = (left: number) => {
      // setTimeout caps at ~24.8 days; long waits re-arm.
      timer = setTimeout(
        () => {
          if (left > 2 ** 31 - 1) arm(left - (2 ** 31 - 1));
          else {
            signal.removeEventListener("abort", onAbort);
            resolve();
          }
        },
        Math.max(0, Math.min(left, 2 ** 31 - 1)),
      );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    arm(ms);
  });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The execution runner. One per running execution; `start()` or `resume()` it once. */
export class ExecutionRun {
  readonly controller = new AbortController();
  private transitions = 0;
  private quietIds = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000);
  private readonly parsedInput: unknown;

  constructor(
    readonly exec: ExecutionData,
    readonly machine: StatesBlock,
    readonly host: RunnerHost,
  ) {
    this.parsedInput = JSON.parse(exec.input);
    setMaxListeners(0, this.controller.signal);
  }

  /** Run from the beginning (ExecutionStarted is emitted here). */
  start(): Promise<void> {
    this.emit("r", "ExecutionStarted", {
      executionStartedEventDetails: {
        input: this.exec.input,
        inputDetails: { truncated: false },
        roleArn: this.exec.roleArn,
      },
    });
    return this.runRoot(undefined);
  }

  /** Continue after a restart from the journaled checkpoints. */
  resume(): Promise<void> {
    const cp = this.exec.branches.get("r");
    return this.runRoot(cp && "state" in cp ? cp : undefined);
  }

  /** Stop (StopExecution): aborts every branch and records the abort. */
  stop(error: string | undefined, cause: string | undefined): void {
    if (this.exec.status !== "RUNNING") return;
    this.controller.abort();
    const details: Record<string, unknown> = {};
    if (error !== undefined) details.error = error;
    if (cause !== undefined) details.cause = cause;
    this.finish("ABORTED", { executionAbortedEventDetails: details }, "ExecutionAborted", { error, cause });
  }

  private async runRoot(cp: BranchCheckpoint | undefined): Promise<void> {
    const timeout = this.machine.TimeoutSeconds;
    let timer: NodeJS.Timeout | undefined;
    if (timeout !== undefined) {
      const left = this.exec.startDate + timeout * 1000 - this.host.now();
      timer = setTimeout(() => this.timeOut(), Math.max(0, Math.min(left, 2 ** 31 - 1)));
    }
    try {
      const output = await this.runBranch(
        { id: "r", signal: this.controller.signal },
        this.machine,
        this.parsedInput,
        cp,
        {},
      );
      const text = JSON.stringify(output);
      this.finish(
        "SUCCEEDED",
        { executionSucceededEventDetails: { output: text, outputDetails: { truncated: false } } },
        "ExecutionSucceeded",
        { output: text },
      );
    } catch (e) {
      if (e instanceof Aborted || this.exec.status !== "RUNNING") return;
      const err =
        e instanceof StatesError ? e : new StatesError(STATES.runtime, String((e as Error)?.message ?? e));
      const details: Record<string, unknown> = {};
      const error = err.name === "StatesError" ? undefined : err.name;
      if (error !== undefined) details.error = error;
      if (err.cause !== undefined) details.cause = err.cause;
      this.finish("FAILED", { executionFailedEventDetails: details }, "ExecutionFailed", {
        error,
        cause: err.cause,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private timeOut(): void {
    if (this.exec.status !== "RUNNING") return;
    this.controller.abort();
    this.finish(
      "TIMED_OUT",
      { executionTimedOutEventDetails: { error: STATES.timeout } },
      "ExecutionTimedOut",
      { error: STATES.timeout },
    );
  }

  private finish(
    status: ExecutionData["status"],
    details: Record<string, unknown>,
    type: string,
    result: { output?: string; error?: string | undefined; cause?: string | undefined },
  ): void {
    this.controller.abort();
    this.emitRaw("r", type, details, true);
    const stopDate = this.host.now();
    this.exec.status = status;
    this.exec.stopDate = stopDate;
    const rec: JournalRecord = { k: "end", x: this.exec.seq, status, stopDate };
    if (result.output !== undefined) rec.output = this.exec.output = result.output;
    if (result.error !== undefined) rec.error = this.exec.error = result.error;
    if (result.cause !== undefined) rec.cause = this.exec.cause = result.cause;
    this.exec.branches.clear();
    this.exec.lastEvent.clear();
    this.host.record(rec);
    this.host.flush();
    this.host.finished(this.exec);
  }

  /** Append a history event for branch `b`; fails the execution when the history is full. */
  emit(b: string, type: string, details: Record<string, unknown> = {}): HistoryEvent {
    // Iterations of a DISTRIBUTED Map are child executions on AWS: their events stay out of this history.
    if (b.includes(QUIET))
      return { timestamp: this.host.now(), type, id: ++this.quietIds, previousEventId: 0 };
    if (this.exec.events.length >= MAX_HISTORY_EVENTS - 1) {
      throw new StatesError(
        STATES.runtime,
        `The execution reached the maximum number of history events (${MAX_HISTORY_EVENTS}).`,
      );
    }
    return this.emitRaw(b, type, details, false);
  }

  private emitRaw(b: string, type: string, details: Record<string, unknown>, final: boolean): HistoryEvent {
    const events = this.exec.events;
    const prev = final ? events.length : (this.exec.lastEvent.get(b) ?? events.length);
    const e: HistoryEvent = {
      timestamp: this.host.now(),
      type,
      id: events.length + 1,
      previousEventId: prev,
      ...details,
    };
    events.add(e);
    this.exec.lastEvent.set(b, e.id);
    this.host.record({ k: "ev", x: this.exec.seq, b, e });
    return e;
  }

  /**
   * Append a `…StateEntered` (kind 0) or `…StateExited` (kind 1) event at time `at`, kept in the
   * history's columns and journaled by reference; returns its id.
   */
  private emitState(b: string, kind: 0 | 1, type: string, name: string, text: string, at: number): number {
    const events = this.exec.events;
    if (b.includes(QUIET) || events.length >= MAX_HISTORY_EVENTS - 1)
      return (
        kind === 0
          ? this.emit(b, type, {
              stateEnteredEventDetails: { name, input: text, inputDetails: NOT_TRUNCATED },
            })
          : this.emit(b, type, {
              stateExitedEventDetails: { name, output: text, outputDetails: NOT_TRUNCATED },
            })
      ).id;
    const previousEventId = this.exec.lastEvent.get(b) ?? events.length;
    const id = events.addState(at, type, previousEventId, kind, name, text);
    this.exec.lastEvent.set(b, id);
    this.host.recordStateEvent(this.exec.seq, b, events, id);
    return id;
  }

  /** Persist a branch checkpoint (journaled with the events before it, atomically per flush). */
  checkpoint(b: string, cp: BranchCheckpoint): void {
    this.exec.branches.set(b, cp);
    // On entering a state its input is already in the StateEntered event: the journal takes it
    // from there on replay instead of writing it twice (quiet branches have no events to take from).
    if (cp.phase === "enter" && !b.includes(QUIET)) {
      // Without variables, the StateEntered event says it all: replay derives the checkpoint from it.
      if (isEmpty(cp.vars)) return;
      const { input: _input, ...rest } = cp;
      this.host.record({ k: "cp", x: this.exec.seq, b, c: rest as BranchCheckpoint });
    } else this.host.record({ k: "cp", x: this.exec.seq, b, c: cp });
  }

  /** Record a child branch's end, so a restart does not run it again. */
  branchDone(b: string, d: BranchDone): void {
    this.exec.branches.set(b, { done: d });
    this.host.record({ k: "done", x: this.exec.seq, b, d });
  }

  /** Forget the children of a branch once their parent state is over. */
  clearChildren(b: string): void {
    const prefix = `${b}.`;
    for (const k of this.exec.branches.keys()) if (k.startsWith(prefix)) this.exec.branches.delete(k);
    for (const k of this.exec.lastEvent.keys()) if (k.startsWith(prefix)) this.exec.lastEvent.delete(k);
    this.host.record({ k: "clear", x: this.exec.seq, b });
  }

  /** The context object (`$$`) for a state. */
  context(b: Branch, cp: BranchCheckpoint, token?: string): Record<string, unknown> {
    const ctx: Record<string, unknown> = {
      Execution: {
        Id: this.exec.executionArn,
        Input: this.parsedInput,
        Name: this.exec.name,
        RoleArn: this.exec.roleArn,
        StartTime: iso(this.exec.startDate),
        RedriveCount: 0,
      },
      StateMachine: { Id: this.exec.stateMachineArn, Name: this.exec.stateMachineName },
      State: {
        EnteredTime: iso(this.exec.events.timestampOf(cp.entered) ?? this.host.now()),
        Name: cp.state,
      },
    };
    if (cp.phase !== "enter" || cp.retries)
      (ctx.State as Record<string, unknown>).RetryCount = this.retryCount(cp);
    if (token !== undefined) ctx.Task = { Token: token };
    if (b.mapItem) ctx.Map = { Item: b.mapItem };
    return ctx;
  }

  private retryCount(cp: BranchCheckpoint): number {
    return (cp.retries ?? []).reduce((a, n) => a + n, 0);
  }

  /** Does this state use the JSONata query language (its own setting, else the machine's)? */
  isJsonata(st: StateDef): boolean {
    return (st.QueryLanguage ?? this.machine.QueryLanguage) === "JSONata";
  }

  /** The evaluation scope of a state. */
  scope(b: Branch, cp: BranchCheckpoint, token?: string): EvalScope {
    return new LazyScope(this, b, cp, token);
  }

  /**
   * Run a branch's states from `StartAt` (or from `resumeAt`) to its end; returns the output or
   * throws the `StatesError` that ended it (or `Aborted`).
   */
  async runBranch(
    b: Branch,
    block: StatesBlock,
    input: unknown,
    resumeAt: BranchCheckpoint | undefined,
    vars: Record<string, unknown>,
  ): Promise<unknown> {
    let cp = resumeAt;
    let name = cp?.state ?? block.StartAt;
    let stateInput = cp?.input ?? input;
    let variables = cp?.vars ?? vars;
    // The JSON text of the state's input, when known (the previous state's output): serialized once.
    let inputText: string | undefined;
    // When the previous state was left: the next one is entered at that same instant (a clock read
    // is dear on some machines, and the two events are written back to back).
    let leftAt: number | undefined;
    for (;;) {
      if (b.signal.aborted) throw new Aborted();
      const st = block.States[name] as StateDef;
      const types = stateEventTypes(st.Type);
      // The input was size-checked already when it was the previous state's output.
      const checkInput = inputText === undefined;
      if (!cp) {
        inputText ??= JSON.stringify(stateInput) ?? "null";
        const entered = this.emitState(b.id, 0, types[0], name, inputText, leftAt ?? this.host.now());
        cp = { state: name, input: stateInput, entered, vars: variables, phase: "enter" };
        this.checkpoint(b.id, cp);
      }
      // Yield to the event loop now and then so a long chain never starves other executions. Only
      // here, once the next state is entered: a flush (at a macrotask's end) never falls between a
      // state's exit and the next entry, where a restart would resume at the exited state and run
      // it again (the journal places a branch by its last entry).
      if (++this.transitions % 64 === 0 && stretchIsLong()) {
        await new Promise((r) => setImmediate(r));
        if (b.signal.aborted) throw new Aborted();
      }
      let out: StateOutcome;
      try {
        if (checkInput) checkTextSize(name, inputText ?? JSON.stringify(stateInput) ?? "null");
        const r = this.runState(b, st, cp);
        out = r instanceof Promise ? await r : r;
      } catch (e) {
        out = await this.failed(b, st, cp, e);
      }
      // A state that hands on its input unchanged (same object; the engine never mutates a payload)
      // hands on its text too, already serialized and size-checked: no second serialization.
      const outputText =
        out.output === stateInput && inputText !== undefined && PASS_THROUGH.has(st.Type)
          ? inputText
          : serialized(name, out.output);
      if (st.Type !== "Fail") {
        leftAt = this.host.now();
        this.emitState(b.id, 1, types[1], name, outputText, leftAt);
      }
      if (out.next === undefined) return out.output;
      name = out.next;
      stateInput = out.output;
      inputText = outputText;
      variables = out.vars;
      cp = undefined;
    }
  }

  /** A state's failure: its `Catch` handles it (the outcome), or it is thrown on (or `Aborted`). */
  private async failed(b: Branch, st: StateDef, cp: BranchCheckpoint, e: unknown): Promise<StateOutcome> {
    if (e instanceof Aborted || b.signal.aborted) throw new Aborted();
    const err =
      e instanceof StatesError ? e : new StatesError(STATES.runtime, String((e as Error)?.message ?? e));
    if (err.name === "States.QueryEvaluationError" && this.isJsonata(st)) {
      // AWS records a failed evaluation as its own event (and, for a Map, the Map's failure).
      const details: Record<string, unknown> = { error: err.name, state: cp.state };
      if (err.cause !== undefined) details.cause = err.cause;
      this.emit(b.id, "EvaluationFailed", { evaluationFailedEventDetails: details });
      if (st.Type === "Map") this.emit(b.id, "MapStateFailed");
    }
    const caught = await this.tryCatch(b, st, cp, err);
    if (!caught) throw err;
    return caught;
  }

  private async tryCatch(
    b: Branch,
    st: StateDef,
    cp: BranchCheckpoint,
    err: StatesError,
  ): Promise<{ output: unknown; next: string; vars: Record<string, unknown> } | undefined> {
    const catchers = st.Catch as Array<Record<string, unknown>> | undefined;
    if (!catchers) return undefined;
    for (const c of catchers) {
      if (!errorMatches(c.ErrorEquals as string[], err.name)) continue;
      const errorOutput = { Error: err.name, Cause: err.cause ?? "" };
      if (this.isJsonata(st)) return jsonataCatch(this, b, cp, c, errorOutput);
      const scope = this.scope(b, cp);
      const output = applyResultPath(c.ResultPath as string | null | undefined, cp.input, errorOutput, scope);
      const vars = c.Assign
        ? evaluateAssign(c.Assign as Record<string, unknown>, cp.input, errorOutput, scope)
        : cp.vars;
      return { output, next: c.Next as string, vars };
    }
    return undefined;
  }

  // Not async: Pass, Choice, Succeed and Fail answer at once, without a trip through the microtask queue.
  private runState(b: Branch, st: StateDef, cp: BranchCheckpoint): StateOutcome | Promise<StateOutcome> {
    const next = st.End === true ? undefined : (st.Next as string | undefined);
    if (this.isJsonata(st))
      return st.Type === "Map" || st.Type === "Parallel"
        ? this.withRetry(b, st, cp, next)
        : runJsonataState(this, b, st, cp, next, 0);
    const scope = this.scope(b, cp);
    switch (st.Type) {
      case "Pass": {
        const effective = applyFilterPath(
          "InputPath",
          st.InputPath as string | null | undefined,
          cp.input,
          scope,
        );
        let result: unknown = effective;
        if (st.Result !== undefined) result = st.Result;
        else if (st.Parameters !== undefined) result = evaluateTemplate(st.Parameters, effective, scope);
        return this.finishState(st, cp, scope, result, next);
      }
      case "Succeed": {
        const effective = applyFilterPath(
          "InputPath",
          st.InputPath as string | null | undefined,
          cp.input,
          scope,
        );
        const output = applyFilterPath(
          "OutputPath",
          st.OutputPath as string | null | undefined,
          effective,
          scope,
        );
        return { output, vars: cp.vars };
      }
      case "Fail":
        throw this.failError(st, cp, scope);
      case "Choice": {
        const effective = applyFilterPath(
          "InputPath",
          st.InputPath as string | null | undefined,
          cp.input,
          scope,
        );
        let target: string | undefined;
        let assign: unknown;
        for (const rule of st.Choices as Array<Record<string, unknown>>) {
          if (evaluateRule(rule, effective, scope)) {
            target = rule.Next as string;
            assign = rule.Assign;
            break;
          }
        }
        if (target === undefined) {
          target = st.Default as string | undefined;
          assign = undefined;
        }
        if (target === undefined)
          throw new StatesError(STATES.noChoiceMatched, `No Matches! in state '${cp.state}'`);
        const output = applyFilterPath(
          "OutputPath",
          st.OutputPath as string | null | undefined,
          effective,
          scope,
        );
        let vars = cp.vars;
        if (st.Assign)
          vars = evaluateAssign(st.Assign as Record<string, unknown>, effective, undefined, scope);
        if (assign)
          vars = evaluateAssign(assign as Record<string, unknown>, effective, undefined, {
            ...scope,
            variables: vars,
          });
        return { output, next: target, vars };
      }
      case "Wait":
        return this.runWait(b, st, cp, next);
      case "Task":
      case "Parallel":
      case "Map":
        return this.withRetry(b, st, cp, next);
      default:
        throw runtimeError(cp.state, cp.entered, `Unsupported state type ${st.Type}`);
    }
  }

  private async runWait(
    b: Branch,
    st: StateDef,
    cpIn: BranchCheckpoint,
    next: string | undefined,
  ): Promise<StateOutcome> {
    let cp = cpIn;
    const scope = this.scope(b, cp);
    const effective = applyFilterPath(
      "InputPath",
      st.InputPath as string | null | undefined,
      cp.input,
      scope,
    );
    let until = cp.phase === "wait" ? cp.until : undefined;
    if (until === undefined) {
      until = this.waitUntil(st, effective, scope);
      cp = { ...cp, phase: "wait", until };
      this.checkpoint(b.id, cp);
    }
    await sleepUntil(until, () => this.host.now(), b.signal);
    const output = applyFilterPath(
      "OutputPath",
      st.OutputPath as string | null | undefined,
      effective,
      scope,
    );
    const vars = st.Assign
      ? evaluateAssign(st.Assign as Record<string, unknown>, effective, undefined, scope)
      : cp.vars;
    return { output, next, vars };
  }

  /** ResultSelector → ResultPath → OutputPath → Assign, common to Pass, Task, Parallel, Map. */
  finishState(
    st: StateDef,
    cp: BranchCheckpoint,
    scope: EvalScope,
    rawResult: unknown,
    next: string | undefined,
  ): { output: unknown; next?: string; vars: Record<string, unknown> } {
    let result = rawResult;
    if (st.ResultSelector !== undefined) result = evaluateTemplate(st.ResultSelector, result, scope);
    const vars = st.Assign
      ? evaluateAssign(st.Assign as Record<string, unknown>, cp.input, result, scope)
      : cp.vars;
    const merged = applyResultPath(st.ResultPath as string | null | undefined, cp.input, result, scope);
    const output = applyFilterPath("OutputPath", st.OutputPath as string | null | undefined, merged, scope);
    return next === undefined ? { output, vars } : { output, next, vars };
  }

  private failError(st: StateDef, cp: BranchCheckpoint, scope: EvalScope): StatesError {
    const pick = (plain: unknown, path: unknown, field: string): string | undefined => {
      if (typeof plain === "string") return plain;
      if (typeof path !== "string") return undefined;
      let v: unknown;
      if (isIntrinsic(path)) v = evaluateIntrinsic(path, (p) => this.mustResolve(p, cp.input, scope, field));
      else v = this.mustResolve(path, cp.input, scope, field);
      return typeof v === "string" ? v : JSON.stringify(v);
    };
    const error = pick(st.Error, st.ErrorPath, "ErrorPath");
    const cause = pick(st.Cause, st.CausePath, "CausePath");
    // An error with no name still fails the execution; it is reported without error/cause fields.
    return new StatesError(error ?? "StatesError", cause);
  }

  private mustResolve(path: string, input: unknown, scope: EvalScope, field: string): unknown {
    const r = resolvePath(path, input, scope);
    if (!r.found)
      throw runtimeError(
        scope.stateName,
        scope.enteredEventId,
        `The JSONPath '${path}' specified for the field '${field}' could not be found in the input '${JSON.stringify(input)}'`,
      );
    return r.value;
  }

  private waitUntil(st: StateDef, input: unknown, scope: EvalScope): number {
    const now = this.host.now();
    if (typeof st.Seconds === "number") return now + st.Seconds * 1000;
    if (typeof st.Timestamp === "string") {
      const t = parseTimestamp(st.Timestamp);
      if (t === undefined)
        throw runtimeError(
          scope.stateName,
          scope.enteredEventId,
          `The Timestamp value is not a valid ISO-8601 date-time: ${st.Timestamp}`,
        );
      return t;
    }
    if (typeof st.SecondsPath === "string") {
      const r = resolvePath(st.SecondsPath, input, scope);
      const fail = (m: string) => runtimeError(scope.stateName, scope.enteredEventId, m);
      if (!r.found)
        throw fail(`The SecondsPath parameter does not reference an input value: ${st.SecondsPath}`);
      const v = r.value;
      if (typeof v !== "number" || !Number.isInteger(v))
        throw fail(
          `The SecondsPath parameter cannot be parsed as a long value: ${st.SecondsPath} == ${show(v)}`,
        );
      if (v < 0)
        throw fail(`The SecondsPath parameter references a negative value: ${st.SecondsPath} == ${v}`);
      return now + v * 1000;
    }
    const path = st.TimestampPath as string;
    const r = resolvePath(path, input, scope);
    const t = r.found ? parseTimestamp(r.value) : undefined;
    if (t === undefined)
      throw runtimeError(
        scope.stateName,
        scope.enteredEventId,
        r.found
          ? `The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: ${path} == ${show(r.value)}`
          : `The TimestampPath parameter does not reference an input value: ${path}`,
      );
    return t;
  }

  /** Task, Parallel and Map: run attempts, applying Retry with persisted counts and back-off deadlines. */
  private async withRetry(
    b: Branch,
    st: StateDef,
    cpIn: BranchCheckpoint,
    next: string | undefined,
  ): Promise<{ output: unknown; next?: string; vars: Record<string, unknown> }> {
    let cp = cpIn;
    const retriers = (st.Retry as Array<Record<string, unknown>> | undefined) ?? [];
    for (;;) {
      if (cp.phase === "retry" && cp.until !== undefined) {
        await sleepUntil(cp.until, () => this.host.now(), b.signal);
        cp = { ...cp, phase: "enter" };
        delete cp.until;
      }
      try {
        const attempt = (cp.retries ?? []).reduce((a, n) => a + n, 0);
        if (this.isJsonata(st)) return await runJsonataState(this, b, st, cp, next, attempt);
        const raw =
          st.Type === "Task"
            ? await runTask(this, b, st, cp)
            : st.Type === "Parallel"
              ? await runParallel(this, b, st, cp, attempt)
              : await runMap(this, b, st, cp, attempt);
        return this.finishState(st, cp, this.scope(b, cp), raw, next);
      } catch (e) {
        if (e instanceof Aborted || b.signal.aborted) throw new Aborted();
        if (!(e instanceof StatesError) || e.name === STATES.runtime) {
          if ((st.Type === "Map" || st.Type === "Parallel") && isChildFailure(e))
            this.emit(b.id, `${st.Type}StateFailed`);
          throw e;
        }
        const i = retriers.findIndex((r) => errorMatches(r.ErrorEquals as string[], e.name));
        const r = retriers[i];
        const counts = [...(cp.retries ?? [])];
        const used = counts[i] ?? 0;
        if (!r || used >= ((r.MaxAttempts as number | undefined) ?? 3)) {
          // Map and Parallel report their failure once, when no retry follows.
          if ((st.Type === "Map" || st.Type === "Parallel") && isChildFailure(e))
            this.emit(b.id, `${st.Type}StateFailed`);
          throw e;
        }
        let delay =
          ((r.IntervalSeconds as number | undefined) ?? 1) *
          ((r.BackoffRate as number | undefined) ?? 2) ** used;
        if (typeof r.MaxDelaySeconds === "number") delay = Math.min(delay, r.MaxDelaySeconds);
        if (r.JitterStrategy === "FULL") delay = Math.random() * delay;
        counts[i] = used + 1;
        cp = {
          state: cp.state,
          input: cp.input,
          entered: cp.entered,
          vars: cp.vars,
          phase: "retry",
          retries: counts,
        };
        cp.until = this.host.now() + Math.round(delay * 1000);
        this.checkpoint(b.id, cp);
      }
    }
  }
}

// States whose output, when it is their input object, is unchanged since entry: no outside code
// (a Lambda target given the payload by reference) ran in between.
const PASS_THROUGH = new Set(["Pass", "Choice", "Succeed", "Wait"]);

// One string per event type, not a new one per event (they are kept in every history).
const STATE_EVENT_TYPES = new Map<string, readonly [string, string]>();
function stateEventTypes(stateType: string): readonly [string, string] {
  let pair = STATE_EVENT_TYPES.get(stateType);
  if (!pair) {
    pair = [`${stateType}StateEntered`, `${stateType}StateExited`];
    // Only the few ASL types reach here; the bound is a guard, not a cache policy.
    if (STATE_EVENT_TYPES.size < 64) STATE_EVENT_TYPES.set(stateType, pair);
  }
  return pair;
}

/** Did this error come out of a child branch (rather than from evaluating the state's own fields)? */
function isChildFailure(e: unknown): boolean {
  return e instanceof StatesError && (e as StatesError & { fromChild?: boolean }).fromChild === true;
}

function isEmpty(o: Record<string, unknown>): boolean {
  for (const _ in o) return false;
  return true;
}

/** A state's output as JSON text, size-checked. */
function serialized(stateName: string, output: unknown): string {
  const text = JSON.stringify(output) ?? "null";
  checkTextSize(stateName, text);
  return text;
}

/** Throw `States.DataLimitExceeded` when a payload's JSON text is over 256 KiB. */
function checkTextSize(stateName: string, text: string): void {
  // A UTF-8 character takes at most 3 bytes per UTF-16 unit: short texts need no exact count.
  if (text.length * 3 <= MAX_PAYLOAD_BYTES) return;
  if (Buffer.byteLength(text, "utf8") > MAX_PAYLOAD_BYTES) checkOutputSize(stateName, JSON.parse(text));
}

function show(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}
