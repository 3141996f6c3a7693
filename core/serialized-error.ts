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
