import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

// Ctrl-C while a stack is up: the first stops what was started, the second is held off (killing
// the clean-up halfway would leave workloads running), the third ends the process whatever hangs.

const CHILD = fileURLToPath(new URL("./fixtures/held-stop.ts", import.meta.url));
let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  child = undefined;
});

/** Resolves once `stream` has written `text` (all it wrote so far is in `seen()`). */
function output(stream: NodeJS.ReadableStream) {
  let text = "";
  const waiting: Array<{ want: string; resolve: () => void }> = [];
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    text += chunk;
    for (const w of waiting.filter((w) => text.includes(w.want))) w.resolve();
  });
  return {
    seen: () => text,
    until: (want: string) =>
      new Promise<void>((resolve) => (text.includes(want) ? resolve() : waiting.push({ want, resolve }))),
  };
}

describe("repeated Ctrl-C while a stop hangs", () => {
  it("holds the second off with a word, and the third ends the process", async () => {
    const proc = spawn(process.execPath, ["--import", "tsx", CHILD], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      proc.on("exit", (code, signal) => resolve(signal ?? code)),
    );
    const stdout = output(proc.stdout);
    const stderr = output(proc.stderr);
    await stdout.until("ready");
    proc.kill("SIGINT");
    await stderr.until("stopping (for ever)");
    proc.kill("SIGINT");
    await stderr.until("again");
    expect(stderr.seen()).toContain("a third Ctrl-C ends gangway at once and may leave workloads running");
    expect(proc.exitCode).toBeNull();
    proc.kill("SIGINT");
    expect(await exited).toBe("SIGINT");
    expect(stderr.seen()).toContain("workloads may be left running");
  });
});
