import { describe, expect, it } from "vitest";
import { createJobsApi, MAX_BODY_BYTES } from "../../../functions/api/jobs.js";
import { signBody } from "../../../functions/api/signature.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import type { ExecutionDetail, ExecutionsApi } from "../../../functions/ports.js";

const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";
const SECRET = "s3cret-s3cret-s3cret";
const NOW = 1_800_000_000_000;

function world() {
  const started = new Map<string, ExecutionDetail>();
  const executions: ExecutionsApi = {
    async start(r) {
      const executionArn = `${SM.replace(":stateMachine:", ":execution:")}:${r.name}`;
      const existing = started.get(executionArn);
      if (existing) {
        if (existing.status !== "RUNNING" || existing.input !== r.input)
          throw Object.assign(new Error("exists"), { name: "ExecutionAlreadyExists" });
        return { executionArn };
      }
      started.set(executionArn, {
        executionArn,
        name: r.name,
        status: "RUNNING",
        input: r.input,
        startDate: new Date(NOW),
      });
      return { executionArn };
    },
    describe: async (arn) => started.get(arn),
    list: async () => ({ executions: [...started.values()] }),
    history: async () => [],
  };
  const sent: string[] = [];
  const app = createJobsApi({
    executions,
    store: createMemoryResultsStore(),
    tokens: {
      succeed: async () => "sent",
      fail: async (_t, e) => {
        sent.push(e);
        return "sent";
      },
      heartbeat: async () => "sent",
    },
    clock: { now: () => NOW },
    stateMachineArn: SM,
    webhookSecret: SECRET,
  });
  return { app, started, sent };
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
    expect(await bad.json()).toMatchObject({ code: "InvalidJson", issues: [{ path: "(root)" }] });
    const invalid = await post(
      w.app,
      JSON.stringify({ ...job, accelerator: { kind: "tpu", type: "v4-7" }, extra: 1 }),
    );
    expect(invalid.status).toBe(400);
    const body = (await invalid.json()) as { code: string; issues: Array<{ path: string; message: string }> };
    expect(body.code).toBe("InvalidJobSpec");
    expect(body.issues.map((i) => i.path)).toEqual(["accelerator.type", "extra"]);
    const huge = await post(
      w.app,
      JSON.stringify({ ...job, workload: { command: ["x", "y".repeat(MAX_BODY_BYTES)] } }),
    );
    expect(huge.status).toBe(413);
    expect(w.started.size).toBe(0);
  });

  it("makes the same Idempotency-Key and body the same job, and another body a 409", async () => {
    const w = world();
    const body = JSON.stringify(job);
    const a = (await (await post(w.app, body, { "idempotency-key": "k-1" })).json()) as { jobId: string };
    const b = (await (await post(w.app, body, { "idempotency-key": "k-1" })).json()) as { jobId: string };
    expect(b.jobId).toBe(a.jobId);
    expect(w.started.size).toBe(1);
    const other = await post(w.app, JSON.stringify({ ...job, name: "other" }), { "idempotency-key": "k-1" });
    expect(other.status).toBe(409);
    expect(w.started.size).toBe(1);
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
});
