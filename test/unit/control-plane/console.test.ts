import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { attemptStore } from "../../../functions/attempts.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { createConsoleApp } from "../../../functions/console/index.js";
import { addContinuedJob, fakeExecutions, SM } from "./api-fakes.js";

// The console's list and job pages: one row per job (a job id may itself end in -c<digits>),
// and every failure answered as {code, message, issues} (a page for a browser).

const definition = readFileSync(
  new URL("../../../statemachines/gangway-multislice.asl.json", import.meta.url),
  "utf8",
);

function consoleWorld() {
  const sfn = fakeExecutions();
  const store = createMemoryResultsStore();
  const logged: string[] = [];
  const app = createConsoleApp({
    executions: sfn.api,
    store,
    stateMachineArn: SM,
    definition,
    log: (line) => logged.push(line),
  });
  return { app, sfn, store, logged };
}

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
