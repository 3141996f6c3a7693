import { describe, expect, it } from "vitest";
import { createJobsApi } from "../../../functions/api/jobs.js";
import { attemptStore } from "../../../functions/attempts.js";
import type { ExecutionDetail, ExecutionsApi } from "../../../functions/ports.js";
import { fakeWorld } from "./fakes.js";
import { continued, execution } from "./harness.js";

// A job past the history budget continues in a new execution: the old one ends SUCCEEDED
// ({continuedAs}) before the new one's Init runs. In between, the job must still look running.

const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";

/** Executions as the API sees them: the first has ended by continuing, the second not yet begun. */
function executionsOf(world: ReturnType<typeof fakeWorld>, oldOutput: unknown): ExecutionsApi {
  const all = new Map<string, ExecutionDetail>([
    [
      execution.Id,
      {
        executionArn: execution.Id,
        name: execution.Name,
        status: "SUCCEEDED",
        output: JSON.stringify(oldOutput),
      },
    ],
  ]);
  for (const s of world.started) {
    const executionArn = `${SM.replace(":stateMachine:", ":execution:")}:${s.name}`;
    all.set(executionArn, { executionArn, name: s.name, status: "RUNNING", input: s.input });
  }
  return {
    start: world.deps.executions.start,
    describe: async (arn) => all.get(arn),
    list: async () => ({ executions: [...all.values()] }),
    history: async () => [],
  };
}

/** The jobs API over `world`, its first execution ended with `oldOutput`. */
const apiOf = (world: ReturnType<typeof fakeWorld>, oldOutput: unknown) =>
  createJobsApi({
    executions: executionsOf(world, oldOutput),
    store: world.deps.store,
    tokens: world.deps.tokens,
    clock: world.deps.clock,
    stateMachineArn: SM,
  });

describe("a job continuing in a new execution", () => {
  it("is not done, and names the new execution once ContinueExecution returns", async () => {
    const world = fakeWorld();
    const attempts = attemptStore(world.deps.store);
    const { s, tornDown } = await continued(world);
    expect((await attempts.current("train-1"))?.state).toBe("scaling");
    const ended = await s.continue(tornDown);
    const next = (ended.final?.status as { continuedAs?: string } | undefined)?.continuedAs;
    expect(next).toMatch(/:train-1-c2$/);
    expect(await attempts.current("train-1")).toMatchObject({ executionArn: next, state: "scaling" });
  });

  it("is done when its continuation fails to start (the Catch's clean-up runs Teardown again)", async () => {
    const world = fakeWorld();
    const attempts = attemptStore(world.deps.store);
    const { s, tornDown } = await continued(world);
    const fault = { Error: "StartExecutionFailed", Cause: "throttled" };
    await s.teardown({ ...tornDown, fault });
    expect((await attempts.current("train-1"))?.state).toBe("done");
  });

  it("is left to its continuation when the step failed after starting it", async () => {
    const world = fakeWorld();
    const attempts = attemptStore(world.deps.store);
    const { s, tornDown } = await continued(world);
    const ended = await s.continue(tornDown);
    const next = (ended.final?.status as { continuedAs?: string } | undefined)?.continuedAs;
    await s.teardown({ ...tornDown, fault: { Error: "States.Timeout", Cause: "" } });
    expect(await attempts.current("train-1")).toMatchObject({ executionArn: next, state: "scaling" });
  });

  it("is reported running and can be cancelled between the old execution's end and the new one's Init", async () => {
    const world = fakeWorld();
    const { s, tornDown } = await continued(world);
    const ended = await s.continue(tornDown);
    const token = await attemptStore(world.deps.store).token("train-1", 1);
    if (token) world.staleTokens.add(token);
    const app = apiOf(world, ended.final?.status);
    const view = await app.request("/v1/jobs/train-1");
    expect(await view.json()).toMatchObject({
      status: "RUNNING",
      currentExecutionArn: expect.stringMatching(/:train-1-c2$/),
    });
    const status = await app.request("/v1/jobs/train-1/status");
    expect(status.status).toBe(202);
    expect(await status.json()).toMatchObject({ status: "RUNNING" });
    expect((await app.request("/v1/jobs/train-1", { method: "DELETE" })).status).toBe(202);

    // The cancel reaches the new execution: its first step after Init stops the job.
    const input = JSON.parse(world.started[0]?.input ?? "{}") as unknown;
    const resumed = await s.init({
      input,
      execution: { Id: `${SM.replace(":stateMachine:", ":execution:")}:train-1-c2`, Name: "train-1-c2" },
    });
    const refused = await s.scale(resumed).catch((e: Error) => e);
    expect(refused).toMatchObject({ name: "JobCancelled" });

    // Nothing of the new execution ran: its CANCELLED status counts only the attempts that did.
    const checked = await s.check({
      ...resumed,
      problem: {
        Error: "JobCancelled",
        Cause: JSON.stringify({ name: "JobCancelled", message: "cancelled" }),
      },
    });
    expect(checked.final?.status).toMatchObject({
      status: "CANCELLED",
      counters: { attempts: 1, preemptions: 1, failures: 0 },
    });
  });

  it("is followed through continuedAs where its record still names the old execution", async () => {
    const world = fakeWorld();
    const { s, tornDown } = await continued(world);
    const ended = await s.continue(tornDown);
    // A record written before records followed continuations.
    await attemptStore(world.deps.store).setCurrent("train-1", {
      attempt: 1,
      executionArn: execution.Id,
      state: "scaling",
      updatedAt: 0,
    });
    const app = apiOf(world, ended.final?.status);
    expect(await (await app.request("/v1/jobs/train-1")).json()).toMatchObject({ status: "RUNNING" });
  });

  it("keeps a record the new execution has taken further when ContinueExecution is retried", async () => {
    const world = fakeWorld();
    const attempts = attemptStore(world.deps.store);
    const { s, tornDown } = await continued(world);
    await s.continue(tornDown);
    const input = JSON.parse(world.started[0]?.input ?? "{}") as unknown;
    const nextExecution = {
      Id: `${SM.replace(":stateMachine:", ":execution:")}:train-1-c2`,
      Name: "train-1-c2",
    };
    await s.scale(await s.init({ input, execution: nextExecution }));
    const before = await attempts.current("train-1");
    expect(before).toMatchObject({ attempt: 2, executionArn: nextExecution.Id });
    await s.continue(tornDown);
    expect(await attempts.current("train-1")).toEqual(before);
  });
});
