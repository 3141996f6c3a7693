/** Time as the agent sees it; injected so lease expiry can be tested without waiting. */
export interface Clock {
  now(): number;
  /** Call `fn` after `ms`; returns a function that cancels it. Must not keep the process alive. */
  schedule(ms: number, fn: () => void): () => void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};
