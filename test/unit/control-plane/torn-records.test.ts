import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { attemptStore, keys } from "../../../functions/attempts.js";
import { createDirectoryResultsStore } from "../../../functions/clients/results-store.js";
import { fakeWorld } from "./fakes.js";
import { exitEvent, launched } from "./harness.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("the directory results store", () => {
  it("never shows half a created value: a reader sees nothing or all of it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gangway-store-"));
    dirs.push(dir);
    const store = createDirectoryResultsStore(dir);
    const value = JSON.stringify({ kind: "succeeded", at: 1, pad: "x".repeat(16 * 1024 * 1024) });
    for (const n of [1, 2, 3]) {
      const key = `jobs/j/attempts/${n}/outcome.json`;
      let done = false;
      const created = store.create(key, value).finally(() => {
        done = true;
      });
      const seen = new Set<string>();
      while (!done) {
        const text = await store.get(key);
        seen.add(
          text === undefined ? "absent" : text.length === value.length ? "whole" : `${text.length} bytes`,
        );
      }
      expect(await created).toBe(true);
      expect([...seen].filter((s) => s !== "absent" && s !== "whole")).toEqual([]);
      expect(await store.create(key, "{}")).toBe(false);
      expect((await store.get(key))?.length).toBe(value.length);
      // No temp file is left behind, and none is listed.
      expect(await store.list(`jobs/j/attempts/${n}/`)).toEqual([key]);
    }
  });
});

describe("a once-written record left unreadable by a crash of an older version", () => {
  it("does not keep the attempt from being decided and its outcome sent", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await world.deps.store.put(keys.outcome(state.jobId, state.attempt), "");
    await s.await({ token: "tok-1", state });
    expect(await s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3 }))).toMatchObject({
      action: "decided",
      outcome: "WorkloadFailed",
    });
    expect(world.sent).toMatchObject([{ kind: "fail", token: "tok-1", error: "WorkloadFailed" }]);
    // Decided once: a later problem does not decide it again.
    expect(await s.ingest.hostEvent(exitEvent(state, 0, 0, { exitCode: 1 }))).toMatchObject({
      action: "recorded",
    });
    expect(world.sent).toHaveLength(1);
  });

  it("is sent when the token comes after the decision", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await world.deps.store.put(keys.outcome(state.jobId, state.attempt), '{"kind":"succ');
    await s.ingest.hostEvent(exitEvent(state, 1, 0, { exitCode: 3 }));
    expect(world.sent).toEqual([]);
    expect(await s.await({ token: "tok-1", state })).toMatchObject({ delivered: "sent" });
    expect(world.sent).toMatchObject([{ kind: "fail", token: "tok-1", error: "WorkloadFailed" }]);
  });

  it("does not swallow a cancel", async () => {
    const world = fakeWorld();
    const attempts = attemptStore(world.deps.store);
    await world.deps.store.put(keys.cancel("train-1"), "");
    expect(await attempts.cancelRequested("train-1")).toBeUndefined();
    expect(await attempts.requestCancel("train-1", "stop", 5)).toBe(true);
    expect(await attempts.requestCancel("train-1", "again", 6)).toBe(false);
    expect(await attempts.cancelRequested("train-1")).toEqual({ reason: "stop", at: 5 });
  });
});
