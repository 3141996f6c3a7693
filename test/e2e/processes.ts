import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { DescribeExecutionCommand, type DescribeExecutionOutput, type SFNClient } from "@aws-sdk/client-sfn";
import { REPO } from "./harness.js";

// `gangway` commands as users run them — real processes that print one ready line — for the
// e2e tests that need the control plane and the hosts in processes of their own.

const started: ChildProcess[] = [];

/** SIGKILL every `gangway` process a test started and left running (for `afterAll`). */
export function killStartedGangways(): void {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

/** Start `gangway <args>`; resolves with the child, its first stdout line parsed, and its stderr so far. */
export function startGangway(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; line: Record<string, unknown>; stderr: () => string }> {
  const child = spawn(process.execPath, ["bin/gangway.mjs", ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in time; stderr: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", (line) => {
      clearTimeout(timer);
      try {
        resolve({ child, line: JSON.parse(line) as Record<string, unknown>, stderr: () => stderr });
      } catch (e) {
        reject(e);
      }
    });
    child.once("exit", (code) => reject(new Error(`gangway ${args[0]} exited ${code}: ${stderr}`)));
  });
}

/**
 * SIGINT (Ctrl-C) a started `gangway`; resolves with its exit code once it is gone. One that
 * has not stopped after `killAfterMs` gets SIGKILL (and resolves `null`), so no test hangs on it.
 */
export function stopGangway(child: ChildProcess, killAfterMs = 20_000): Promise<number | null> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
    const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      done(code);
    });
    child.kill("SIGINT");
  });
}

/** Poll an execution until it is no longer RUNNING (every 50 ms, up to `timeoutMs`). */
export async function untilEnded(
  sfn: SFNClient,
  executionArn: string | undefined,
  timeoutMs = 60_000,
): Promise<DescribeExecutionOutput> {
  if (!executionArn) throw new Error("no execution to wait for");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (d.status !== "RUNNING") return d;
    if (Date.now() > deadline) throw new Error(`timed out: ${executionArn} still RUNNING`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
