import { parseArgs as parseArgsImpl } from "node:util";
/** What a CLI command gets: its arguments and where to write. Injected so tests can capture output. */
export interface CliContext {
  argv: string[];
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Working directory that relative paths are resolved against. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted on SIGINT/SIGTERM; long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
}

/** A `gangway` sub-command. Each lives in `cli/commands/<name>.ts` and exports `command`. */
export interface CliCommand {
  name: string;
  /** One line for `gangway --help`. */
  summary: string;
  /** Full help text for `gangway <name> --help`. */
  usage: string;
  /** Returns the process exit code (see README: 0 ok, 1 failed, 2 bad usage or input). */
  run(ctx: CliContext): Promise<number>;
}

/** Exit codes every command uses. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Thrown for bad command-line usage; printed without a stack, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** `parseArgs` that turns its errors into a {@link UsageError} carrying the command's usage. */
export function parseCommandArgs<T extends import("node:util").ParseArgsConfig>(
  config: T,
  usage: string,
): ReturnType<typeof import("node:util").parseArgs<T>> {
  try {
    return parseArgsImpl(config);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}

let holding = 0;

/**
 * Hold repeated Ctrl-C (and SIGTERM) off until the returned function is called: for the life of
 * something that must be stopped before the process ends — an embedded stack, whose workloads
 * run in process groups of their own and would outlive a killed process. The second signal is
 * held off; a third still ends the process (the way out where the stop itself hangs). Outside
 * such a hold a second signal ends the process as Node's default would.
 */
export function holdRepeatedSignals(): () => void {
  holding++;
  let released = false;
  return () => {
    if (!released) holding--;
    released = true;
  };
}

/** Whether something is holding repeated signals off (see {@link holdRepeatedSignals}). */
export const repeatedSignalsHeld = (): boolean => holding > 0;

/**
 * Start something whose processes must be stopped before this one ends (an embedded stack, a
 * cluster, an agent), use it, then stop it — repeated Ctrl-C held off from the start to the end
 * of the stop (see {@link holdRepeatedSignals}).
 *
 * @example
 * return withStopBeforeExit(() => startLocalStack(o), (stack) => serve(stack), (stack) => stack.close());
 */
export async function withStopBeforeExit<T, R>(
  start: () => Promise<T>,
  use: (started: T) => Promise<R>,
  stop: (started: T) => Promise<void>,
): Promise<R> {
  const release = holdRepeatedSignals();
  try {
    const started = await start();
    try {
      return await use(started);
    } finally {
      await stop(started);
    }
  } finally {
    release();
  }
}
