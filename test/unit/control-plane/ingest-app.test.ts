import { describe, expect, it } from "vitest";
import { createIngestApp } from "../../../functions/ingest/index.js";
import { fakeWorld } from "./fakes.js";

const push = (data: unknown) => ({
  message: { data: Buffer.from(JSON.stringify(data)).toString("base64"), messageId: "m1" },
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
      expect(await res.json()).toMatchObject({
        code,
        message: expect.any(String),
        issues: expect.any(Array),
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
    const event = {
      version: 1,
      kind: "exited",
      eventId: "e",
      at: 1,
      agent: "a",
      address: "127.0.1.1",
      jobId: "ghost",
      attempt: 1,
      exitCode: 0,
    };
    expect(await (await post("/push/host-events", JSON.stringify(push(event)))).json()).toMatchObject({
      action: "ignored",
      reason: "unknown job ghost",
    });
    expect(
      await (await post("/push/preemption-notices", JSON.stringify(push({ slice: "nope" })))).json(),
    ).toMatchObject({ action: "ignored" });
  });
});
