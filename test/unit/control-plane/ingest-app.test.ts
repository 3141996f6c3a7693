import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createDirectoryResultsStore } from "../../../functions/clients/results-store.js";
import { createIngestApp } from "../../../functions/ingest/index.js";
import { fakeWorld } from "./fakes.js";
import { launched } from "./harness.js";

const push = (data: unknown) => ({
  message: { data: Buffer.from(JSON.stringify(data)).toString("base64"), messageId: "m1" },
});

/** An exit 0 of attempt 1 of `jobId` from the host at `address`, as an agent publishes it. */
const strayExit = (jobId: string, address: string) => ({
  version: 1,
  kind: "exited",
  eventId: "e",
  at: 1,
  agent: "a",
  address,
  jobId,
  attempt: 1,
  exitCode: 0,
});

describe("the ingest app", () => {
  const world = fakeWorld();
  const app = createIngestApp(world.deps, { authorizePush: (a) => a === "Bearer good" });
  const post = (path: string, body: string, authorization = "Bearer good") =>
    app.request(path, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", authorization },
    });

  it("refuses unauthenticated pushes", async () => {
    const res = await post("/push/host-events", JSON.stringify(push({})), "Bearer bad");
    expect(res.status).toBe(401);
  });

  it.each([
    ["not JSON", "{", 400, "InvalidPush"],
    ["not an envelope", JSON.stringify({ hello: 1 }), 400, "InvalidPush"],
    ["an envelope with a wrong message type", JSON.stringify({ message: "x" }), 400, "InvalidPush"],
  ])("answers %s with 400 {code, message, issues}", async (_what, body, status, code) => {
    for (const path of ["/push/host-events", "/push/preemption-notices"]) {
      const res = await post(path, body);
      expect(res.status).toBe(status);
      const answer = (await res.json()) as { issues: unknown[] };
      expect(answer).toMatchObject({ code, message: expect.any(String) });
      // Every issue names where, what was expected and what came.
      expect(answer.issues.length).toBeGreaterThan(0);
      for (const i of answer.issues)
        expect(i).toMatchObject({
          path: expect.any(String),
          expected: expect.any(String),
          got: expect.any(String),
        });
    }
  });

  it("acknowledges a well-formed push of a malformed event, so it is not redelivered forever", async () => {
    const event = await post("/push/host-events", JSON.stringify(push({ kind: "exploded" })));
    expect(event.status).toBe(200);
    expect(await event.json()).toMatchObject({
      action: "ignored",
      reason: expect.stringContaining("malformed host event"),
    });
    const notice = await post("/push/preemption-notices", JSON.stringify(push({ nothing: true })));
    expect(await notice.json()).toMatchObject({
      action: "ignored",
      reason: expect.stringContaining("malformed notice"),
    });
    const garbage = await post(
      "/push/host-events",
      JSON.stringify({ message: { data: "%%%not-base64-json" } }),
    );
    expect(garbage.status).toBe(200);
  });

  it("ignores events and notices of no known job", async () => {
    const event = strayExit("ghost", "127.0.1.1");
    expect(await (await post("/push/host-events", JSON.stringify(push(event)))).json()).toMatchObject({
      action: "ignored",
      reason: "unknown job ghost",
    });
    expect(
      await (await post("/push/preemption-notices", JSON.stringify(push({ slice: "nope" })))).json(),
    ).toMatchObject({ action: "ignored" });
  });
});

describe("notices of a preemption from before the current attempt", () => {
  it("are ignored, judged by when it happened, else by when the notice was published", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    // The fake clock stands at 1,000,000 ms since the epoch when the attempt started.
    const app = createIngestApp(world.deps);
    const notify = async (data: unknown, publishTime: string) => {
      const envelope = push(data);
      const body = JSON.stringify({ message: { ...envelope.message, publishTime } });
      const res = await app.request("/push/preemption-notices", {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });
      return res.json();
    };
    const before = new Date(999_000).toISOString();
    const after = new Date(1_001_000).toISOString();
    expect(await notify({ slice: "v4-16-1" }, before)).toMatchObject({
      action: "ignored",
      reason: "stale notice: slice v4-16-1 was preempted before attempt 1 started",
    });
    // Published late (a log sink), but the preemption it reports is older than the attempt.
    expect(await notify({ slice: "v4-16-1", at: 999_500 }, after)).toMatchObject({ action: "ignored" });
    expect(world.sent).toEqual([]);
    expect(await notify({ slice: "v4-16-1" }, after)).toMatchObject({
      action: "decided",
      outcome: "Preempted",
    });
  });

  it("judge a notice that names its attempt by that, whatever its clock says", async () => {
    const world = fakeWorld();
    const { s, state } = await launched(world);
    await s.await({ token: "tok-1", state });
    // An agent's clock a little behind ours: its notice of attempt 1 still counts.
    expect(await s.ingest.notice({ slice: "v4-16-1", attempt: 1, at: 999_000 })).toMatchObject({
      action: "decided",
      outcome: "Preempted",
    });
  });
});

describe("names as long as the schemas allow", () => {
  it("are answered (ignored), not failed, on the directory store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gangway-ingest-"));
    try {
      const world = fakeWorld();
      const app = createIngestApp({ ...world.deps, store: createDirectoryResultsStore(dir) });
      const send = async (path: string, data: unknown) => {
        const res = await app.request(path, {
          method: "POST",
          body: JSON.stringify(push(data)),
          headers: { "content-type": "application/json" },
        });
        return { status: res.status, body: await res.json() };
      };
      // 300 characters: 300 bytes as a file name, or 1,800 once URI-encoded.
      for (const long of ["j".repeat(300), "\u00e9".repeat(300)]) {
        expect(await send("/push/host-events", strayExit(long, long))).toMatchObject({
          status: 200,
          body: { action: "ignored" },
        });
        for (const notice of [{ slice: long }, { address: long }, { slice: long, jobId: long }]) {
          expect(await send("/push/preemption-notices", notice)).toMatchObject({
            status: 200,
            body: { action: "ignored" },
          });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
