import { z } from "zod";

/**
 * An error as it travels between processes: the analogue of the ancestors' `ExceptionInfo`.
 * Keeps the name the state machine matches on, the message, the stack, the whole `cause` chain
 * (and the members of an AggregateError), and any structured details the error carried.
 */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string | undefined;
  /** Structured facts of a gangway error (slice, host, exit code …); JSON values only. */
  details?: Record<string, unknown> | undefined;
  cause?: SerializedError | undefined;
  errors?: SerializedError[] | undefined;
}

/** zod schema of {@link SerializedError}; recursive through `cause` and `errors`. */
export const SerializedErrorSchema: z.ZodType<SerializedError> = z.lazy(() =>
  z.object({
    name: z.string().min(1),
    message: z.string(),
    stack: z.string().optional(),
    details: z.record(z.string(), z.unknown()).optional(),
    cause: SerializedErrorSchema.optional(),
    errors: z.array(SerializedErrorSchema).optional(),
  }),
);

/** How many errors a serialized chain holds at most, the marker of a cut chain included. */
export const MAX_CAUSE_DEPTH = 32;

type ErrorConstructorLike = new (message: string) => Error;
const registry = new Map<string, ErrorConstructorLike>();

/** Make `deserializeError` rebuild errors of this name as instances of `ctor`. */
export function registerErrorClass(name: string, ctor: ErrorConstructorLike): void {
  registry.set(name, ctor);
}

function jsonSafe(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return String(value);
  }
}

/**
 * Serialize anything that was thrown. Non-errors become `{name: "NonErrorThrown"}` with their
 * JSON (or string) form as message; cycles in the cause chain are cut, never followed forever.
 *
 * @example
 * try { risky() } catch (e) { publish(serializeError(e)) }
 */
export function serializeError(thrown: unknown, seen: Set<unknown> = new Set(), depth = 0): SerializedError {
  if (!(thrown instanceof Error)) {
    if (typeof thrown === "string") return { name: "Error", message: thrown };
    let message: string;
    try {
      message = JSON.stringify(thrown) ?? String(thrown);
    } catch {
      message = String(thrown);
    }
    return { name: "NonErrorThrown", message };
  }
  seen.add(thrown);
  const out: SerializedError = { name: thrown.name || "Error", message: thrown.message };
  if (thrown.stack) out.stack = thrown.stack;
  const details = (thrown as { details?: unknown }).details;
  if (details && typeof details === "object") out.details = jsonSafe(details) as Record<string, unknown>;
  const { cause } = thrown as { cause?: unknown };
  if (cause !== undefined) {
    if (depth + 2 >= MAX_CAUSE_DEPTH) {
      out.cause = { name: "CauseChainCut", message: `cause chain deeper than ${MAX_CAUSE_DEPTH} was cut` };
    } else if (seen.has(cause)) {
      out.cause = { name: "CauseCycle", message: "cause chain refers back to an earlier error" };
    } else {
      out.cause = serializeError(cause, seen, depth + 1);
    }
  }
  if (thrown instanceof AggregateError && Array.isArray(thrown.errors)) {
    out.errors = thrown.errors.map((e: unknown) =>
      seen.has(e)
        ? { name: "CauseCycle", message: "refers back to an earlier error" }
        : serializeError(e, seen, depth + 1),
    );
  }
  return out;
}

/** An Error rebuilt from its serialized form, for errors whose class is not registered. */
export class RemoteError extends Error {
  details?: Record<string, unknown> | undefined;
}

/**
 * Rebuild an Error (the registered class when the name is known) with the same name, message,
 * stack, details and cause chain. `serializeError(deserializeError(x))` equals `x`.
 */
export function deserializeError(serialized: SerializedError): Error {
  const Ctor = registry.get(serialized.name);
  let error: Error;
  if (Ctor) {
    error = Object.create(Ctor.prototype) as Error;
    Object.defineProperty(error, "message", {
      value: serialized.message,
      writable: true,
      configurable: true,
    });
  } else {
    error = new RemoteError(serialized.message);
  }
  Object.defineProperty(error, "name", { value: serialized.name, writable: true, configurable: true });
  Object.defineProperty(error, "stack", {
    value: serialized.stack,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  if (serialized.stack === undefined) delete (error as { stack?: string }).stack;
  if (serialized.details !== undefined) (error as { details?: unknown }).details = serialized.details;
  if (serialized.cause !== undefined) {
    Object.defineProperty(error, "cause", {
      value: deserializeError(serialized.cause),
      writable: true,
      configurable: true,
    });
  }
  if (serialized.errors !== undefined) {
    Object.defineProperty(error, "errors", {
      value: serialized.errors.map(deserializeError),
      writable: true,
      configurable: true,
    });
  }
  return error;
}

/** The errors of a chain, outermost first: the error itself, its cause, the cause's cause … */
export function causeChain(error: SerializedError): SerializedError[] {
  const chain: SerializedError[] = [];
  let current: SerializedError | undefined = error;
  while (current && chain.length < MAX_CAUSE_DEPTH) {
    chain.push(current);
    current = current.cause;
  }
  return chain;
}

/**
 * How large an error may be (bytes of its JSON) where an execution's state or a task failure's
 * cause keeps it. A state holds it several times (first failure, last preemption, the final
 * status and its cause text, the caught problem) beside the placement of 1,024 hosts, and all of
 * it must stay under Step Functions' 256 KiB; a workload's error file may be that large alone.
 */
export const MAX_ERROR_BYTES = 8 * 1024;

const encoder = new TextEncoder();

/** Bytes of `value` as JSON (UTF-8): how Step Functions measures a state. */
export const jsonBytes = (value: unknown): number => encoder.encode(JSON.stringify(value) ?? "").length;

/** `text` cut to at most `max` bytes of JSON (quotes aside), its head kept, the cut noted. */
function clip(text: string, max: number): string {
  if (jsonBytes(text) - 2 <= max) return text;
  const note = (cut: number) => `… [${cut} more characters cut]`;
  const fits = (n: number) => jsonBytes(text.slice(0, n) + note(text.length - n)) - 2 <= max;
  // Every character takes at least a byte, so the cut lies within the first `max` characters.
  let lo = 0;
  let hi = Math.min(text.length, max);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  // Never keep half of a surrogate pair.
  const code = text.charCodeAt(lo - 1);
  if (lo > 0 && code >= 0xd800 && code <= 0xdbff) lo -= 1;
  return text.slice(0, lo) + note(text.length - lo);
}

interface Limits {
  message: number;
  stack: number;
  /** One detail value. */
  value: number;
  /** All of an error's details. */
  details: number;
  /** Members of an AggregateError kept. */
  errors: number;
  /** Errors kept in all (causes and members), so a deep or wide tree cannot blow up. */
  nodes: number;
}

/** Step Functions' limit on an error name. */
const NAME_BYTES = 256;
/** A detail key longer than this is no fact worth its room. */
const KEY_BYTES = 64;

/**
 * Details gangway itself stamps on a host's error and decides by (the exit code tells a
 * workload's failure from a step's fault; the rest classify and place it): kept before any other.
 */
const KEPT_DETAILS = ["exitCode", "signal", "metadataPreempted", "slice", "host", "address"];

/** The `details` that fit in `limits`: gangway's facts first, then small values before large. */
function shortenDetails(details: Record<string, unknown>, limits: Pick<Limits, "value" | "details">) {
  const rank = (key: string, v: unknown) =>
    KEPT_DETAILS.includes(key) ? -1 : typeof v === "string" ? 1 : v !== null && typeof v === "object" ? 2 : 0;
  const kept = new Map<string, unknown>();
  let used = 2;
  for (const [key, value] of Object.entries(details).sort(([ka, a], [kb, b]) => rank(ka, a) - rank(kb, b))) {
    if (jsonBytes(key) - 2 > KEY_BYTES || value === undefined) continue;
    const short =
      typeof value === "string"
        ? clip(value, limits.value)
        : rank(key, value) === 2 && jsonBytes(value) > limits.value
          ? clip(JSON.stringify(value), limits.value)
          : value;
    const cost = jsonBytes(key) + jsonBytes(short) + 2;
    if (used + cost > limits.details) continue;
    kept.set(key, short);
    used += cost;
  }
  // In their first order, as the reader wrote them.
  return Object.fromEntries(Object.keys(details).flatMap((k) => (kept.has(k) ? [[k, kept.get(k)]] : [])));
}

function cut(
  error: SerializedError,
  limits: Limits,
  budget: { nodes: number },
  depth: number,
): SerializedError {
  budget.nodes -= 1;
  const out: SerializedError = {
    name: clip(error.name, NAME_BYTES),
    message: clip(error.message, limits.message),
  };
  if (error.stack !== undefined && limits.stack > 0) out.stack = clip(error.stack, limits.stack);
  if (error.details !== undefined) out.details = shortenDetails(error.details, limits);
  if (error.cause !== undefined) {
    out.cause =
      budget.nodes > 0 && depth + 2 < MAX_CAUSE_DEPTH
        ? cut(error.cause, limits, budget, depth + 1)
        : { name: "CauseChainCut", message: "the rest of the cause chain was cut to keep the error small" };
  }
  if (error.errors !== undefined && limits.errors > 0 && budget.nodes > 0) {
    const members = error.errors.slice(0, limits.errors);
    out.errors = [];
    for (const member of members)
      if (budget.nodes > 0) out.errors.push(cut(member, limits, budget, depth + 1));
    const dropped = error.errors.length - out.errors.length;
    if (dropped > 0) out.errors.push({ name: "ErrorsCut", message: `${dropped} more errors were cut` });
  }
  return out;
}

/**
 * `error` within `maxBytes` bytes of JSON: unchanged when it fits, else its text cut from the end
 * (the message keeps its start), stacks and members dropped before causes, harsher until it fits.
 * Pure. `maxBytes` should be at least 2 KiB.
 *
 * @example
 * shortenError({ name: "ValueError", message: "x".repeat(300_000) }).message // "xxxx…xxxx… [n more characters cut]", 2 KiB
 */
export function shortenError(error: SerializedError, maxBytes = MAX_ERROR_BYTES): SerializedError {
  if (jsonBytes(error) <= maxBytes) return error;
  const levels: Limits[] = [
    {
      message: maxBytes / 4,
      stack: maxBytes / 4,
      value: 512,
      details: maxBytes / 8,
      errors: 4,
      nodes: MAX_CAUSE_DEPTH,
    },
    { message: maxBytes / 16, stack: 0, value: 128, details: maxBytes / 16, errors: 2, nodes: 16 },
    {
      message: Math.max(64, maxBytes / 64),
      stack: 0,
      value: 64,
      details: maxBytes / 32,
      errors: 0,
      nodes: 8,
    },
  ];
  for (const limits of levels) {
    const short = cut(error, limits, { nodes: limits.nodes }, 0);
    if (jsonBytes(short) <= maxBytes) return short;
  }
  // The name, the start of the message and the small facts: always within the bound.
  const details = error.details && shortenDetails(error.details, { value: 64, details: maxBytes / 4 });
  return {
    name: clip(error.name, NAME_BYTES),
    message: clip(error.message, maxBytes / 2 - NAME_BYTES),
    ...(details ? { details } : {}),
  };
}
