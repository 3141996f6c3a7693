import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../../functions/api/signature.js";
import { behaveJob, processesOfJob, startTestStack } from "./harness.js";

// The webhook and jobs API of the embedded stack, over HTTP: a signed job runs to the end; a
// running job cancelled with DELETE is torn down and ends CANCELLED with no process left.

let t: Awaited<ReturnType<typeof startTestStack>>;
beforeAll(async () => {
  t = await startTestStack("v4-8x2");
});
afterAll(async () => {
  await t?.close();
});

async function submit(spec: unknown, headers: Record<string, string> = {}) {
  const body = JSON.stringify(spec);
  const ts = String(Math.floor(Date.now() / 1000));
  return fetch(`${t.stack.api}/v1/jobs`, {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      "x-gangway-timestamp": ts,
      "x-gangway-signature": signBody(t.stack.webhookSecret, ts, body),
      ...headers,
    },
  });
}

async function waitForStatus(jobId: string, done: (view: { status: string; phase: string }) => boolean) {
  for (let i = 0; i < 600; i++) {
    const view = (await (await fetch(`${t.stack.api}/v1/jobs/${jobId}`)).json()) as {
      status: string;
      phase: string;
    };
    if (done(view)) return view;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${jobId} never got there`);
}

describe("the jobs API", () => {
  it("runs a signed job to the end and shows it", async () => {
    const res = await submit(behaveJob("api", { kind: "tpu", type: "v4-8", slices: 2 }));
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    const view = await waitForStatus(jobId, (v) => v.status === "SUCCEEDED");
    expect(view).toMatchObject({
      status: "SUCCEEDED",
      counters: { attempts: 1 },
      hosts: [{ state: "exited" }, { state: "exited" }],
    });
    const list = (await (await fetch(`${t.stack.api}/v1/jobs?limit=5`)).json()) as {
      jobs: Array<{ jobId: string }>;
    };
    expect(list.jobs.map((j) => j.jobId)).toContain(jobId);
  });

  it("refuses an unsigned request and starts nothing", async () => {
    const res = await fetch(`${t.stack.api}/v1/jobs`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(401);
  });

  it("cancels a running job: teardown runs, CANCELLED, no process left", async () => {
    const res = await submit(
      behaveJob("cancel", { kind: "tpu", type: "v4-8", slices: 1 }, ["--sleep", "30000"]),
    );
    const { jobId } = (await res.json()) as { jobId: string };
    await waitForStatus(jobId, (v) => v.phase === "running");
    for (let i = 0; i < 100 && (await processesOfJob(jobId)).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    const del = await fetch(`${t.stack.api}/v1/jobs/${jobId}?reason=testing`, { method: "DELETE" });
    expect(del.status).toBe(202);
    const view = await waitForStatus(jobId, (v) => v.status === "CANCELLED");
    expect(view).toMatchObject({
      status: "CANCELLED",
      error: { name: "JobCancelled", message: expect.stringContaining("testing") },
    });
    expect(await processesOfJob(jobId)).toEqual([]);
    expect((await fetch(`${t.stack.api}/v1/jobs/${jobId}`, { method: "DELETE" })).status).toBe(409);
  });

  it("answers a spec too large to travel in every state 400, naming its size and the limit", async () => {
    const command = ["python3", ...Array.from({ length: 5 }, () => "y".repeat(4000))];
    const res = await submit({ ...behaveJob("big", { kind: "cpu" }), workload: { command } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: "InvalidJobSpec",
      issues: [
        {
          path: "(root)",
          expected: expect.stringContaining("16384"),
          got: expect.stringMatching(/^\d+ bytes/),
        },
      ],
    });
  });

  it("refuses a chunked upload past 256 KiB with 413 {code, message, issues}", async () => {
    // Its own connection (no agent): the server stops reading this request's body and closes it.
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${t.stack.api}/v1/jobs`,
        { method: "POST", agent: false, headers: { "content-type": "application/json" } },
        (r) => {
          let body = "";
          r.setEncoding("utf8");
          r.on("data", (d: string) => {
            body += d;
          });
          r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      // No content-length: chunked, 1 MiB in all unless the answer comes first.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      let answered = false;
      req.once("response", () => {
        answered = true;
      });
      const write = () => {
        while (!answered && sent < 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", write);
            return;
          }
        }
        req.end();
      };
      write();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ code: "PayloadTooLarge", issues: [{ path: "(root)" }] });
  });

  it.each([
    ["/v1/jobs?status=bogus", "status"],
    ["/v1/jobs?next=garbage", "next"],
    [`/v1/jobs/${"x".repeat(81)}`, "id"],
  ])("answers GET %s 400 {code, message, issues} naming %s", async (url, path) => {
    const res = await fetch(`${t.stack.api}${url}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ message: expect.any(String), issues: [{ path }] });
  });
});
