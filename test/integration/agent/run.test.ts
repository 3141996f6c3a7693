import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { deserializeError } from "../../../core/serialized-error.js";
import type { AgentCallError } from "../../../functions/clients/agent/client.js";
import {
  lease,
  liveGroup,
  publishedCancelledExits,
  runParams,
  startTestAgent,
  type TestAgent,
  until,
} from "./helpers.js";

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
  delete process.env.MEGASCALE_NUM_SLICES;
  delete process.env.GANGWAY_KEEP_OUT;
});

const NODE = process.execPath;

describe("agent runs", () => {
  it("runs with the sent env, strips stale inherited contract variables, returns the result file", async () => {
    // Stale values in the agent's own environment must never reach a workload.
    process.env.MEGASCALE_NUM_SLICES = "7";
    process.env.GANGWAY_KEEP_OUT = "stale";
    agent = await startTestAgent({ baseEnv: undefined });
    const c = agent.client;
    await c.acquireLease(lease());
    writeFileSync(join(agent.workDir, "libtpu_lockfile"), "held");
    const script = `
      const fs = require("node:fs");
      fs.writeFileSync(process.env.GANGWAY_RESULT_FILE, JSON.stringify({
        job: process.env.GANGWAY_JOB_ID, slice: process.env.MEGASCALE_SLICE_ID,
        stale: process.env.MEGASCALE_NUM_SLICES ?? null, keepOut: process.env.GANGWAY_KEEP_OUT ?? null,
        path: typeof process.env.PATH, cwd: process.cwd(),
      }));
      console.log("hello from the workload");`;
    const reply = await c.run(
      runParams([NODE, "-e", script], { env: { GANGWAY_JOB_ID: "job-a", MEGASCALE_SLICE_ID: "0" } }),
    );
    expect(reply.started).toBe(true);
    expect(reply.resultFile).toContain("/runs/job-a/attempt-1/slice-0-host-0/result.json");
    const event = await agent.waitForEvent((e) => e.event.kind === "exited");
    expect(event).toMatchObject({
      exitCode: 0,
      signal: null,
      cancelled: false,
      jobId: "job-a",
      hostIndex: 0,
    });
    expect(event.result).toEqual({
      job: "job-a",
      slice: "0",
      stale: null,
      keepOut: null,
      path: "string",
      cwd: process.cwd(), // no cwd asked for: the agent's own
    });
    expect(existsSync(join(agent.workDir, "libtpu_lockfile"))).toBe(false);
    const status = await c.status();
    expect(status.state).toBe("exited");
    expect(status.run).toMatchObject({ exited: true, hasExitCode: true, exitCode: 0 });
    expect(JSON.parse(status.run?.resultJson ?? "null")).toMatchObject({ job: "job-a" });
    const out = await c.readOutput();
    expect(out.stdout.toString()).toBe("hello from the workload\n");
  });

  it("reports a failing workload's own serialized error and exit code", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `
      require("node:fs").writeFileSync(process.env.GANGWAY_ERROR_FILE, JSON.stringify({
        name: "ValueError", message: "bad batch", cause: { name: "KeyError", message: "x" } }));
      process.exit(3);`;
    await c.run(runParams([NODE, "-e", script]));
    const event = await agent.waitForEvent((e) => e.event.kind === "exited");
    expect(event.exitCode).toBe(3);
    expect(event.error).toMatchObject({
      name: "ValueError",
      message: "bad batch",
      cause: { name: "KeyError" },
    });
    expect(deserializeError(event.error ?? { name: "x", message: "" }).name).toBe("ValueError");
  });

  it("reports a result larger than the cap as too large, never truncated", async () => {
    agent = await startTestAgent({ resultLimitBytes: 1000 });
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `require("node:fs").writeFileSync(process.env.GANGWAY_RESULT_FILE, JSON.stringify("x".repeat(5000)))`;
    await c.run(runParams([NODE, "-e", script]));
    const event = await agent.waitForEvent((e) => e.event.kind === "exited");
    expect(event.result).toBeUndefined();
    expect(event.error).toMatchObject({ name: "ResultTooLarge", details: { bytes: 5002, limit: 1000 } });
    expect((await c.readResult()).present).toBe(false);
  });

  it("reports a directory or FIFO at the run files as invalid, and clears them for the next run", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    // Without care the first would crash the agent (EISDIR) and the second hang the run's end.
    await c.run(runParams(["sh", "-c", 'mkdir "$GANGWAY_RESULT_FILE" && mkfifo "$GANGWAY_ERROR_FILE"']));
    const first = await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.epoch === 1);
    expect(first.exitCode).toBe(0);
    // An exit 0 stands or falls by its result: the directory there is what the end reports.
    expect(first.error).toMatchObject({ name: "InvalidResult", details: { found: "a directory" } });
    expect((await c.status()).run).toMatchObject({ exited: true, resultJson: "" });
    // The same run again (an in-place restart: same job, attempt, slice and host, so the same
    // paths) finds them cleared and can write its files there.
    const script = `require("node:fs").writeFileSync(process.env.GANGWAY_RESULT_FILE, '{"ok":true}')`;
    await c.run(runParams([NODE, "-e", script], { leaseId: "lease-b", epoch: 2, takeOverTtlMs: 60_000 }));
    const second = await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.epoch === 2);
    expect(second).toMatchObject({ exitCode: 0, result: { ok: true } });
    expect(second.error).toBeUndefined();
  });

  it("sends a large result as a reference, readable whole with ReadResult", async () => {
    agent = await startTestAgent({ inlineResultBytes: 100 });
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `require("node:fs").writeFileSync(process.env.GANGWAY_RESULT_FILE, JSON.stringify({ big: "y".repeat(3000) }))`;
    await c.run(runParams([NODE, "-e", script]));
    const event = await agent.waitForEvent((e) => e.event.kind === "exited");
    expect(event.result).toBeUndefined();
    expect(event.resultRef).toEqual({ agent: agent.server.address, jobId: "job-a", attempt: 1, bytes: 3010 });
    const whole = await c.readResult({ jobId: "job-a", attempt: 1 });
    expect(JSON.parse(whole.resultJson)).toEqual({ big: "y".repeat(3000) });
    expect((await c.readResult({ jobId: "job-a", attempt: 2 })).present).toBe(false);
    // Another run took its place (the lease lapsed, another job came): the file still answers.
    await c.releaseLease({ leaseId: "lease-a", epoch: 1 });
    await c.acquireLease(lease("lease-b", 1, "job-b"));
    await c.run(runParams(["true"], { leaseId: "lease-b", jobId: "job-b" }));
    await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.jobId === "job-b");
    const again = await c.readResult({ jobId: "job-a", attempt: 1 });
    expect(again).toMatchObject({ present: true, resultBytes: 3010 });
    expect(JSON.parse(again.resultJson)).toEqual({ big: "y".repeat(3000) });
  });

  it("reports a workload that cannot start, and publishes its end", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const reply = await c.run(runParams(["/no/such/program-gangway"]));
    expect(reply.started).toBe(false);
    expect(JSON.parse(reply.errorJson)).toMatchObject({
      name: "WorkloadStartFailed",
      details: { code: "ENOENT" },
    });
    const event = await agent.waitForEvent((e) => e.event.kind === "exited");
    expect(event.error?.name).toBe("WorkloadStartFailed");
    expect((await c.status()).state).toBe("exited");
  });

  it("answers a repeated Run with the run already there, and replaces a run of another attempt", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const first = await c.run(runParams(["sleep", "300"]));
    const again = await c.run(runParams(["sleep", "300"]));
    expect(again).toMatchObject({ alreadyRunning: true, pid: first.pid });
    const next = await c.run(runParams(["sleep", "300"], { attempt: 2, graceMs: 300 }));
    expect(next.pid).not.toBe(first.pid);
    expect(liveGroup(first.pid)).toEqual([]);
    await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
    expect(liveGroup(next.pid)).toEqual([]);
    // Both ends were asked for by the lease holder: neither is published.
    expect(await publishedCancelledExits(agent)).toEqual([]);
  });

  it("restarts in place: a Run of a newer epoch takes over the job's kept lease in the same call", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    const first = await c.run(runParams(["sleep", "300"]));
    await c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 });
    // Without a takeover the old lease still rules: a newer epoch is refused.
    await expect(
      c.run(runParams(["sleep", "300"], { leaseId: "lease-b", epoch: 2, attempt: 2 })),
    ).rejects.toMatchObject({ code: 9 });
    // Another job may not take it over, whatever its epoch.
    await expect(
      c.run(
        runParams(["sleep", "300"], { leaseId: "other", jobId: "job-b", epoch: 5, takeOverTtlMs: 60_000 }),
      ),
    ).rejects.toMatchObject({ code: 9 });
    // Neither may the same job at the same or an older epoch under another lease id.
    await expect(
      c.run(runParams(["sleep", "300"], { leaseId: "lease-b", epoch: 1, takeOverTtlMs: 60_000 })),
    ).rejects.toMatchObject({ code: 9 });
    const next = await c.run(
      runParams(["sleep", "300"], { leaseId: "lease-b", epoch: 2, attempt: 2, takeOverTtlMs: 60_000 }),
    );
    expect(next.started).toBe(true);
    expect(next.pid).not.toBe(first.pid);
    const status = await c.status();
    expect(status.lease).toMatchObject({ leaseId: "lease-b", epoch: 2 });
    expect(status.run).toMatchObject({ attempt: 2, epoch: 2, exited: false });
    // The old lease is gone: its holder can no longer cancel.
    await expect(c.cancel({ leaseId: "lease-a", epoch: 1, graceMs: 300 })).rejects.toMatchObject({ code: 9 });
    // A retried call (a Lambda retry) finds the run already there.
    const again = await c.run(
      runParams(["sleep", "300"], { leaseId: "lease-b", epoch: 2, attempt: 2, takeOverTtlMs: 60_000 }),
    );
    expect(again).toMatchObject({ alreadyRunning: true, pid: next.pid });
    await c.releaseLease({ leaseId: "lease-b", epoch: 2, graceMs: 300 });
    expect(liveGroup(next.pid)).toEqual([]);
  });

  it("keeps bounded tails of stdout and stderr with their totals", async () => {
    agent = await startTestAgent({ tailBytes: 1024 });
    const c = agent.client;
    await c.acquireLease(lease());
    const script = `process.stdout.write("a".repeat(5000) + "END"); process.stderr.write("oops")`;
    await c.run(runParams([NODE, "-e", script]));
    await agent.waitForEvent((e) => e.event.kind === "exited");
    const out = await c.readOutput();
    expect(out.stdoutTotal).toBe(5003);
    expect(out.stdout.length).toBe(1024);
    expect(out.stdout.toString().endsWith("aEND")).toBe(true);
    expect(out.stderr.toString()).toBe("oops");
    expect((await c.readOutput(2)).stdout.toString()).toBe("ND");
  });

  it("hands a job's output only to that job: a host that moved on answers RunNotFound", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    await c.acquireLease(lease());
    await c.run(runParams(["sh", "-c", "echo from-a"]));
    await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.jobId === "job-a");
    expect((await c.readOutput(0, { jobId: "job-a", attempt: 1 })).stdout.toString()).toBe("from-a\n");
    await c.releaseLease({ leaseId: "lease-a", epoch: 1 });
    await c.acquireLease(lease("lease-b", 1, "job-b"));
    await c.run(runParams(["sh", "-c", "echo from-b"], { leaseId: "lease-b", jobId: "job-b", attempt: 3 }));
    await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.jobId === "job-b");
    const refused = (await c.readOutput(0, { jobId: "job-a" }).catch((e) => e)) as AgentCallError;
    expect(refused.code).toBe(5); // NOT_FOUND
    expect(refused.remote?.name).toBe("RunNotFound");
    expect(refused.message).not.toContain("job-b");
    const wrongAttempt = (await c
      .readOutput(0, { jobId: "job-b", attempt: 1 })
      .catch((e) => e)) as AgentCallError;
    expect(wrongAttempt.remote?.name).toBe("RunNotFound");
    expect((await c.readOutput(0, { jobId: "job-b", attempt: 3 })).stdout.toString()).toBe("from-b\n");
    // Without a job: whatever runs now, as before.
    expect((await c.readOutput()).stdout.toString()).toBe("from-b\n");
  });

  it("streams state changes to a watcher", async () => {
    agent = await startTestAgent();
    const c = agent.client;
    const watch = c.watch();
    const seen: string[] = [];
    const done = (async () => {
      for await (const s of watch) {
        seen.push(s.state);
        if (s.state === "exited") break;
      }
    })();
    await until(() => (seen.length > 0 ? true : undefined));
    await c.acquireLease(lease());
    await c.run(runParams(["true"]));
    await done;
    watch.close();
    expect(seen[0]).toBe("idle");
    expect(seen).toContain("leased");
    expect(seen).toContain("running");
    expect(seen.at(-1)).toBe("exited");
  });
});
