import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MAX_JOB_SPEC_BYTES } from "../../../core/job-spec.js";
import { MAX_EXECUTION_INPUT_BYTES as MAX_BODY_BYTES } from "../../../functions/api/errors.js";
import { jobIdFor } from "../../../functions/api/job-id.js";
import { createJobsApi } from "../../../functions/api/jobs.js";
import { signBody } from "../../../functions/api/signature.js";
import { attemptStore } from "../../../functions/attempts.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { addContinuedJob, arnOf, fakeExecutions, SM, sfnError } from "./api-fakes.js";

const SECRET = "s3cret-s3cret-s3cret";
const NOW = 1_800_000_000_000;

function world(options: { refuseStart?: Error } = {}) {
  const sfn = fakeExecutions(options);
  const store = createMemoryResultsStore();
  const sent: string[] = [];
  const logged: string[] = [];
  const app = createJobsApi({
    executions: sfn.api,
    store,
    tokens: {
      succeed: async () => {
        sent.push("succeeded");
        return "sent";
      },
      fail: async (_t, e) => {
        sent.push(e);
        return "sent";
      },
      heartbeat: async () => "sent",
    },
    clock: { now: () => NOW },
    stateMachineArn: SM,
    webhookSecret: SECRET,
    log: (line) => logged.push(line),
  });
  return { app, started: sfn.all, sfn, store, sent, logged };
}

const job = {
  name: "train",
  accelerator: { kind: "tpu", type: "v4-8" },
  workload: { command: ["python3", "train.py"] },
};

function post(
  app: ReturnType<typeof world>["app"],
  body: string,
  headers: Record<string, string> = {},
  sign = true,
) {
  const ts = String(Math.floor(NOW / 1000));
  return app.request("/v1/jobs", {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      ...(sign ? { "x-gangway-timestamp": ts, "x-gangway-signature": signBody(SECRET, ts, body) } : {}),
      ...headers,
    },
  });
}

describe("POST /v1/jobs", () => {
  it("starts a job for a signed, valid spec and answers 202 {jobId, executionArn}", async () => {
    const w = world();
    const res = await post(w.app, JSON.stringify(job));
    expect(res.status).toBe(202);
    const body = (await res.json()) as { jobId: string; executionArn: string };
    expect(body.jobId).toMatch(/^train-[0-9a-f]{8}$/);
    expect(w.started.get(body.executionArn)?.input).toContain('"maxPreemptions":1000000');
  });

  it.each([
    ["no signature", {}, false, 401, "missing X-Gangway-Timestamp"],
    [
      "a stale timestamp",
      { "x-gangway-timestamp": String(Math.floor(NOW / 1000) - 400) },
      true,
      401,
      "window",
    ],
    ["a wrong signature", { "x-gangway-signature": `sha256=${"0".repeat(64)}` }, true, 401, "does not match"],
    ["a malformed signature", { "x-gangway-signature": "md5=abc" }, true, 401, "expected sha256="],
    ["a text content type", { "content-type": "text/plain" }, true, 415, "application/json"],
  ])("refuses %s, starting nothing", async (_what, headers, sign, status, message) => {
    const w = world();
    const ts = String(Math.floor(NOW / 1000));
    const body = JSON.stringify(job);
    const res = await w.app.request("/v1/jobs", {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        ...(sign ? { "x-gangway-timestamp": ts, "x-gangway-signature": signBody(SECRET, ts, body) } : {}),
        ...headers,
      },
    });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { message: string }).message).toContain(message);
    expect(w.started.size).toBe(0);
  });

  it("answers 400 with every issue for bad JSON or a bad spec, 413 over 256 KiB", async () => {
    const w = world();
    const bad = await post(w.app, "{nope");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      code: "InvalidJson",
      issues: [
        {
          path: "(root)",
          expected: "a JSON document",
          got: expect.stringContaining("text that does not parse"),
          message: expect.stringMatching(/^\(root\): expected a JSON document, got text that does not parse/),
        },
      ],
    });
    const invalid = await post(
      w.app,
      JSON.stringify({ ...job, accelerator: { kind: "tpu", type: "v4-7" }, extra: 1 }),
    );
    expect(invalid.status).toBe(400);
    const body = (await invalid.json()) as {
      code: string;
      issues: Array<{ path: string; expected: string; got: string; message: string }>;
    };
    expect(body.code).toBe("InvalidJobSpec");
    expect(body.issues).toEqual([
      {
        path: "accelerator.type",
        expected: expect.any(String),
        got: 'string "v4-7"',
        message: expect.stringContaining("accelerator.type: expected"),
      },
      {
        path: "extra",
        expected: expect.stringContaining("known fields"),
        got: 'unknown field "extra"',
        message: expect.stringContaining("extra: expected"),
      },
    ]);
    const huge = await post(
      w.app,
      JSON.stringify({ ...job, workload: { command: ["x", "y".repeat(MAX_BODY_BYTES)] } }),
    );
    expect(huge.status).toBe(413);
    // Refused as a body over the limit (the streaming limit), not parsed as a spec first.
    expect(await huge.json()).toMatchObject({ code: "PayloadTooLarge", issues: [{ path: "(root)" }] });
    expect(w.started.size).toBe(0);
  });

  it("makes the same Idempotency-Key and body the same job, and another body a 409", async () => {
    const w = world();
    const body = JSON.stringify(job);
    const a = (await (await post(w.app, body, { "idempotency-key": "k-1" })).json()) as { jobId: string };
    const b = (await (await post(w.app, body, { "idempotency-key": "k-1" })).json()) as { jobId: string };
    expect(b.jobId).toBe(a.jobId);
    // The id every way in gives this key (launch requests, the SFN client).
    expect(a.jobId).toBe(jobIdFor("train", "k-1"));
    expect(w.started.size).toBe(1);
    const other = await post(w.app, JSON.stringify({ ...job, name: "other" }), { "idempotency-key": "k-1" });
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({
      code: "IdempotencyConflict",
      message: expect.stringContaining('Idempotency-Key "k-1"'),
      issues: [{ path: "Idempotency-Key", expected: expect.stringContaining(a.jobId), got: "another body" }],
    });
    expect(w.started.size).toBe(1);
  });
});

describe("POST /v1/jobs with an Idempotency-Key: the key is claimed before anything starts", () => {
  const recordKey = (key: string) => `idempotency/${createHash("sha256").update(key).digest("hex")}.json`;
  /** Make StartExecution take a while, so that requests overlap. */
  const slowStarts = (w: ReturnType<typeof world>) => {
    const start = w.sfn.api.start;
    w.sfn.api.start = async (r) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return start(r);
    };
  };

  it("starts one job for two concurrent requests with one key and different names; the other is a 409", async () => {
    const w = world();
    slowStarts(w);
    const [a, b] = await Promise.all([
      post(w.app, JSON.stringify({ ...job, name: "first" }), { "idempotency-key": "k-race" }),
      post(w.app, JSON.stringify({ ...job, name: "second" }), { "idempotency-key": "k-race" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
    expect(w.started.size).toBe(1);
    const winner = (await (a.status === 202 ? a : b).json()) as { jobId: string };
    expect([...w.started.values()].map((e) => e.name)).toEqual([winner.jobId]);
    expect(await (a.status === 409 ? a : b).json()).toMatchObject({
      code: "IdempotencyConflict",
      issues: [{ path: "Idempotency-Key", expected: expect.stringContaining(winner.jobId) }],
    });
    expect(JSON.parse((await w.store.get(recordKey("k-race"))) ?? "{}")).toMatchObject({
      jobId: winner.jobId,
      started: true,
    });
  });

  it("starts one job for two concurrent requests with one key and the same body, both answered with it", async () => {
    const w = world();
    slowStarts(w);
    const body = JSON.stringify(job);
    const answers = await Promise.all([
      post(w.app, body, { "idempotency-key": "k-same" }),
      post(w.app, body, { "idempotency-key": "k-same" }),
    ]);
    expect(answers.map((r) => r.status)).toEqual([202, 202]);
    const [a, b] = (await Promise.all(answers.map((r) => r.json()))) as Array<{ jobId: string }>;
    expect(b?.jobId).toBe(a?.jobId);
    expect(w.started.size).toBe(1);
  });

  it("lets a claim whose start failed be retried with its body, and refuses another body", async () => {
    const w = world();
    const start = w.sfn.api.start;
    w.sfn.api.start = async () => {
      throw sfnError("ThrottlingException", "Rate exceeded");
    };
    const body = JSON.stringify(job);
    const failed = await post(w.app, body, { "idempotency-key": "k-retry" });
    expect(failed.status).toBe(429);
    expect(w.started.size).toBe(0);
    // The claim stays, not started: the key is this body's.
    expect(JSON.parse((await w.store.get(recordKey("k-retry"))) ?? "{}")).toMatchObject({
      jobId: jobIdFor("train", "k-retry"),
      started: false,
    });
    w.sfn.api.start = start;
    const other = await post(w.app, JSON.stringify({ ...job, name: "other" }), {
      "idempotency-key": "k-retry",
    });
    expect(other.status).toBe(409);
    expect(w.started.size).toBe(0);
    const retried = await post(w.app, body, { "idempotency-key": "k-retry" });
    expect(retried.status).toBe(202);
    expect(await retried.json()).toMatchObject({ jobId: jobIdFor("train", "k-retry") });
    expect(w.started.size).toBe(1);
    expect(JSON.parse((await w.store.get(recordKey("k-retry"))) ?? "{}")).toMatchObject({ started: true });
    const replay = await post(w.app, body, { "idempotency-key": "k-retry" });
    expect(replay.status).toBe(202);
    expect(w.started.size).toBe(1);
  });

  it("keeps the key to its job when the record cannot be marked started after the start", async () => {
    const w = world();
    const put = w.store.put;
    w.store.put = async (key, value) => {
      if (key.startsWith("idempotency/")) throw new Error("store unavailable");
      return put(key, value);
    };
    const body = JSON.stringify(job);
    const first = await post(w.app, body, { "idempotency-key": "k-put" });
    expect(first.status).toBe(202);
    const { jobId } = (await first.json()) as { jobId: string };
    expect(w.logged.join("\n")).toContain("not marked started");
    const other = await post(w.app, JSON.stringify({ ...job, name: "other" }), {
      "idempotency-key": "k-put",
    });
    expect(other.status).toBe(409);
    // The same body starts the same name again: Step Functions answers it as the running job.
    const again = await post(w.app, body, { "idempotency-key": "k-put" });
    expect(again.status).toBe(202);
    expect(await again.json()).toMatchObject({ jobId });
    expect(w.started.size).toBe(1);
  });

  it("answers a claim's body as its ended job, and frees a key whose start Step Functions refused", async () => {
    const w = world();
    const body = JSON.stringify(job);
    const jobId = jobIdFor("train", "k-ended");
    // A claim whose request died after the start; the job has since ended.
    w.sfn.add(jobId, {
      status: "SUCCEEDED",
      input: JSON.stringify((await import("../../../core/job-spec.js")).parseJobSpec(job)),
    });
    await w.store.put(
      recordKey("k-ended"),
      JSON.stringify({ bodyHash: "x", jobId, executionArn: "arn", started: false }),
    );
    expect((await post(w.app, body, { "idempotency-key": "k-ended" })).status).toBe(409);
    await w.store.delete(recordKey("k-ended"));
    const res = await post(w.app, body, { "idempotency-key": "k-ended" });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ jobId });
    expect(w.started.size).toBe(1);

    const start = w.sfn.api.start;
    w.sfn.api.start = async () => {
      throw sfnError("InvalidName", "Invalid Name");
    };
    const refused = await post(w.app, body, { "idempotency-key": "k-refused" });
    expect(refused.status).toBe(400);
    expect(await w.store.get(recordKey("k-refused"))).toBeUndefined();
    w.sfn.api.start = start;
    const fixed = await post(w.app, JSON.stringify({ ...job, name: "fixed" }), {
      "idempotency-key": "k-refused",
    });
    expect(fixed.status).toBe(202);
  });
});

describe("routes the API does not have", () => {
  it.each([
    ["PUT", "/v1/jobs", "GET, POST, HEAD"],
    ["PATCH", "/v1/jobs/train-1", "GET, DELETE, HEAD"],
    ["POST", "/v1/jobs/train-1/status", "GET, HEAD"],
    ["DELETE", "/v1/openapi.json", "GET, HEAD"],
  ])("answers %s %s 405 {code, message, issues} with Allow", async (method, path, allow) => {
    const w = world();
    const res = await w.app.request(path, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("allow")?.split(", ").sort()).toEqual(allow.split(", ").sort());
    expect(await res.json()).toEqual({
      code: "MethodNotAllowed",
      message: expect.stringContaining(`${method} ${path}`),
      issues: [],
    });
    expect(w.started.size).toBe(0);
  });

  it.each([
    ["GET", "/v1/jobs/x/y"],
    ["POST", "/v1/jobs/x/y"],
    ["GET", "/v2/jobs"],
    ["GET", "/"],
  ])("answers %s %s 404 {code: NotFound} naming the method and path", async (method, path) => {
    const res = await world().app.request(path, { method });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ code: "NotFound", message: `no route ${method} ${path}`, issues: [] });
  });

  it("still answers HEAD of a GET route as the GET", async () => {
    const res = await world().app.request("/v1/openapi.json", { method: "HEAD" });
    expect(res.status).toBe(200);
  });
});

describe("GET and DELETE /v1/jobs/:id", () => {
  it("shows a job, lists jobs, and cancels a running one", async () => {
    const w = world();
    const { jobId } = (await (await post(w.app, JSON.stringify(job))).json()) as { jobId: string };
    const got = await w.app.request(`/v1/jobs/${jobId}`);
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ jobId, status: "RUNNING" });
    expect(await (await w.app.request("/v1/jobs?limit=10")).json()).toMatchObject({
      jobs: [{ jobId }],
      next: null,
    });
    expect((await w.app.request("/v1/jobs?limit=0")).status).toBe(400);
    expect((await w.app.request("/v1/jobs/nope")).status).toBe(404);
    // Cancelled before Init ran: the request is kept, and the first step stops the job.
    expect((await w.app.request(`/v1/jobs/${jobId}`, { method: "DELETE" })).status).toBe(202);
    expect((await w.app.request("/v1/jobs/nope", { method: "DELETE" })).status).toBe(404);
  });
});

describe("DELETE /v1/jobs/:id while an attempt ends", () => {
  /** A job whose attempt 1 runs and waits on token `tok-1`. */
  async function running() {
    const w = world();
    const attempts = attemptStore(w.store);
    await attempts.setCurrent("train-1", {
      attempt: 1,
      executionArn: arnOf("train-1"),
      state: "running",
      updatedAt: NOW,
    });
    await attempts.setToken("train-1", 1, "tok-1");
    return { w, attempts };
  }

  it("ends a running attempt as cancelled", async () => {
    const { w, attempts } = await running();
    expect((await w.app.request("/v1/jobs/train-1", { method: "DELETE" })).status).toBe(202);
    expect(w.sent).toEqual(["JobCancelled"]);
    expect(await attempts.outcome("train-1", 1)).toMatchObject({ error: { name: "JobCancelled" } });
  });

  it("answers a malformed logs query 400, naming the parameter, expected and got", async () => {
    const { w } = await running();
    for (const [query, path] of [
      ["maxBytes=abc", "maxBytes"],
      ["maxBytes=-5", "maxBytes"],
      ["maxBytes=2000000", "maxBytes"],
      ["host=first", "host"],
    ] as const) {
      const res = await w.app.request(`/v1/jobs/train-1/logs?${query}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        code: "InvalidQuery",
        issues: [{ path, expected: expect.any(String), got: expect.any(String) }],
      });
    }
  });

  it("does not throw away a success decided first: the token gets that success", async () => {
    // Every host exited 0 and ingest decided it, but its send has not reached the token yet.
    const { w, attempts } = await running();
    await attempts.decide("train-1", 1, { kind: "succeeded", at: NOW });
    expect((await w.app.request("/v1/jobs/train-1", { method: "DELETE" })).status).toBe(202);
    expect(w.sent).toEqual(["succeeded"]);
  });
});

describe("GET /v1/openapi.json", () => {
  it("documents every route with the schemas the API validates with", async () => {
    const doc = (await (await world().app.request("/v1/openapi.json")).json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: {
              content: { "application/json": { schema: { properties: Record<string, unknown> } } };
            };
          }
        >
      >;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/status", "/push/launch-requests"]),
    );
    expect(
      Object.keys(
        doc.paths["/v1/jobs"]?.post?.requestBody?.content["application/json"].schema.properties ?? {},
      ),
    ).toContain("accelerator");
  });

  it("documents the job ids the API takes: one made from the name llama3.1-8b matches", async () => {
    const w = world();
    const doc = (await (await w.app.request("/v1/openapi.json")).json()) as {
      paths: Record<string, { get: { parameters: Array<{ name: string; schema: { pattern: string } }> } }>;
    };
    const param = doc.paths["/v1/jobs/{id}"]?.get.parameters.find((p) => p.name === "id");
    const pattern = new RegExp(param?.schema.pattern ?? "", "u");
    const res = await post(w.app, JSON.stringify({ ...job, name: "llama3.1-8b" }));
    const { jobId } = (await res.json()) as { jobId: string };
    expect(jobId).toMatch(/^llama3\.1-8b-/);
    expect(jobId).toMatch(pattern);
    // The document's rule is the server's, character by character.
    const { JobIdParamsSchema } = await import("../../../functions/api/jobs.js");
    const differ = [...Array(0x3100).keys(), 0xfeff, 0x1f600].filter((cp) => {
      const id = `a${String.fromCodePoint(cp)}`;
      return pattern.test(id) !== JobIdParamsSchema.safeParse({ id }).success;
    });
    expect(differ).toEqual([]);
  });
});

/** A valid spec whose JSON is `bytes` long as sent (its defaults not yet added). */
function specOfSize(bytes: number) {
  const command = ["python3"];
  const size = () => JSON.stringify({ ...job, workload: { command } }).length;
  // Each argument is at most 4,096 characters; `,"…"` adds 3 bytes to each.
  while (size() + 4003 < bytes) command.push("y".repeat(4000));
  command.push("y".repeat(bytes - size() - 3));
  return JSON.stringify({ ...job, workload: { command } });
}

describe("POST /v1/jobs past Step Functions' limits", () => {
  it("answers 400 naming the size and the limit for a spec too large to travel in every state", async () => {
    const w = world();
    const body = specOfSize(MAX_JOB_SPEC_BYTES + 1);
    const res = await post(w.app, body);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: "InvalidJobSpec",
      issues: [
        {
          path: "(root)",
          expected: expect.stringContaining(String(MAX_JOB_SPEC_BYTES)),
          got: expect.stringMatching(/^\d+ bytes/),
        },
      ],
    });
    expect(w.started.size).toBe(0);
  });

  it("answers 400 {code, message, issues} when StartExecution refuses the input", async () => {
    const w = world({
      refuseStart: sfnError("InvalidExecutionInput", "Invalid State Machine Execution Input"),
    });
    const res = await post(w.app, JSON.stringify(job));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: "InvalidExecutionInput",
      message: expect.stringContaining("Invalid State Machine Execution Input"),
      issues: [{ path: "(root)" }],
    });
  });

  it("stops reading a body with no declared length at the limit and answers 413", async () => {
    const w = world();
    let pulled = 0;
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    // A body that never ends, sent unsigned: nothing may buffer it whole before refusing.
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += chunk.length;
        if (pulled > 64 * MAX_BODY_BYTES) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const res = await w.app.request("/v1/jobs", {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: "PayloadTooLarge", issues: [{ path: "(root)" }] });
    expect(pulled).toBeLessThan(4 * MAX_BODY_BYTES);
    await body.cancel().catch(() => undefined);
  });
});

describe("Idempotency-Key records torn by a crash", () => {
  it.each([
    ["empty", ""],
    ["cut short", '{"bodyHash":"ab'],
  ])("treats an %s record as none, starts the job once, and mends the record", async (_what, torn) => {
    const w = world();
    const recordKey = `idempotency/${createHash("sha256").update("k-torn").digest("hex")}.json`;
    await w.store.put(recordKey, torn);
    const body = JSON.stringify(job);
    const first = await post(w.app, body, { "idempotency-key": "k-torn" });
    expect(first.status).toBe(202);
    const { jobId } = (await first.json()) as { jobId: string };
    expect(JSON.parse((await w.store.get(recordKey)) ?? "{}")).toMatchObject({ jobId });
    const again = await post(w.app, body, { "idempotency-key": "k-torn" });
    expect(again.status).toBe(202);
    expect(await again.json()).toMatchObject({ jobId });
    expect(w.started.size).toBe(1);
    const other = await post(w.app, JSON.stringify({ ...job, name: "other" }), {
      "idempotency-key": "k-torn",
    });
    expect(other.status).toBe(409);
  });
});

describe("job ids that end in -c<digits>", () => {
  it("reads the history of job train-c0000040 from its one execution", async () => {
    const w = world();
    const arn = w.sfn.add("train-c0000040", { input: JSON.stringify(job) });
    await attemptStore(w.store).setCurrent("train-c0000040", {
      attempt: 1,
      executionArn: arn,
      state: "running",
      updatedAt: NOW,
    });
    const res = await w.app.request("/v1/jobs/train-c0000040/history");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ jobId: "train-c0000040", executions: [arn] });
    expect(w.sfn.historyCalls).toEqual([arn]);
    expect(await (await w.app.request("/v1/jobs/train-c0000040")).json()).toMatchObject({
      jobId: "train-c0000040",
      status: "RUNNING",
    });
    const list = (await (await w.app.request("/v1/jobs")).json()) as { jobs: Array<{ jobId: string }> };
    expect(list.jobs.map((j) => j.jobId)).toEqual(["train-c0000040"]);
  });

  it("follows a continued job's executions by continuedAs, not by the number its record's name ends in", async () => {
    const w = world();
    const { first, second } = addContinuedJob(w.sfn, "train-1");
    await attemptStore(w.store).setCurrent("train-1", {
      attempt: 3,
      executionArn: second,
      state: "running",
      updatedAt: NOW,
    });
    const res = await w.app.request("/v1/jobs/train-1/history");
    expect(await res.json()).toMatchObject({ jobId: "train-1", executions: [first, second] });
    expect(w.sfn.historyCalls).toEqual([first, second]);
  });
});

describe("a continued job", () => {
  async function continuedWorld() {
    const w = world();
    const { first, second } = addContinuedJob(w.sfn, "train-1");
    await attemptStore(w.store).setCurrent("train-1", {
      attempt: 3,
      executionArn: second,
      state: "scaling",
      updatedAt: NOW,
    });
    return { w, first, second };
  }

  it("is listed once, with its current execution's status", async () => {
    const { w, first, second } = await continuedWorld();
    const list = await (await w.app.request("/v1/jobs")).json();
    expect(list).toEqual({
      jobs: [
        {
          jobId: "train-1",
          executionArn: first,
          currentExecutionArn: second,
          executionStatus: "RUNNING",
          startedAt: new Date(1_800_000_000_000).toISOString(),
        },
      ],
      next: null,
    });
    const running = (await (await w.app.request("/v1/jobs?status=RUNNING")).json()) as {
      jobs: Array<{ jobId: string }>;
    };
    expect(running.jobs.map((j) => j.jobId)).toEqual(["train-1"]);
    const succeeded = (await (await w.app.request("/v1/jobs?status=SUCCEEDED")).json()) as {
      jobs: unknown[];
    };
    expect(succeeded.jobs).toEqual([]);
  });

  it("is what its continuation's execution name stands for: view, status, history, cancel", async () => {
    const { w } = await continuedWorld();
    expect(await (await w.app.request("/v1/jobs/train-1-c2")).json()).toMatchObject({
      jobId: "train-1",
      status: "RUNNING",
    });
    expect(await (await w.app.request("/v1/jobs/train-1-c2/status")).json()).toMatchObject({
      jobId: "train-1",
    });
    expect(await (await w.app.request("/v1/jobs/train-1-c2/history")).json()).toMatchObject({
      jobId: "train-1",
    });
    const del = await w.app.request("/v1/jobs/train-1-c2?reason=done", { method: "DELETE" });
    expect(del.status).toBe(202);
    expect(await del.json()).toEqual({ jobId: "train-1", cancelling: true });
    expect(await attemptStore(w.store).cancelRequested("train-1")).toMatchObject({ reason: "done" });
    expect(await w.store.list("jobs/train-1-c2/")).toEqual([]);
  });

  it("answers a history read that fails with the error, not the list without that execution", async () => {
    const { w, first, second } = await continuedWorld();
    const read = w.sfn.api.history;
    w.sfn.api.history = async (arn) => {
      if (arn === first) throw sfnError("ThrottlingException", "Rate exceeded");
      return read(arn);
    };
    const res = await w.app.request("/v1/jobs/train-1/history");
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({ code: "ThrottlingException", message: "Rate exceeded", issues: [] });
    w.sfn.api.history = read;
    expect(await (await w.app.request("/v1/jobs/train-1/history")).json()).toMatchObject({
      executions: [first, second],
    });
    // One that is not there any more (past Step Functions' retention) has no events, every time.
    w.sfn.api.history = async (arn) => {
      if (arn === first) throw sfnError("ExecutionDoesNotExist");
      return read(arn);
    };
    expect(await (await w.app.request("/v1/jobs/train-1/history")).json()).toMatchObject({
      executions: [first, second],
      events: [{ type: "ExecutionStarted", id: 1 }],
    });
  });
});

describe("bad requests and failures answer {code, message, issues}", () => {
  it.each([
    ["/v1/jobs?status=bogus", "InvalidQuery", "status"],
    ["/v1/jobs?next=garbage", "InvalidQuery", "next"],
    ["/v1/jobs?limit=many", "InvalidQuery", "limit"],
    ["/v1/jobs?limit=1001", "InvalidQuery", "limit"],
    [`/v1/jobs/${"x".repeat(81)}`, "InvalidJobId", "id"],
    [`/v1/jobs/${"x".repeat(81)}/history`, "InvalidJobId", "id"],
    ["/v1/jobs/a%20b/status", "InvalidJobId", "id"],
  ])("GET %s → 400 %s naming %s", async (url, code, path) => {
    const res = await world().app.request(url);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code,
      message: expect.any(String),
      issues: [{ path, expected: expect.any(String), got: expect.any(String) }],
    });
  });

  it("answers a Step Functions client error as 4xx and anything else as a 500 of ours", async () => {
    const w = world();
    w.sfn.api.describe = async () => {
      throw sfnError("ThrottlingException", "Rate exceeded");
    };
    const throttled = await w.app.request("/v1/jobs/train-1");
    expect(throttled.status).toBe(429);
    expect(await throttled.json()).toEqual({
      code: "ThrottlingException",
      message: "Rate exceeded",
      issues: [],
    });
    w.sfn.api.describe = async () => {
      throw new TypeError("cannot read properties of undefined");
    };
    const broken = await w.app.request("/v1/jobs/train-1");
    expect(broken.status).toBe(500);
    expect(await broken.json()).toMatchObject({ code: "InternalError", issues: [] });
    expect(w.logged.join("\n")).toContain("cannot read properties of undefined");
  });
});
