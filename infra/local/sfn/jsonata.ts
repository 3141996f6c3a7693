/**
 * The JSONata query language (`QueryLanguage: "JSONata"`): `{% … %}` expressions with `$states`
 * (input, result, errorOutput, context) and the variables bound, AWS's extra functions
 * (`$partition`, `$range`, `$hash`, `$random`, `$uuid`, `$parse`), and the states that use them.
 */
import { createHash, randomUUID } from "node:crypto";
import jsonata from "jsonata";
import { parseTimestamp } from "./choice.js";
import type { StateDef, StatesBlock } from "./definition.js";
import { StatesError } from "./errors.js";
import { type Branch, type ExecutionRun, sleepUntil } from "./execution.js";
import { runChildrenOf } from "./fanout.js";
import type { BranchCheckpoint } from "./model.js";

type Outcome = { output: unknown; next?: string; vars: Record<string, unknown> };
type Expr = ReturnType<typeof jsonata>;

const compiled = new Map<string, Expr>();
const HASHES: Record<string, string> = {
  MD5: "md5",
  "SHA-1": "sha1",
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
};

/** Is `v` a `{% expression %}` string? Returns the expression. */
export function expressionOf(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  return t.startsWith("{%") && t.endsWith("%}") ? t.slice(2, -2).trim() : undefined;
}

function compile(text: string): Expr {
  let e = compiled.get(text);
  if (e) return e;
  e = jsonata(text);
  e.registerFunction(
    "partition",
    (a: unknown[], n: number) => {
      const out: unknown[][] = [];
      for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
      return out;
    },
    "<an:a>",
  );
  e.registerFunction(
    "range",
    (start: number, end: number, step: number) => {
      const out: number[] = [];
      for (let x = start; step > 0 ? x <= end : x >= end; x += step) {
        out.push(x);
        if (out.length > 1000) throw new Error("$range: more than 1000 items");
      }
      return out;
    },
    "<nnn:a>",
  );
  e.registerFunction(
    "hash",
    (data: string, algo: string) => {
      const a = HASHES[algo];
      if (!a) throw new Error(`$hash: unknown algorithm ${algo}`);
      return createHash(a).update(data).digest("hex");
    },
    "<ss:s>",
  );
  e.registerFunction(
    "random",
    (seed?: number) => {
      if (seed === undefined) return Math.random();
      return createHash("sha256").update(String(seed)).digest().readUInt32BE(0) / 2 ** 32;
    },
    "<n?:n>",
  );
  e.registerFunction("uuid", () => randomUUID(), "<:s>");
  e.registerFunction("parse", (s: string) => JSON.parse(s), "<s:j>");
  if (compiled.size > 5000) compiled.clear();
  compiled.set(text, e);
  return e;
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** Evaluation environment of one state. */
export class JsonataScope {
  constructor(
    readonly stateName: string,
    readonly enteredEventId: number,
    readonly states: Record<string, unknown>,
    readonly variables: Record<string, unknown>,
  ) {}

  fail(message: string): StatesError {
    return new StatesError(
      "States.QueryEvaluationError",
      `An error occurred while executing the state '${this.stateName}' (entered at the event id #${this.enteredEventId}). ${message}`,
    );
  }

  /** Evaluate one expression for `field` (e.g. `Output/result`). */
  async expression(text: string, field: string): Promise<unknown> {
    let v: unknown;
    try {
      v = await compile(text).evaluate({}, { ...this.variables, states: this.states });
    } catch (e) {
      const err = e as { message?: string };
      throw this.fail(
        `The JSONata expression '${text}' specified for the field '${field}' threw an error: ${err.message ?? String(e)}`,
      );
    }
    if (v === undefined)
      throw this.fail(
        `The JSONata expression '${text}' specified for the field '${field}' returned nothing (undefined).`,
      );
    const lambda = typeof v === "object" && v !== null && "_jsonata_lambda" in v;
    if (typeof v === "function" || lambda)
      throw this.fail(
        `The JSONata expression '${text}' specified for the field '${field}' returned an unsupported result type.`,
      );
    return JSON.parse(JSON.stringify(v));
  }

  /** Evaluate a field's value: expressions anywhere inside it, everything else literal. */
  async value(v: unknown, field: string): Promise<unknown> {
    const expr = expressionOf(v);
    if (expr !== undefined) return this.expression(expr, field);
    if (Array.isArray(v)) return Promise.all(v.map((x, i) => this.value(x, `${field}[${i}]`)));
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = await this.value(x, `${field}/${k}`);
      return out;
    }
    return v;
  }

  /** `Assign`: every value sees the variables as they were before the state. */
  async assign(assign: unknown): Promise<Record<string, unknown>> {
    if (!assign || typeof assign !== "object") return this.variables;
    const values = (await this.value(assign, "Assign")) as Record<string, unknown>;
    return { ...this.variables, ...values };
  }
}

function scopeOf(
  run: ExecutionRun,
  b: Branch,
  cp: BranchCheckpoint,
  extra: Record<string, unknown> = {},
): JsonataScope {
  return new JsonataScope(
    cp.state,
    cp.entered,
    { input: cp.input, context: run.context(b, cp), ...extra },
    cp.vars,
  );
}

/** Output (default: `fallback`) and Assign of a state, both against the same scope. */
async function finish(
  s: JsonataScope,
  st: StateDef,
  fallback: unknown,
  next: string | undefined,
): Promise<Outcome> {
  const output = st.Output !== undefined ? await s.value(st.Output, "Output") : fallback;
  const vars = await s.assign(st.Assign);
  return next === undefined ? { output, vars } : { output, next, vars };
}

/** Run a JSONata state (Pass, Succeed, Fail, Choice, Wait, Parallel, Map). */
export async function runJsonataState(
  run: ExecutionRun,
  b: Branch,
  st: StateDef,
  cpIn: BranchCheckpoint,
  next: string | undefined,
  attempt: number,
): Promise<Outcome> {
  let cp = cpIn;
  const s = scopeOf(run, b, cp);
  switch (st.Type) {
    case "Pass":
      return finish(s, st, cp.input, next);
    case "Succeed":
      return finish(s, st, cp.input, undefined);
    case "Fail": {
      const error = st.Error !== undefined ? await s.value(st.Error, "Error") : undefined;
      const cause = st.Cause !== undefined ? await s.value(st.Cause, "Cause") : undefined;
      const text = (v: unknown) =>
        v === undefined ? undefined : typeof v === "string" ? v : JSON.stringify(v);
      throw new StatesError(text(error) ?? "StatesError", text(cause));
    }
    case "Choice": {
      for (const rule of st.Choices as Array<Record<string, unknown>>) {
        const ok = await s.value(rule.Condition, "Condition");
        if (typeof ok !== "boolean")
          throw s.fail(`The Condition must evaluate to a boolean, got ${JSON.stringify(ok)}`);
        if (!ok) continue;
        const output =
          rule.Output !== undefined
            ? await s.value(rule.Output, "Output")
            : st.Output !== undefined
              ? await s.value(st.Output, "Output")
              : cp.input;
        const vars = rule.Assign !== undefined ? await s.assign(rule.Assign) : await s.assign(st.Assign);
        return { output, next: rule.Next as string, vars };
      }
      if (st.Default === undefined)
        throw new StatesError("States.NoChoiceMatched", `No Matches! in state '${cp.state}'`);
      return finish(s, st, cp.input, st.Default as string);
    }
    case "Wait": {
      let until = cp.phase === "wait" ? cp.until : undefined;
      if (until === undefined) {
        if (st.Seconds !== undefined) {
          const secs = await s.value(st.Seconds, "Seconds");
          if (typeof secs !== "number" || !Number.isInteger(secs) || secs < 0)
            throw s.fail(`The Seconds field must be a non-negative integer, got ${JSON.stringify(secs)}`);
          until = run.host.now() + secs * 1000;
        } else {
          const ts = await s.value(st.Timestamp, "Timestamp");
          const t = parseTimestamp(ts);
          if (t === undefined)
            throw s.fail(
              `The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: ${typeof ts === "string" ? ts : JSON.stringify(ts)}`,
            );
          until = t;
        }
        cp = { ...cp, phase: "wait", until };
        run.checkpoint(b.id, cp);
      }
      await sleepUntil(until, () => run.host.now(), b.signal);
      return finish(s, st, cp.input, next);
    }
    case "Parallel": {
      const input = st.Arguments !== undefined ? await s.value(st.Arguments, "Arguments") : cp.input;
      const branches = st.Branches as StatesBlock[];
      if (cp.phase !== "children") {
        run.emit(b.id, "ParallelStateStarted");
        run.checkpoint(b.id, { ...cp, phase: "children" });
      }
      const result = await runChildrenOf(
        run,
        b,
        { ...cp, phase: "children" },
        attempt,
        branches.map((block) => ({ block, input })),
        branches.length,
        false,
      );
      return finish(scopeOf(run, b, cp, { result }), st, result, next);
    }
    case "Map": {
      let items: unknown;
      if (st.Items !== undefined) {
        const expr = expressionOf(st.Items);
        items = await s.value(st.Items, "Items");
        if (expr !== undefined && !Array.isArray(items))
          throw s.fail(
            `The JSONata expression '${expr}' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '${kindOf(items)}' for value: ${JSON.stringify(items)}`,
          );
      } else items = cp.input;
      if (!Array.isArray(items))
        throw s.fail(`Map state input must be an array but was: ${JSON.stringify(items)}`);
      const processor = (st.ItemProcessor ?? st.Iterator) as StatesBlock & {
        ProcessorConfig?: { Mode?: string };
      };
      const distributed = processor.ProcessorConfig?.Mode === "DISTRIBUTED";
      if (cp.phase !== "children")
        run.emit(b.id, "MapStateStarted", { mapStateStartedEventDetails: { length: items.length } });
      const max = st.MaxConcurrency !== undefined ? await s.value(st.MaxConcurrency, "MaxConcurrency") : 0;
      const children = [];
      for (let index = 0; index < items.length; index++) {
        const mapItem = { Index: index, Value: items[index] };
        let input: unknown = items[index];
        if (st.ItemSelector !== undefined) {
          const is = scopeOf(run, { ...b, mapItem }, cp);
          input = await is.value(st.ItemSelector, "ItemSelector");
        }
        children.push({ block: processor, input, mapItem });
      }
      const mapRunArn = `${run.exec.stateMachineArn.replace(":stateMachine:", ":mapRun:")}/${cp.state}:${cp.entered}`;
      if (cp.phase !== "children") {
        if (distributed) run.emit(b.id, "MapRunStarted", { mapRunStartedEventDetails: { mapRunArn } });
        run.checkpoint(b.id, { ...cp, phase: "children" });
      }
      const limit = distributed ? Number(max) || 1000 : Math.min(Number(max) || 40, 40);
      const result = await runChildrenOf(
        run,
        b,
        { ...cp, phase: "children" },
        attempt,
        children,
        limit,
        distributed,
        cp.state,
      );
      if (distributed) run.emit(b.id, "MapRunSucceeded");
      run.emit(b.id, "MapStateSucceeded");
      return finish(scopeOf(run, b, cp, { result }), st, result, next);
    }
    default:
      throw s.fail(`${st.Type} states are not supported with JSONata by the embedded engine`);
  }
}

/** Catch in JSONata: Output (default: the error output) and Assign see `$states.errorOutput`. */
export async function jsonataCatch(
  run: ExecutionRun,
  b: Branch,
  cp: BranchCheckpoint,
  catcher: Record<string, unknown>,
  errorOutput: unknown,
): Promise<{ output: unknown; next: string; vars: Record<string, unknown> }> {
  const s = scopeOf(run, b, cp, { errorOutput });
  const output = catcher.Output !== undefined ? await s.value(catcher.Output, "Output") : errorOutput;
  const vars = await s.assign(catcher.Assign);
  return { output, next: catcher.Next as string, vars };
}
