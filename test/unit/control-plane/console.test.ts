import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { JOB_STATUSES } from "../../../core/job-status.js";
import { EXECUTION_STATUSES } from "../../../functions/api/job-executions.js";
import { attemptStore, keys } from "../../../functions/attempts.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { createConsoleApp, LIST_STATUSES } from "../../../functions/console/index.js";
import { addContinuedJob, fakeExecutions, SM, sfnError } from "./api-fakes.js";

// The console's list and job pages: one row per job (a job id may itself end in -c<digits>),
// and every failure answered as {code, message, issues} (a page for a browser).

const definition = readFileSync(
  new URL("../../../statemachines/gangway-multislice.asl.json", import.meta.url),
  "utf8",
);

function consoleWorld(options: { token?: string } = {}) {
  const sfn = fakeExecutions();
  const store = createMemoryResultsStore();
  const logged: string[] = [];
  const app = createConsoleApp({
    executions: sfn.api,
    store,
    stateMachineArn: SM,
    definition,
    token: options.token,
    log: (line) => logged.push(line),
  });
  return { app, sfn, store, logged };
}

/**
 * Let `sfn`'s list page as ListExecutions does: `maxResults` at a time, newest (last added)
 * first, a `nextToken` for the rest; a token it did not give is InvalidToken. Counts its calls.
 */
function pageExecutions(sfn: ReturnType<typeof fakeExecutions>) {
  const calls: Array<string | undefined> = [];
  sfn.api.list = async (r) => {
    calls.push(r.nextToken);
    const from = r.nextToken === undefined ? 0 : Number(/^page-(\d+)$/.exec(r.nextToken)?.[1] ?? Number.NaN);
    if (Number.isNaN(from)) throw sfnError("InvalidToken", `Invalid Token: '${r.nextToken}'`);
    const all = [...sfn.all.values()]
      .reverse()
      .filter((e) => r.status === undefined || e.status === r.status);
    const executions = all.slice(from, from + r.maxResults);
    return {
      executions,
      nextToken: from + r.maxResults < all.length ? `page-${from + r.maxResults}` : undefined,
    };
  };
  return calls;
}

/** Jobs `job-000` … (`n` of them, the last added the newest), each running. */
function addJobs(sfn: ReturnType<typeof fakeExecutions>, n: number) {
  for (let i = 0; i < n; i++) sfn.add(`job-${String(i).padStart(3, "0")}`);
}

/** The `href` of the link with id `id` in `html`, unescaped; undefined when there is none. */
const linkOf = (html: string, id: string) =>
  new RegExp(`id="${id}" href="([^"]+)"`).exec(html)?.[1]?.replaceAll("&amp;", "&");

/** The job ids of the list's rows, and the status each shows. */
async function rows(app: ReturnType<typeof consoleWorld>["app"], query = "") {
  const html = await (await app.request(`/console${query}`)).text();
  return [...html.matchAll(/<tr data-job="([^"]+)">.*?class="status ([A-Z_]+)"/g)].map((m) => [m[1], m[2]]);
}

describe("the console's list", () => {
  it("shows a job whose id ends in -c<digits>", async () => {
    const w = consoleWorld();
    w.sfn.add("train-c0000040", { input: JSON.stringify({ name: "train" }) });
    expect(await rows(w.app)).toEqual([["train-c0000040", "RUNNING"]]);
  });

  it("shows a continued job once, as running", async () => {
    const w = consoleWorld();
    const { second } = addContinuedJob(w.sfn, "train-1");
    await attemptStore(w.store).setCurrent("train-1", {
      attempt: 3,
      executionArn: second,
      state: "running",
      updatedAt: 0,
    });
    expect(await rows(w.app)).toEqual([["train-1", "RUNNING"]]);
    expect(await rows(w.app, "?status=RUNNING")).toEqual([["train-1", "RUNNING"]]);
  });
});

describe("the console's list, paged", () => {
  it("shows 100 jobs a page, newest first, with an `older` link to the rest", async () => {
    const w = consoleWorld();
    pageExecutions(w.sfn);
    addJobs(w.sfn, 150);
    const first = await (await w.app.request("/console")).text();
    const firstRows = await rows(w.app);
    expect(firstRows).toHaveLength(100);
    expect(firstRows[0]).toEqual(["job-149", "RUNNING"]);
    const older = linkOf(first, "older");
    expect(older).toBe("/console?next=page-100");
    const second = await (await w.app.request(older ?? "")).text();
    const secondRows = await rows(w.app, older?.slice("/console".length));
    expect(secondRows.map((r) => r[0])).toEqual(
      Array.from({ length: 50 }, (_, i) => `job-${String(49 - i).padStart(3, "0")}`),
    );
    expect(linkOf(second, "older")).toBeUndefined();
    expect(linkOf(second, "newest")).toBe("/console");
  });

  it("searches past the first page for a name, says how far it looked, and goes on from there", async () => {
    const w = consoleWorld();
    const calls = pageExecutions(w.sfn);
    addJobs(w.sfn, 650);
    // job-01x is among the oldest: past the first five calls of 100.
    const html = await (await w.app.request("/console?q=JOB-01")).text();
    expect(await rows(w.app, "?q=JOB-01")).toEqual([]);
    expect(calls.slice(0, 5)).toEqual([undefined, "page-100", "page-200", "page-300", "page-400"]);
    expect(html).toContain(
      'id="list-scope">The filters looked at 500 job(s), newest first; older jobs were not searched',
    );
    const older = /<a href="([^"]+)">search older<\/a>/.exec(html)?.[1];
    expect(older).toBe("/console?q=JOB-01&amp;next=page-500");
    const found = await rows(w.app, "?q=JOB-01&next=page-500");
    expect(found.map((r) => r[0])).toEqual(
      Array.from({ length: 10 }, (_, i) => `job-${String(19 - i).padStart(3, "0")}`),
    );
    const last = await (await w.app.request("/console?q=JOB-01&next=page-500")).text();
    expect(last).toContain("there are no older ones");
  });

  it("stops a filtered search at the end of the call in which 50 jobs matched", async () => {
    const w = consoleWorld();
    const calls = pageExecutions(w.sfn);
    addJobs(w.sfn, 300);
    const html = await (await w.app.request("/console?q=job")).text();
    expect(calls).toEqual([undefined]);
    expect(await rows(w.app, "?q=job")).toHaveLength(100);
    expect(html).toContain("?q=job&amp;next=page-100");
  });

  it("answers a `next` it did not give, or an overlong one, 400 naming it", async () => {
    const w = consoleWorld();
    pageExecutions(w.sfn);
    addJobs(w.sfn, 3);
    const bad = await w.app.request("/console?next=forged");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      code: "InvalidQuery",
      issues: [
        {
          path: "next",
          expected: "the `next` of an earlier page of this list",
          got: "a token it did not give",
        },
      ],
    });
    const long = await w.app.request(`/console?next=${"x".repeat(1025)}`);
    expect(long.status).toBe(400);
    const body = (await long.json()) as { issues: Array<{ message: string }> };
    expect(body).toMatchObject({ code: "InvalidQuery", issues: [{ path: "next" }] });
    expect(body.issues[0]?.message).toMatch(/^next: expected .+, got .+/);
  });
});

describe("the console's status filter", () => {
  /** Five jobs whose executions all ended FAILED, each with another final status; one that runs. */
  async function endedJobs() {
    const w = consoleWorld();
    for (const status of ["FAILED", "PREEMPTED", "ERROR", "CANCELLED"] as const) {
      const jobId = `job-${status.toLowerCase()}`;
      w.sfn.add(jobId, { status: "FAILED" });
      const error = { name: "E", message: status };
      await w.store.put(keys.status(jobId), JSON.stringify({ status, jobId, error }));
    }
    w.sfn.add("job-timed-out", { status: "TIMED_OUT" });
    w.sfn.add("job-running");
    return w;
  }

  it("offers every status the column shows: the jobs' own, then their executions'", async () => {
    const w = consoleWorld();
    const html = await (await w.app.request("/console")).text();
    const offered = [...html.matchAll(/<option value="([A-Z_]*)"/g)].map((m) => m[1]);
    expect(offered).toEqual(["", ...LIST_STATUSES]);
    for (const s of [...JOB_STATUSES, ...EXECUTION_STATUSES, "PENDING"]) expect(offered).toContain(s);
  });

  it("filters on the job's status as shown, not its execution's", async () => {
    const w = await endedJobs();
    expect(await rows(w.app, "?status=FAILED")).toEqual([["job-failed", "FAILED"]]);
    expect(await rows(w.app, "?status=PREEMPTED")).toEqual([["job-preempted", "PREEMPTED"]]);
    expect(await rows(w.app, "?status=ERROR")).toEqual([["job-error", "ERROR"]]);
    expect(await rows(w.app, "?status=CANCELLED")).toEqual([["job-cancelled", "CANCELLED"]]);
    expect(await rows(w.app, "?status=TIMED_OUT")).toEqual([["job-timed-out", "TIMED_OUT"]]);
    expect(await rows(w.app, "?status=RUNNING")).toEqual([["job-running", "RUNNING"]]);
    expect(await rows(w.app, "?status=RUNNING&q=preempted")).toEqual([]);
    expect(await rows(w.app, "?status=")).toHaveLength(6);
    const html = await (await w.app.request("/console?status=PREEMPTED")).text();
    expect(html).toContain('<option value="PREEMPTED" selected>');
  });
});

describe("the console's job page", () => {
  it("reads job train-c0000040's history from its one execution", async () => {
    const w = consoleWorld();
    const arn = w.sfn.add("train-c0000040", { input: JSON.stringify({ name: "train" }) });
    await attemptStore(w.store).setCurrent("train-c0000040", {
      attempt: 1,
      executionArn: arn,
      state: "running",
      updatedAt: 0,
    });
    const res = await w.app.request("/console/jobs/train-c0000040");
    expect(res.status).toBe(200);
    expect(w.sfn.historyCalls).toEqual([arn]);
  });
});

describe("the job page's JSON link, with a token set", () => {
  it("answers 200 with the console's cookie and 401 without", async () => {
    const w = consoleWorld({ token: "s3cret-token" });
    w.sfn.add("train-1", { input: JSON.stringify({ name: "train" }) });
    const login = await w.app.request("/console?token=s3cret-token");
    expect(login.status).toBe(200);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    expect(cookie).toBe("gangway_console=s3cret-token");
    const page = await w.app.request("/console/jobs/train-1", { headers: { cookie } });
    expect(page.status).toBe(200);
    const link = linkOf(await page.text(), "job-json");
    expect(link).toBe("/console/jobs/train-1/json");
    const json = await w.app.request(link ?? "", { headers: { cookie, accept: "text/html" } });
    expect(json.status).toBe(200);
    expect(json.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await json.json()).toMatchObject({ jobId: "train-1", status: "RUNNING" });
    expect((await w.app.request(link ?? "")).status).toBe(401);
    expect((await w.app.request(link ?? "", { headers: { cookie: "gangway_console=wrong" } })).status).toBe(
      401,
    );
  });

  it("answers JSON errors: 404 for no such job, 400 for a malformed id", async () => {
    const w = consoleWorld();
    const missing = await w.app.request("/console/jobs/nope/json", { headers: { accept: "text/html" } });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "JobNotFound" });
    const bad = await w.app.request(`/console/jobs/${"x".repeat(81)}/json`, {
      headers: { accept: "text/html" },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "InvalidJobId", issues: [{ path: "id" }] });
  });
});

describe("the console's errors", () => {
  it("answers a bad filter 400 {code, message, issues}, as a page to a browser", async () => {
    const w = consoleWorld();
    const res = await w.app.request("/console?status=bogus");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "InvalidQuery", issues: [{ path: "status" }] });
    const page = await w.app.request("/console?status=bogus", { headers: { accept: "text/html" } });
    expect(page.status).toBe(400);
    expect(await page.text()).toContain('data-code="InvalidQuery"');
    expect((await w.app.request(`/console/jobs/${"x".repeat(81)}`)).status).toBe(400);
  });

  it("answers a failure of ours 500 {code, message, issues}", async () => {
    const w = consoleWorld();
    w.sfn.api.list = async () => {
      throw new TypeError("cannot read properties of undefined");
    };
    const res = await w.app.request("/console");
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ code: "InternalError", issues: [] });
    expect(w.logged.join("\n")).toContain("cannot read properties of undefined");
  });
});
