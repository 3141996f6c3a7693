import { GangwayApiError } from "./transport.js";

/** Most polls of a job in a row that may fail for a busy service before following it gives up. */
export const MAX_FAILED_POLLS = 10;

/**
 * Whether a failed look at a job is worth another: the service was busy or briefly failing
 * (429, 5xx — the API answers a throttled read so — or the SFN client's own such errors), not
 * refusing what was asked.
 */
export function isTransient(e: unknown): boolean {
  const status =
    e instanceof GangwayApiError
      ? e.status
      : (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return status !== undefined && (status === 429 || status >= 500);
}

/**
 * A follow's looks at a job: `look(f)` is `f()`, or undefined where it failed transiently and
 * fewer than {@link MAX_FAILED_POLLS} failed in a row (the next poll then looks again); any other
 * failure is thrown.
 */
export function transientPollFailures(): { look<T>(f: () => Promise<T>): Promise<T | undefined> } {
  let inRow = 0;
  return {
    async look(f) {
      try {
        const value = await f();
        inRow = 0;
        return value;
      } catch (e) {
        if (!isTransient(e) || ++inRow >= MAX_FAILED_POLLS) throw e;
        return undefined;
      }
    },
  };
}
