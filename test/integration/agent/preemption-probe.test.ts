import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPreempted, startPreemptionProbe } from "../../../infra/agent/preemption-probe.js";
import { lease, runParams, startTestAgent, until } from "./helpers.js";

/** A stand-in for the GCE metadata server: the answer of each path is chosen by the test. */
let server: Server;
let base: string;
let preemptedAnswer = "FALSE";
const hits: Array<{ path: string; query: string; flavor: string | undefined }> = [];
const hanging = new Set<ServerResponse>();

// `/watch` answers as GCE's metadata server does: an ETag with every answer, and a question with
// `wait_for_change=true&last_etag=E` held until the value's version is no longer E.
let watched = { value: "FALSE", version: 1 };
const watchers = new Set<ServerResponse>();
const answerWatch = (res: ServerResponse) => {
  res.setHeader("ETag", String(watched.version));
  res.end(watched.value);
};
function setWatched(value: string) {
  watched = { value, version: watched.version + 1 };
  for (const res of watchers) answerWatch(res);
  watchers.clear();
}

function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://x");
  hits.push({
    path: url.pathname,
    query: url.search,
    flavor: req.headers["metadata-flavor"] as string | undefined,
  });
  const flavorOk = req.headers["metadata-flavor"] === "Google";
  const waiting =
    url.searchParams.get("wait_for_change") === "true" &&
    url.searchParams.get("last_etag") === String(watched.version);
  switch (url.pathname) {
    case "/watch":
      if (waiting) watchers.add(res);
      else answerWatch(res);
      return;
    case "/watch-at-once":
      // Takes the question but answers at once, the same version: the probe must not spin.
      res.setHeader("ETag", "7");
      res.end("FALSE");
      return;
    case "/watch-new-etag":
      // Answers at once with a new version every time: nor must it spin on that.
      res.setHeader("ETag", String(hits.length));
      res.end("FALSE");
      return;
    case "/true":
      res.end(flavorOk ? "TRUE" : "missing header");
      return;
    case "/false":
      res.end("FALSE");
      return;
    case "/switch":
      res.end(preemptedAnswer);
      return;
    case "/hang":
      hanging.add(res); // never answers: the probe's timeout must give up
      return;
    case "/error":
      res.writeHead(500).end("TRUE");
      return;
    default:
      res.writeHead(404).end("not found");
  }
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of [...hanging, ...watchers]) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("preemption probe against a metadata stand-in", () => {
  it("says preempted only on TRUE, sent with Metadata-Flavor: Google", async () => {
    expect(await isPreempted(`${base}/true`)).toBe(true);
    expect(hits.at(-1)?.flavor).toBe("Google");
    expect(await isPreempted(`${base}/false`)).toBe(false);
  });

  it("says not preempted on 404, on a server error, on a timeout and with no server; never throws", async () => {
    expect(await isPreempted(`${base}/missing`)).toBe(false);
    expect(await isPreempted(`${base}/error`)).toBe(false);
    expect(await isPreempted(`${base}/hang`, 300)).toBe(false);
    expect(await isPreempted("http://127.0.0.1:1/nothing-listens")).toBe(false);
    expect(await isPreempted("not a url")).toBe(false);
  });

  it("polls until TRUE and reports the preemption exactly once", async () => {
    preemptedAnswer = "FALSE";
    let reports = 0;
    const probe = startPreemptionProbe({
      url: `${base}/switch`,
      intervalMs: 20,
      onPreempted: () => reports++,
    });
    await until(() => (hits.filter((h) => h.path === "/switch").length >= 3 ? true : undefined));
    expect(reports).toBe(0);
    preemptedAnswer = "TRUE";
    await until(() => (reports > 0 ? true : undefined));
    const asked = hits.filter((h) => h.path === "/switch").length;
    await new Promise((r) => setTimeout(r, 150));
    expect(reports).toBe(1);
    expect(probe.preempted).toBe(true);
    expect(hits.filter((h) => h.path === "/switch").length).toBe(asked); // stopped polling
  });

  it("watches GCE's metadata server: a preemption is known the moment it is, with no polling", async () => {
    let reports = 0;
    // An hour between polls: only the held question can tell in time.
    const probe = startPreemptionProbe({
      url: `${base}/watch`,
      intervalMs: 3_600_000,
      onPreempted: () => reports++,
    });
    try {
      // The first question reads the value and its ETag; the second waits for a change.
      await until(() => (watchers.size === 1 ? true : undefined));
      const asked = hits.filter((h) => h.path === "/watch");
      expect(asked.map((h) => h.query)).toEqual([
        "",
        `?wait_for_change=true&last_etag=${watched.version}&timeout_sec=60`,
      ]);
      setWatched("TRUE");
      await until(() => (reports > 0 ? true : undefined));
      expect(probe.preempted).toBe(true);
      expect(hits.filter((h) => h.path === "/watch")).toHaveLength(2);
    } finally {
      probe.stop();
      setWatched("FALSE");
    }
  });

  it.each([
    ["unchanged", "/watch-at-once"],
    ["with a new version each time", "/watch-new-etag"],
  ])("falls back to its interval when watched questions come back at once, %s", async (_how, path) => {
    const probe = startPreemptionProbe({
      url: `${base}${path}`,
      intervalMs: 3_600_000,
      onPreempted: () => {},
    });
    try {
      await until(() => (hits.filter((h) => h.path === path).length >= 2 ? true : undefined));
      await new Promise((r) => setTimeout(r, 200));
      expect(hits.filter((h) => h.path === path)).toHaveLength(2);
    } finally {
      probe.stop();
    }
  });

  it("an agent with the probe marks a failed workload's exit as metadataPreempted when the endpoint says TRUE", async () => {
    preemptedAnswer = "FALSE";
    // The probe asks once at start (FALSE) and not again for an hour: only the exit check sees TRUE.
    const asked = () => hits.filter((h) => h.path === "/switch").length;
    const before = asked();
    const agent = await startTestAgent({ preemptionProbe: { url: `${base}/switch`, intervalMs: 3_600_000 } });
    try {
      await until(() => (asked() > before ? true : undefined));
      await agent.client.acquireLease(lease());
      preemptedAnswer = "TRUE";
      await agent.client.run(runParams(["sh", "-c", "exit 1"]));
      const event = await agent.waitForEvent((e) => e.event.kind === "exited");
      expect(event).toMatchObject({ exitCode: 1, metadataPreempted: true });
      expect((await agent.client.health()).preempted).toBe(false);
    } finally {
      await agent.close();
      preemptedAnswer = "FALSE";
    }
  });

  it("an agent with the probe publishes the preemption to both topics with its job and attempt", async () => {
    preemptedAnswer = "FALSE";
    const agent = await startTestAgent({ preemptionProbe: { url: `${base}/switch`, intervalMs: 20 } });
    try {
      await agent.client.acquireLease(lease());
      await agent.client.run(
        runParams(["sleep", "300"], { attempt: 4, sliceName: "v4-16-1", sliceIndex: 1 }),
      );
      preemptedAnswer = "TRUE";
      const notice = await agent.waitForEvent((e) => e.topic === "gangway-preemption-notices");
      expect(notice).toMatchObject({
        kind: "preempted",
        jobId: "job-a",
        attempt: 4,
        epoch: 1,
        sliceName: "v4-16-1",
        sliceIndex: 1,
        agent: agent.server.address,
        address: "127.0.1.1",
      });
      await agent.waitForEvent((e) => e.topic === "gangway-host-events" && e.event.kind === "preempted");
      expect((await agent.client.status()).state).toBe("preempted");
      expect((await agent.client.health()).preempted).toBe(true);
      // A preempted host takes no new work.
      await expect(agent.client.run(runParams(["true"], { attempt: 5 }))).rejects.toMatchObject({ code: 14 });
      await new Promise((r) => setTimeout(r, 100));
      expect(agent.events().filter((e) => e.event.kind === "preempted")).toHaveLength(2);
    } finally {
      await agent.close();
    }
  });
});
