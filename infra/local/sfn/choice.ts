/** The Choice state's rules (JSONPath): every comparison operator, And / Or / Not, and the `…Path` forms. */
import { runtimeError } from "./errors.js";
import type { EvalScope } from "./payload.js";
import { resolvePath } from "./payload.js";

type Rule = Record<string, unknown>;

const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Parse an ISO-8601 extended offset date-time (`2016-03-14T01:59:00Z`); undefined if not one. */
export function parseTimestamp(v: unknown): number | undefined {
  if (typeof v !== "string") return undefined;
  const m = TIMESTAMP_RE.exec(v);
  if (!m) return undefined;
  const [mo, d, h, mi, s] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  // Date.parse accepts 2016-02-31 by rolling over; refuse days past the month's end.
  const days = new Date(Date.UTC(Number(m[1]), mo, 0)).getUTCDate();
  return d > days ? undefined : t;
}

function wildcardMatch(pattern: string, value: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "\\" && i + 1 < pattern.length) {
      re += (pattern[i + 1] as string).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      i++;
    } else if (c === "*") re += ".*";
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`, "s").test(value);
}

const OPS: Record<
  string,
  { kind: "string" | "number" | "boolean" | "timestamp"; cmp: (c: number) => boolean }
> = {};
for (const [prefix, kind] of [
  ["String", "string"],
  ["Numeric", "number"],
  ["Boolean", "boolean"],
  ["Timestamp", "timestamp"],
] as const) {
  OPS[`${prefix}Equals`] = { kind, cmp: (c) => c === 0 };
  if (kind === "boolean") continue;
  OPS[`${prefix}LessThan`] = { kind, cmp: (c) => c < 0 };
  OPS[`${prefix}GreaterThan`] = { kind, cmp: (c) => c > 0 };
  OPS[`${prefix}LessThanEquals`] = { kind, cmp: (c) => c <= 0 };
  OPS[`${prefix}GreaterThanEquals`] = { kind, cmp: (c) => c >= 0 };
}

/** All operator names a rule may use (for validation). */
export const CHOICE_OPERATORS: readonly string[] = [
  ...Object.keys(OPS),
  ...Object.keys(OPS).map((k) => `${k}Path`),
  "StringMatches",
  "IsNull",
  "IsPresent",
  "IsNumeric",
  "IsString",
  "IsBoolean",
  "IsTimestamp",
];

function comparable(kind: string, v: unknown): number | string | boolean | undefined {
  if (kind === "string") return typeof v === "string" ? v : undefined;
  if (kind === "number") return typeof v === "number" ? v : undefined;
  if (kind === "boolean") return typeof v === "boolean" ? v : undefined;
  return parseTimestamp(v);
}

/** Evaluate one rule (a Choices entry minus `Next`, or a nested And/Or/Not). */
export function evaluateRule(rule: Rule, input: unknown, scope: EvalScope): boolean {
  if (Array.isArray(rule.And)) return (rule.And as Rule[]).every((r) => evaluateRule(r, input, scope));
  if (Array.isArray(rule.Or)) return (rule.Or as Rule[]).some((r) => evaluateRule(r, input, scope));
  if (rule.Not && typeof rule.Not === "object") return !evaluateRule(rule.Not as Rule, input, scope);
  const variable = rule.Variable;
  if (typeof variable !== "string")
    throw runtimeError(scope.stateName, scope.enteredEventId, "A choice rule has no Variable");
  const found = resolvePath(variable, input, scope);
  if (rule.IsPresent !== undefined) return found.found === rule.IsPresent;
  if (!found.found)
    throw runtimeError(
      scope.stateName,
      scope.enteredEventId,
      `Invalid path '${variable}': The choice state's condition path references an invalid value.`,
    );
  const v = found.value;
  if (rule.IsNull !== undefined) return (v === null) === rule.IsNull;
  if (rule.IsNumeric !== undefined) return (typeof v === "number") === rule.IsNumeric;
  if (rule.IsString !== undefined) return (typeof v === "string") === rule.IsString;
  if (rule.IsBoolean !== undefined) return (typeof v === "boolean") === rule.IsBoolean;
  if (rule.IsTimestamp !== undefined) return (parseTimestamp(v) !== undefined) === rule.IsTimestamp;
  if (rule.StringMatches !== undefined)
    return (
      typeof v === "string" && typeof rule.StringMatches === "string" && wildcardMatch(rule.StringMatches, v)
    );
  for (const [key, raw] of Object.entries(rule)) {
    if (key === "Variable" || key === "Next" || key === "Comment" || key === "Assign") continue;
    const isPath = key.endsWith("Path");
    const op = OPS[isPath ? key.slice(0, -4) : key];
    if (!op) continue;
    let expected = raw;
    if (isPath) {
      const r = resolvePath(String(raw), input, scope);
      if (!r.found)
        throw runtimeError(
          scope.stateName,
          scope.enteredEventId,
          `Invalid path '${String(raw)}': The choice state's condition path references an invalid value.`,
        );
      expected = r.value;
    }
    const a = comparable(op.kind, v);
    const b = comparable(op.kind, expected);
    if (a === undefined || b === undefined) return false;
    const c = a === b ? 0 : a < b ? -1 : 1;
    return op.cmp(c);
  }
  throw runtimeError(scope.stateName, scope.enteredEventId, "A choice rule has no comparison operator");
}
