import { describe, expect, it } from "vitest";
import { Aborted, sleepUntil } from "../../../infra/local/sfn/execution.js";

describe("sleepUntil", () => {
  it("never ends before the clock reads the deadline, even when the timer fires early", async () => {
    // A clock that falls 15 ms behind the timers after its first reading: one timer is not enough.
    let reads = 0;
    const now = () => (reads++ === 0 ? Date.now() : Date.now() - 15);
    const until = Date.now() + 20;
    await sleepUntil(until, now, new AbortController().signal);
    expect(now()).toBeGreaterThanOrEqual(until);
    expect(reads).toBeGreaterThan(3);
  });

  it("throws Aborted when the signal fires", async () => {
    const abort = new AbortController();
    const slept = sleepUntil(Date.now() + 60_000, Date.now, abort.signal);
    abort.abort();
    await expect(slept).rejects.toBeInstanceOf(Aborted);
  });
});
