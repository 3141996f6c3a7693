/**
 * State-machine definitions: parsing and validation on Create/UpdateStateMachine. A fault is
 * reported as AWS does, `Invalid State Machine Definition: 'CODE: what at /path'`.
 */
import { CHOICE_OPERATORS } from "./choice.js";
import { apiErrors } from "./errors.js";
import { isIntrinsic, parseIntrinsic } from "./intrinsics.js";
import { isReferencePath, isValidPath } from "./jsonpath.js";
import { isVariableRef } from "./payload.js";

/** A state of the definition, loosely typed: validation has checked what the engine relies on. */
export type StateDef = Record<string, unknown> & { Type: string };

/** A `{StartAt, States}` block: the machine itself, a Parallel branch or a Map's processor. */
export interface StatesBlock {
  StartAt: string;
  States: Record<string, StateDef>;
  TimeoutSeconds?: number;
  QueryLanguage?: string;
}

/** AWS's limit on a definition's size (characters). */
export const MAX_DEFINITION_CHARS = 1_048_576;
const MAX_DEPTH = 40;
const STATE_TYPES = new Set(["Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"]);
const TERMINAL_TYPES = new Set(["Succeed", "Fail", "Choice"]);

class Fault extends Error {}

function fault(code: string, what: string, at: string): never {
  throw new Fault(`${code}: ${what} at ${at || "/"}`);
}

/** Parse and validate a definition; throws the API's `InvalidDefinition` error. */
export function parseDefinition(text: string): StatesBlock {
  if (text.length > MAX_DEFINITION_CHARS)
    throw apiErrors.invalidDefinition(`Definition exceeds the maximum of ${MAX_DEFINITION_CHARS} characters`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw apiErrors.invalidDefinition(
      `Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: ${(e as Error).message}'`,
    );
  }
  try {
    const lang = isObj(value) && value.QueryLanguage === "JSONata" ? "JSONata" : "JSONPath";
    checkBlock(value, "", 0, true, lang);
  } catch (e) {
    if (e instanceof Fault)
      throw apiErrors.invalidDefinition(`Invalid State Machine Definition: '${e.message}'`);
    throw e;
  }
  return value as StatesBlock;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkLanguage(v: Record<string, unknown>, at: string): void {
  if (v.QueryLanguage !== undefined && v.QueryLanguage !== "JSONPath" && v.QueryLanguage !== "JSONata")
    fault("SCHEMA_VALIDATION_FAILED", `QueryLanguage must be JSONPath or JSONata`, `${at}/QueryLanguage`);
}

function checkBlock(v: unknown, at: string, depth: number, top: boolean, lang: string): void {
  if (depth > MAX_DEPTH) fault("SCHEMA_VALIDATION_FAILED", `nesting deeper than ${MAX_DEPTH} levels`, at);
  if (!isObj(v)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", at);
  checkLanguage(v, at);
  if (typeof v.StartAt !== "string")
    fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [StartAt]", at);
  if (!isObj(v.States) || Object.keys(v.States).length === 0)
    fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [States]", at);
  if (top && v.TimeoutSeconds !== undefined) checkPositiveInt(v.TimeoutSeconds, `${at}/TimeoutSeconds`);
  const states = v.States;
  const names = new Set(Object.keys(states));
  if (!names.has(v.StartAt))
    fault("MISSING_TRANSITION_TARGET", `Missing 'StartAt' target: ${v.StartAt}`, `${at}/StartAt`);
  const edges = new Map<string, string[]>();
  for (const [name, st] of Object.entries(states)) {
    const sat = `${at}/States/${name}`;
    if (name.length === 0 || name.length > 80)
      fault("SCHEMA_VALIDATION_FAILED", "State names must be 1 to 80 characters", sat);
    edges.set(name, checkState(st, sat, names, depth, lang));
  }
  // Every state must be reachable from StartAt, as AWS requires.
  const seen = new Set<string>([v.StartAt]);
  const todo = [v.StartAt];
  while (todo.length > 0) {
    for (const n of edges.get(todo.pop() as string) ?? []) {
      if (!seen.has(n)) {
        seen.add(n);
        todo.push(n);
      }
    }
  }
  for (const name of names)
    if (!seen.has(name))
      fault("MISSING_TRANSITION_TARGET", `State "${name}" is not reachable`, `${at}/States/${name}`);
}

function checkPositiveInt(v: unknown, at: string): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > 99999999)
    fault("SCHEMA_VALIDATION_FAILED", "Expected a positive integer", at);
}

function checkPath(v: unknown, at: string, reference = false): void {
  if (v === null) return;
  if (typeof v !== "string") fault("SCHEMA_VALIDATION_FAILED", "Expected a JSONPath string", at);
  const ok = isVariableRef(v)
    ? true
    : reference
      ? isReferencePath(v)
      : isValidPath(v.startsWith("$$") ? v.slice(1) : v);
  if (!ok)
    fault(
      "SCHEMA_VALIDATION_FAILED",
      `The value for the field is not a valid ${reference ? "Reference Path" : "JSONPath"}: ${v}`,
      at,
    );
}

function checkTemplate(v: unknown, at: string, depth: number): void {
  if (depth > 64) fault("SCHEMA_VALIDATION_FAILED", "payload template nested too deeply", at);
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      checkTemplate(x, `${at}[${i}]`, depth + 1);
    });
    return;
  }
  if (!isObj(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (k.endsWith(".$")) {
      if (typeof x !== "string")
        fault("SCHEMA_VALIDATION_FAILED", `The value for the field '${k}' must be a STRING`, `${at}/${k}`);
      if (isIntrinsic(x.trim())) {
        try {
          parseIntrinsic(x.trim());
        } catch (e) {
          fault("SCHEMA_VALIDATION_FAILED", (e as Error).message, `${at}/${k}`);
        }
      } else checkPath(x.trim(), `${at}/${k}`);
    } else checkTemplate(x, `${at}/${k}`, depth + 1);
  }
}

function checkErrorList(v: unknown, at: string): void {
  if (!Array.isArray(v) || v.length === 0 || v.some((e) => typeof e !== "string"))
    fault("SCHEMA_VALIDATION_FAILED", "ErrorEquals must be a non-empty array of strings", at);
  if (v.includes("States.ALL") && v.length > 1)
    fault("SCHEMA_VALIDATION_FAILED", "States.ALL must appear alone in ErrorEquals", at);
}

function checkState(st: unknown, at: string, names: Set<string>, depth: number, lang: string): string[] {
  if (!isObj(st)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", at);
  checkLanguage(st, at);
  const type = st.Type;
  if (typeof type !== "string" || !STATE_TYPES.has(type))
    fault("SCHEMA_VALIDATION_FAILED", `Unknown state type ${JSON.stringify(type)}`, `${at}/Type`);
  const next: string[] = [];
  const target = (n: unknown, where: string) => {
    if (typeof n !== "string" || !names.has(n))
      fault("MISSING_TRANSITION_TARGET", `Missing 'Next' target: ${String(n)}`, where);
    next.push(n);
  };
  if (!TERMINAL_TYPES.has(type)) {
    const hasNext = st.Next !== undefined;
    const end = st.End === true;
    if (hasNext === end) fault("SCHEMA_VALIDATION_FAILED", "Exactly one of 'Next' or 'End' is required", at);
    if (hasNext) target(st.Next, `${at}/Next`);
  } else if (st.Next !== undefined || st.End !== undefined) {
    fault("SCHEMA_VALIDATION_FAILED", `A ${type} state cannot have 'Next' or 'End'`, at);
  }
  if ((st.QueryLanguage ?? lang) === "JSONata") return checkJsonataState(st, at, depth, lang, next, target);
  for (const f of ["InputPath", "OutputPath"]) if (st[f] !== undefined) checkPath(st[f], `${at}/${f}`);
  if (st.ResultPath !== undefined) checkPath(st.ResultPath, `${at}/ResultPath`, true);
  for (const f of ["Parameters", "ResultSelector", "ItemSelector", "Assign"])
    if (st[f] !== undefined) checkTemplate(st[f], `${at}/${f}`, 0);
  if (Array.isArray(st.Retry)) {
    st.Retry.forEach((r, i) => {
      if (!isObj(r)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", `${at}/Retry[${i}]`);
      checkErrorList(r.ErrorEquals, `${at}/Retry[${i}]/ErrorEquals`);
      if (r.MaxAttempts !== undefined && (typeof r.MaxAttempts !== "number" || r.MaxAttempts < 0))
        fault("SCHEMA_VALIDATION_FAILED", "MaxAttempts must be a non-negative integer", `${at}/Retry[${i}]`);
      if (r.BackoffRate !== undefined && (typeof r.BackoffRate !== "number" || r.BackoffRate < 1))
        fault("SCHEMA_VALIDATION_FAILED", "BackoffRate must be at least 1.0", `${at}/Retry[${i}]`);
      if (r.IntervalSeconds !== undefined)
        checkPositiveInt(r.IntervalSeconds, `${at}/Retry[${i}]/IntervalSeconds`);
      if (r.MaxDelaySeconds !== undefined)
        checkPositiveInt(r.MaxDelaySeconds, `${at}/Retry[${i}]/MaxDelaySeconds`);
      if (r.JitterStrategy !== undefined && r.JitterStrategy !== "FULL" && r.JitterStrategy !== "NONE")
        fault("SCHEMA_VALIDATION_FAILED", "JitterStrategy must be FULL or NONE", `${at}/Retry[${i}]`);
    });
  } else if (st.Retry !== undefined)
    fault("SCHEMA_VALIDATION_FAILED", "Retry must be an array", `${at}/Retry`);
  if (Array.isArray(st.Catch)) {
    st.Catch.forEach((c, i) => {
      if (!isObj(c)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", `${at}/Catch[${i}]`);
      checkErrorList(c.ErrorEquals, `${at}/Catch[${i}]/ErrorEquals`);
      target(c.Next, `${at}/Catch[${i}]/Next`);
      if (c.ResultPath !== undefined) checkPath(c.ResultPath, `${at}/Catch[${i}]/ResultPath`, true);
    });
  } else if (st.Catch !== undefined)
    fault("SCHEMA_VALIDATION_FAILED", "Catch must be an array", `${at}/Catch`);
  switch (type) {
    case "Task":
      if (typeof st.Resource !== "string")
        fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Resource]", at);
      if (st.TimeoutSeconds !== undefined) checkPositiveInt(st.TimeoutSeconds, `${at}/TimeoutSeconds`);
      if (st.HeartbeatSeconds !== undefined) checkPositiveInt(st.HeartbeatSeconds, `${at}/HeartbeatSeconds`);
      if (st.TimeoutSecondsPath !== undefined)
        checkPath(st.TimeoutSecondsPath, `${at}/TimeoutSecondsPath`, true);
      if (st.HeartbeatSecondsPath !== undefined)
        checkPath(st.HeartbeatSecondsPath, `${at}/HeartbeatSecondsPath`, true);
      if (
        typeof st.TimeoutSeconds === "number" &&
        typeof st.HeartbeatSeconds === "number" &&
        st.HeartbeatSeconds >= st.TimeoutSeconds
      )
        fault("SCHEMA_VALIDATION_FAILED", "HeartbeatSeconds must be smaller than TimeoutSeconds", at);
      break;
    case "Choice": {
      if (!Array.isArray(st.Choices) || st.Choices.length === 0)
        fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Choices]", at);
      st.Choices.forEach((c, i) => {
        checkRule(c, `${at}/Choices[${i}]`, 0);
        target((c as Record<string, unknown>).Next, `${at}/Choices[${i}]/Next`);
      });
      if (st.Default !== undefined) target(st.Default, `${at}/Default`);
      break;
    }
    case "Wait": {
      const n = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"].filter(
        (f) => st[f] !== undefined,
      ).length;
      if (n !== 1)
        fault(
          "SCHEMA_VALIDATION_FAILED",
          "Exactly one of Seconds, Timestamp, SecondsPath, TimestampPath is required",
          at,
        );
      if (
        st.Seconds !== undefined &&
        (typeof st.Seconds !== "number" || !Number.isInteger(st.Seconds) || st.Seconds < 0)
      )
        fault("SCHEMA_VALIDATION_FAILED", "Seconds must be a non-negative integer", `${at}/Seconds`);
      if (st.SecondsPath !== undefined) checkPath(st.SecondsPath, `${at}/SecondsPath`, true);
      if (st.TimestampPath !== undefined) checkPath(st.TimestampPath, `${at}/TimestampPath`, true);
      break;
    }
    case "Fail":
      if (st.Error !== undefined && st.ErrorPath !== undefined)
        fault("SCHEMA_VALIDATION_FAILED", "Error and ErrorPath are mutually exclusive", at);
      if (st.Cause !== undefined && st.CausePath !== undefined)
        fault("SCHEMA_VALIDATION_FAILED", "Cause and CausePath are mutually exclusive", at);
      for (const f of ["ErrorPath", "CausePath"]) {
        const p = st[f];
        if (typeof p === "string" && !isIntrinsic(p)) checkPath(p, `${at}/${f}`);
      }
      break;
    case "Parallel":
      if (!Array.isArray(st.Branches) || st.Branches.length === 0)
        fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Branches]", at);
      st.Branches.forEach((b, i) => {
        checkBlock(b, `${at}/Branches[${i}]`, depth + 1, false, lang);
      });
      break;
    case "Map": {
      const proc = st.ItemProcessor ?? st.Iterator;
      if (proc === undefined)
        fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [ItemProcessor]", at);
      checkBlock(proc, `${at}/ItemProcessor`, depth + 1, false, lang);
      if (st.ItemsPath !== undefined) checkPath(st.ItemsPath, `${at}/ItemsPath`, true);
      if (st.MaxConcurrency !== undefined && (typeof st.MaxConcurrency !== "number" || st.MaxConcurrency < 0))
        fault(
          "SCHEMA_VALIDATION_FAILED",
          "MaxConcurrency must be a non-negative integer",
          `${at}/MaxConcurrency`,
        );
      if (st.ItemSelector !== undefined && st.Parameters !== undefined)
        fault("SCHEMA_VALIDATION_FAILED", "ItemSelector and Parameters are mutually exclusive", at);
      break;
    }
  }
  return next;
}

const JSONPATH_ONLY = ["InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath"];

/** The JSONata flavour of a state: expressions are `{% … %}` strings, checked when they run. */
function checkJsonataState(
  st: Record<string, unknown>,
  at: string,
  depth: number,
  lang: string,
  next: string[],
  target: (n: unknown, where: string) => void,
): string[] {
  for (const f of JSONPATH_ONLY)
    if (st[f] !== undefined)
      fault(
        "SCHEMA_VALIDATION_FAILED",
        `The field '${f}' is not supported with the JSONata query language`,
        `${at}/${f}`,
      );
  if (st.Type === "Task")
    fault("SCHEMA_VALIDATION_FAILED", "JSONata Task states are not supported by the embedded engine", at);
  if (Array.isArray(st.Catch))
    st.Catch.forEach((c, i) => {
      if (!isObj(c)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", `${at}/Catch[${i}]`);
      checkErrorList(c.ErrorEquals, `${at}/Catch[${i}]/ErrorEquals`);
      target(c.Next, `${at}/Catch[${i}]/Next`);
    });
  if (st.Type === "Choice") {
    if (!Array.isArray(st.Choices) || st.Choices.length === 0)
      fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Choices]", at);
    st.Choices.forEach((c, i) => {
      if (!isObj(c) || (typeof c.Condition !== "string" && typeof c.Condition !== "boolean"))
        fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Condition]", `${at}/Choices[${i}]`);
      target(c.Next, `${at}/Choices[${i}]/Next`);
    });
    if (st.Default !== undefined) target(st.Default, `${at}/Default`);
  }
  if (st.Type === "Wait" && (st.Seconds === undefined) === (st.Timestamp === undefined))
    fault("SCHEMA_VALIDATION_FAILED", "Exactly one of Seconds, Timestamp is required", at);
  if (st.Type === "Parallel") {
    if (!Array.isArray(st.Branches) || st.Branches.length === 0)
      fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Branches]", at);
    st.Branches.forEach((b, i) => {
      checkBlock(b, `${at}/Branches[${i}]`, depth + 1, false, lang);
    });
  }
  if (st.Type === "Map") {
    const proc = st.ItemProcessor ?? st.Iterator;
    if (proc === undefined)
      fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [ItemProcessor]", at);
    checkBlock(proc, `${at}/ItemProcessor`, depth + 1, false, lang);
  }
  return next;
}

function checkRule(rule: unknown, at: string, depth: number): void {
  if (depth > MAX_DEPTH) fault("SCHEMA_VALIDATION_FAILED", "choice rule nested too deeply", at);
  if (!isObj(rule)) fault("SCHEMA_VALIDATION_FAILED", "Expected an object", at);
  for (const op of ["And", "Or"]) {
    if (rule[op] !== undefined) {
      const list = rule[op];
      if (!Array.isArray(list) || list.length === 0)
        fault("SCHEMA_VALIDATION_FAILED", `${op} must be a non-empty array`, `${at}/${op}`);
      list.forEach((r, i) => {
        checkRule(r, `${at}/${op}[${i}]`, depth + 1);
      });
      return;
    }
  }
  if (rule.Not !== undefined) {
    checkRule(rule.Not, `${at}/Not`, depth + 1);
    return;
  }
  if (typeof rule.Variable !== "string")
    fault("SCHEMA_VALIDATION_FAILED", "These fields are required: [Variable]", at);
  checkPath(rule.Variable, `${at}/Variable`);
  const ops = Object.keys(rule).filter((k) => !["Variable", "Next", "Comment", "Assign"].includes(k));
  if (ops.length !== 1 || !CHOICE_OPERATORS.includes(ops[0] as string))
    fault(
      "SCHEMA_VALIDATION_FAILED",
      `A choice rule needs exactly one comparison operator, got [${ops.join(", ")}]`,
      at,
    );
  const op = ops[0] as string;
  if (op.endsWith("Path")) checkPath(rule[op], `${at}/${op}`);
}
