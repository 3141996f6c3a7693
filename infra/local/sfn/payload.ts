/**
 * Input and output processing of the JSONPath query language: InputPath → Parameters →
 * (the state's work) → ResultSelector → ResultPath → OutputPath, with payload templates
 * (`"key.$": "$.path" | "$$.ctx" | "$var" | "States.Fn(…)"`) and the 256 KiB data limit.
 */
import { runtimeError, StatesError } from "./errors.js";
import { evaluateIntrinsic, isIntrinsic } from "./intrinsics.js";
import { evaluatePath, JsonPathSyntaxError, setAtPath } from "./jsonpath.js";

/** AWS's limit on a state's input/output and on an execution's input: 256 KiB of UTF-8. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;

/** Deepest nesting a payload may have: deeper JSON would overflow the stack when serialized. */
export const MAX_PAYLOAD_DEPTH = 512;

/** How deeply a JSON text nests arrays and objects (strings are skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/** Size in bytes of a value's JSON text. */
export function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? "null", "utf8");
}

/** Where evaluation happens: the state (for messages), the context object and the variables. */
export interface EvalScope {
  stateName: string;
  enteredEventId: number;
  context: unknown;
  variables: Record<string, unknown>;
}

/** Is this `$…` text a variable reference (`$name…`) rather than `$`, `$.x`, `$[…]` or `$$…`? */
export function isVariableRef(text: string): boolean {
  return /^\$[A-Za-z_]/.test(text);
}

/** Resolve a `$`, `$$` or `$var` path. Returns `{found:false}` when a definite path selects nothing. */
export function resolvePath(
  path: string,
  input: unknown,
  scope: EvalScope,
): { found: true; value: unknown } | { found: false } {
  try {
    if (path.startsWith("$$")) return evaluatePath(path.slice(1), scope.context);
    if (isVariableRef(path)) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$/.exec(path);
      const name = m?.[1] ?? "";
      if (!Object.hasOwn(scope.variables, name)) return { found: false };
      return evaluatePath(`$${m?.[2] ?? ""}`, scope.variables[name]);
    }
    return evaluatePath(path, input);
  } catch (e) {
    if (e instanceof JsonPathSyntaxError)
      throw runtimeError(scope.stateName, scope.enteredEventId, e.message);
    throw e;
  }
}

/** Apply `InputPath`/`OutputPath` (null → `{}`; absent → unchanged; no match → States.Runtime). */
export function applyFilterPath(
  _field: "InputPath" | "OutputPath",
  path: string | null | undefined,
  value: unknown,
  scope: EvalScope,
): unknown {
  if (path === undefined) return value;
  if (path === null) return {};
  const r = resolvePath(path, value, scope);
  if (!r.found)
    throw runtimeError(
      scope.stateName,
      scope.enteredEventId,
      `Invalid path '${path}' : No results for path: ${bracketed(path)}`,
    );
  return r.value;
}

function bracketed(path: string): string {
  // Jayway prints `$.a.b[0]` as `$['a']['b'][0]` in its messages.
  return path.replace(/\.([A-Za-z_$][\w$-]*)/g, "['$1']");
}

/** Evaluate a payload template (Parameters, ResultSelector, ItemSelector, Arguments of JSONPath states). */
export function evaluateTemplate(template: unknown, input: unknown, scope: EvalScope): unknown {
  if (Array.isArray(template)) return template.map((t) => evaluateTemplate(t, input, scope));
  if (template === null || typeof template !== "object") return template;
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(template as Record<string, unknown>)) {
    if (key.endsWith(".$")) {
      const k = key.slice(0, -2);
      if (typeof raw !== "string")
        throw runtimeError(
          scope.stateName,
          scope.enteredEventId,
          `The value for the field '${key}' must be a string`,
        );
      out[k] = evaluateDynamic(raw, key, input, scope);
    } else out[key] = evaluateTemplate(raw, input, scope);
  }
  return out;
}

function evaluateDynamic(text: string, field: string, input: unknown, scope: EvalScope): unknown {
  const t = text.trim();
  if (isIntrinsic(t)) {
    return evaluateIntrinsic(t, (p) => {
      const r = resolvePath(p, input, scope);
      if (!r.found) throw notFound(p, field, input, scope);
      return r.value;
    });
  }
  if (!t.startsWith("$"))
    throw runtimeError(
      scope.stateName,
      scope.enteredEventId,
      `The value for the field '${field}' must be a valid JSONPath or a valid intrinsic function call`,
    );
  const r = resolvePath(t, input, scope);
  if (!r.found) throw notFound(t, field, input, scope);
  return r.value;
}

function notFound(path: string, field: string, input: unknown, scope: EvalScope): StatesError {
  return runtimeError(
    scope.stateName,
    scope.enteredEventId,
    `The JSONPath '${path}' specified for the field '${field}' could not be found in the input '${JSON.stringify(input)}'`,
  );
}

/** Apply `ResultPath`: absent → result replaces input; null → input kept; else result set at the path. */
export function applyResultPath(
  path: string | null | undefined,
  input: unknown,
  result: unknown,
  scope: EvalScope,
): unknown {
  if (path === undefined || path === "$") return result;
  if (path === null) return input;
  try {
    return setAtPath(input, path, result);
  } catch {
    throw new StatesError(
      "States.ResultPathMatchFailure",
      `Unable to apply ResultPath '${path}' to input '${JSON.stringify(input)}' in state '${scope.stateName}'`,
    );
  }
}

/** Throw `States.DataLimitExceeded` when a state's output is over 256 KiB. */
export function checkOutputSize(stateName: string, value: unknown): void {
  if (payloadBytes(value) > MAX_PAYLOAD_BYTES)
    throw new StatesError(
      "States.DataLimitExceeded",
      `The state/task '${stateName}' returned a result with a size exceeding the maximum number of bytes service limit.`,
    );
}

/** Evaluate an `Assign` block (JSONPath flavour): values may be templates; all read the same snapshot. */
export function evaluateAssign(
  assign: Record<string, unknown>,
  stateInput: unknown,
  result: unknown,
  scope: EvalScope,
): Record<string, unknown> {
  // In Assign, `$` refers to the state's result (after ResultSelector) when there is one.
  const source = result === undefined ? stateInput : result;
  const evaluated = evaluateTemplate(assign, source, scope) as Record<string, unknown>;
  return { ...scope.variables, ...evaluated };
}
