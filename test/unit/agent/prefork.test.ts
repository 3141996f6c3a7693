import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Prefork, resolveExecutable } from "../../../infra/agent/prefork.js";

const supported = Prefork.supported();
const open: Prefork[] = [];
afterEach(() => {
  for (const p of open.splice(0)) p.close();
});

async function ready(p: Prefork): Promise<number> {
  for (let i = 0; i < 500; i++) {
    if (p.waitingPid !== undefined) return p.waitingPid;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no shell was forked");
}

/** Collect a child's stdout and its exit. */
function outcome(child: ChildProcess): Promise<{ out: string; code: number | null }> {
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString("utf8");
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ out, code })));
}

const alive = (pid: number) => {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
};

describe.skipIf(!supported)("Prefork: a shell forked ahead of time becomes the workload", () => {
  it("runs argv and env exactly, quotes, newlines and shell syntax included", async () => {
    const p = new Prefork(60_000);
    open.push(p);
    const pid = await ready(p);
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ODD: 'it\'s "quoted"\n$HOME; `x`', EMPTY: "" };
    const child = p.launch(["/usr/bin/env", "-0"], env, "/");
    expect(child?.pid).toBe(pid);
    const { out, code } = await outcome(child as ChildProcess);
    expect(code).toBe(0);
    const seen = Object.fromEntries(
      out
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    expect(seen).toEqual(env);

    const args = ["a'b", "c d", "$HOME", "x\ny", "", "-n"];
    const p2 = new Prefork(60_000);
    open.push(p2);
    await ready(p2);
    const printed = await outcome(p2.launch(["printf", "%s|", ...args], env, "/") as ChildProcess);
    expect(printed.out).toBe(`${args.join("|")}|`);
  });

  it("gives the workload exactly its env whatever the shell would add or could not export", async () => {
    const envOf = async (env: Record<string, string>, dir: string) => {
      const p = new Prefork(60_000);
      open.push(p);
      await ready(p);
      const { out, code } = await outcome(p.launch(["env", "-0"], env, dir) as ChildProcess);
      expect(code).toBe(0);
      return Object.fromEntries(
        out
          .split("\0")
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
    };
    // No PATH: found where execvp looks (/bin:/usr/bin), and no PATH, PWD or OLDPWD handed on.
    expect(await envOf({ A: "1" }, "/tmp")).toEqual({ A: "1" });
    expect(await envOf({}, "/tmp")).toEqual({});
    // Names a shell cannot export, and the shell's own PWD given by the job.
    const odd = { "dotted.name": "x", "dashed-name": "y", PATH: "/usr/bin:/bin", PWD: "/given" };
    expect(await envOf(odd, "/tmp")).toEqual(odd);
    expect(await envOf({ PWD: "/given", OLDPWD: "/old" }, "/tmp")).toEqual({ PWD: "/given", OLDPWD: "/old" });
  });

  it("runs in the given directory, as the leader of its own session, stdin closed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "prefork-"));
    try {
      const p = new Prefork(60_000);
      open.push(p);
      await ready(p);
      const child = p.launch(
        ["sh", "-c", 'pwd; cut -d" " -f6 /proc/$$/stat; cat; echo end'],
        { PATH: "/usr/bin:/bin" },
        dir,
      ) as ChildProcess;
      const { out, code } = await outcome(child);
      expect(code).toBe(0);
      expect(out.split("\n")).toEqual([dir, String(child.pid), "end", ""]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a missing command or directory as spawn would (ENOENT), and keeps its shell", async () => {
    const p = new Prefork(60_000);
    open.push(p);
    const pid = await ready(p);
    expect(() => p.launch(["no-such-command-xyz"], { PATH: "/usr/bin:/bin" }, "/")).toThrow(
      expect.objectContaining({ code: "ENOENT" }),
    );
    expect(() => p.launch(["true"], { PATH: "/usr/bin:/bin" }, "/no/such/dir")).toThrow(/no directory/);
    expect(p.waitingPid).toBe(pid);
    // What env(1) would misread is left to a plain spawn.
    expect(p.launch(["A=b"], {}, "/")).toBeUndefined();
    expect(p.waitingPid).toBe(pid);
  });

  it("forks the next shell after use, and close() leaves no shell behind", async () => {
    const p = new Prefork(0);
    open.push(p);
    const first = await ready(p);
    const child = p.launch(["true"], { PATH: "/usr/bin:/bin" }, "/") as ChildProcess;
    await outcome(child);
    const second = await ready(p);
    expect(second).not.toBe(first);
    expect(alive(second)).toBe(true);
    p.close();
    for (let i = 0; i < 200 && alive(second); i++) await new Promise((r) => setTimeout(r, 10));
    expect(alive(second)).toBe(false);
    expect(p.launch(["true"], {}, "/")).toBeUndefined();
  });

  it("resolves commands as execvp does", () => {
    expect(resolveExecutable("sh", { PATH: "/nonexistent:/bin" }, "/")).toBe("/bin/sh");
    expect(resolveExecutable("sh", { PATH: "/nonexistent" }, "/")).toBeUndefined();
    expect(resolveExecutable("./sh", {}, "/bin")).toBe("/bin/sh");
    const dir = mkdtempSync(join(tmpdir(), "prefork-"));
    try {
      writeFileSync(join(dir, "plain"), "not a program", { mode: 0o644 });
      expect(resolveExecutable("plain", { PATH: dir }, "/")).toBeUndefined();
      expect(resolveExecutable(dir, {}, "/")).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
