import type { z } from "zod";

/** One problem found in an input: where, what was expected, what was there. */
export interface ValidationIssue {
  /** Dotted path into the input, e.g. `accelerator.slices[1]`; `(root)` for the whole input. */
  path: string;
  expected: string;
  got: string;
  /** `path: expected …, got …`, ready to print. */
  message: string;
}

/** Render a path array the way users write it: `a.b[2].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else {
      const k = String(key);
      out += /^[A-Za-z_$][\w$]*$/.test(k) ? (out ? `.${k}` : k) : `[${JSON.stringify(k)}]`;
    }
  }
  return out || "(root)";
}

/** Describe a value briefly for an error message: its type and, for scalars, the value itself. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === "number") return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  if (typeof value === "boolean") return `boolean ${value}`;
  if (Array.isArray(value)) return `array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value === "object") return "object";
  return typeof value;
}

function bound(issue: { minimum?: unknown; maximum?: unknown; inclusive?: boolean; origin?: string }) {
  const isMin = issue.minimum !== undefined;
  const n = Number(isMin ? issue.minimum : issue.maximum);
  const inclusive = issue.inclusive !== false;
  const cmp = isMin ? (inclusive ? "at least" : "more than") : inclusive ? "at most" : "less than";
  switch (issue.origin) {
    case "array":
    case "set":
      return `${cmp} ${n} item${n === 1 ? "" : "s"}`;
    case "string":
      return `${cmp} ${n} character${n === 1 ? "" : "s"}`;
    case "object":
      return `${cmp} ${n} entr${n === 1 ? "y" : "ies"}`;
    default:
      return `a number ${cmp} ${n}`;
  }
}

function sizeOf(input: unknown): string {
  if (Array.isArray(input)) return `${input.length} item${input.length === 1 ? "" : "s"}`;
  if (typeof input === "string") return `${input.length} characters`;
  if (input && typeof input === "object") return `${Object.keys(input).length} entries`;
  return describeValue(input);
}

/**
 * Turn zod issues into `path: expected …, got …` problems, one per issue (one per unknown key).
 * Parse with `{ reportInput: true }` so that `got` can name the offending value.
 *
 * @example
 * const r = JobSpecSchema.safeParse(raw, { reportInput: true });
 * if (!r.success) for (const i of toValidationIssues(r.error.issues)) console.error(i.message);
 */
export function toValidationIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix: PropertyKey[] = [],
  context?: { schema: z.core.$ZodType; input: unknown },
): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const push = (path: PropertyKey[], expected: string, got: string) => {
    const p = formatPath([...prefix, ...path]);
    out.push({ path: p, expected, got, message: `${p}: expected ${expected}, got ${got}` });
  };
  for (const issue of issues) {
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case "invalid_type":
        push(issue.path, issue.expected === "never" ? "no value here" : issue.expected, describeValue(input));
        break;
      case "invalid_value":
        push(
          issue.path,
          `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`,
          describeValue(input),
        );
        break;
      case "too_small":
      case "too_big":
        push(issue.path, bound(issue), issue.origin === "number" ? describeValue(input) : sizeOf(input));
        break;
      case "unrecognized_keys": {
        const known = context ? knownKeysAt(context.schema, issue.path, context.input) : undefined;
        const expected = known?.length ? `one of the known fields ${known.join(", ")}` : "no such field";
        for (const key of issue.keys)
          push([...issue.path, key], expected, `unknown field ${JSON.stringify(key)}`);
        break;
      }
      case "invalid_union": {
        const disc = (issue as { discriminator?: string; options?: unknown[] }).discriminator;
        const options = (issue as { options?: unknown[] }).options;
        if (disc && options) {
          const got = input && typeof input === "object" ? (input as Record<string, unknown>)[disc] : input;
          // zod reports the discriminator path already; keep it as is.
          push(issue.path, `one of ${options.map((o) => JSON.stringify(o)).join(", ")}`, describeValue(got));
        } else if (
          issue.errors.every(
            (branch) =>
              branch.length === 1 && branch[0]?.code === "invalid_type" && branch[0].path.length === 0,
          )
        ) {
          // Wrong type for every branch: say what any branch would have taken.
          const kinds = issue.errors.map(
            (branch) => (branch[0] as { expected?: string }).expected ?? "value",
          );
          push(issue.path, kinds.join(" or "), describeValue(input));
        } else if (issue.errors.length > 0) {
          // Report the branch that got furthest: the one with the fewest issues.
          const best = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
          out.push(...toValidationIssues(best, [...prefix, ...issue.path], context));
        } else {
          push(issue.path, "a value matching one of the allowed forms", describeValue(input));
        }
        break;
      }
      case "invalid_format":
        push(
          issue.path,
          issue.format === "regex" ? issue.message : `a string in ${issue.format} format`,
          describeValue(input),
        );
        break;
      case "not_multiple_of":
        push(issue.path, `a multiple of ${String(issue.divisor)}`, describeValue(input));
        break;
      case "custom": {
        const params = (issue.params ?? {}) as { expected?: string; got?: string };
        push(issue.path, params.expected ?? issue.message, params.got ?? describeValue(input));
        break;
      }
      default:
        push(issue.path, issue.message, describeValue(input));
    }
  }
  return out;
}

type Def = {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  options?: unknown[];
  discriminator?: string;
  getter?: () => unknown;
};
const defOf = (schema: unknown): Def | undefined => (schema as { _zod?: { def?: Def } })?._zod?.def;

/** Unwrap defaults, optionals, pipes and lazies down to the schema that decides the shape. */
function unwrap(schema: unknown): unknown {
  for (let i = 0; i < 16; i++) {
    const def = defOf(schema);
    if (!def) return schema;
    if (def.innerType) schema = def.innerType;
    else if (def.type === "pipe" && def.in) schema = def.in;
    else if (def.type === "lazy" && def.getter) schema = def.getter();
    else return schema;
  }
  return schema;
}

/** The field names an object schema allows at `path` of `input` (resolving discriminated unions). */
export function knownKeysAt(
  schema: unknown,
  path: readonly PropertyKey[],
  input: unknown,
): string[] | undefined {
  let current = unwrap(schema);
  let value = input;
  for (let depth = 0; ; depth++) {
    const def = defOf(current);
    if (!def) return undefined;
    if (def.type === "union" && def.options) {
      const disc = def.discriminator;
      const tag =
        disc && value && typeof value === "object" ? (value as Record<string, unknown>)[disc] : undefined;
      const match = def.options.find((o) => {
        const shape = defOf(unwrap(o))?.shape;
        const lit = shape && disc ? defOf(shape[disc]) : undefined;
        return (lit as { values?: unknown[] } | undefined)?.values?.includes(tag);
      });
      if (!match) return undefined;
      current = unwrap(match);
      continue;
    }
    if (depth >= path.length) return def.type === "object" && def.shape ? Object.keys(def.shape) : undefined;
    const key = path[depth];
    if (def.type !== "object" || !def.shape || typeof key !== "string") return undefined;
    current = unwrap(def.shape[key]);
    value = value && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
  }
}
