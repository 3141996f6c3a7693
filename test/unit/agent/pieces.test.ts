import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseRequest, RunSchema } from "../../../functions/clients/agent/messages.js";
import { createTokenCheck } from "../../../infra/agent/auth.js";
import { OutputTail } from "../../../infra/agent/output-tail.js";
import { readErrorFile, readResultFile } from "../../../infra/agent/run-files.js";
import { findHolders } from "../../../infra/agent/vfio.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-agent-pieces-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("OutputTail", () => {
  it("keeps the last bytes across chunk boundaries and counts them all", () => {
    const tail = new OutputTail(5);
    tail.push(Buffer.from("abc"));
    tail.push(Buffer.from("defg"));
    tail.push(Buffer.from("h"));
    expect(tail.read().toString()).toBe("defgh");
    expect(tail.read(2).toString()).toBe("gh");
    expect(tail.total).toBe(8);
    tail.push(Buffer.from("0123456789"));
    expect(tail.read().toString()).toBe("56789");
  });
});

describe("bearer token check", () => {
  const check = createTokenCheck("s3cret");
  const md = (...values: string[]) => {
    const m = new Metadata();
    for (const v of values) m.add("authorization", v);
    return m;
  };
  it("accepts exactly Bearer <token>", () => {
    expect(check(md("Bearer s3cret"))).toBe(true);
    expect(check(md("Bearer s3cre"))).toBe(false);
    expect(check(md("Bearer s3cret "))).toBe(false);
    expect(check(md("bearer s3cret"))).toBe(false);
    expect(check(md("s3cret"))).toBe(false);
    expect(check(md())).toBe(false);
    expect(check(md("Bearer s3cret", "Bearer s3cret"))).toBe(false);
  });
  it("refuses an empty token at construction", () => {
    expect(() => createTokenCheck("")).toThrow();
  });
});

describe("Run request parsing", () => {
  const valid = {
    leaseId: "l",
    epoch: 1,
    jobId: "j",
    attempt: 1,
    sliceIndex: 0,
    sliceName: "s",
    hostIndex: 0,
    argv: ["echo", "hi"],
    env: { A_1: "x" },
    cwd: "",
    graceMs: 0,
  };
  it("accepts a valid request and names every bad field", () => {
    expect(parseRequest(RunSchema, valid, "Run request").argv).toEqual(["echo", "hi"]);
    try {
      parseRequest(RunSchema, { ...valid, epoch: -1, env: { "1BAD": "x" }, hostIndex: 1.5 }, "Run request");
      expect.unreachable();
    } catch (e) {
      const error = e as { name: string; message: string };
      expect(error.name).toBe("InvalidAgentRequest");
      expect(error.message).toContain("epoch");
      expect(error.message).toContain("hostIndex");
      expect(error.message).toContain("env");
    }
  });
});

describe("run files", () => {
  it("reads a result, refuses a too large or non-JSON one, never truncates", async () => {
    const f = join(dir, "r.json");
    expect(await readResultFile(f, 100)).toEqual({ kind: "absent" });
    writeFileSync(f, '{"a":1}\n');
    expect(await readResultFile(f, 100)).toEqual({ kind: "ok", json: '{"a":1}', bytes: 8 });
    writeFileSync(f, "x".repeat(101));
    expect(await readResultFile(f, 100)).toMatchObject({
      kind: "too-large",
      bytes: 101,
      error: { name: "ResultTooLarge" },
    });
    writeFileSync(f, "{half");
    expect(await readResultFile(f, 100)).toMatchObject({ kind: "invalid", error: { name: "InvalidResult" } });
  });
  it("passes on a serialized error and flags anything else", async () => {
    const f = join(dir, "e.json");
    writeFileSync(
      f,
      JSON.stringify({ name: "OOM", message: "out of memory", cause: { name: "X", message: "y" } }),
    );
    expect(await readErrorFile(f, 1000)).toMatchObject({ name: "OOM", cause: { name: "X" } });
    writeFileSync(f, JSON.stringify({ message: "no name" }));
    expect(await readErrorFile(f, 1000)).toMatchObject({ name: "InvalidErrorFile" });
    writeFileSync(f, "not json");
    expect(await readErrorFile(f, 1000)).toMatchObject({ name: "InvalidErrorFile" });
  });
});

describe("device holders", () => {
  it("finds processes holding a file under a prefix open", async () => {
    const device = join(dir, "vfio", "0");
    rmSync(join(dir, "vfio"), { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "vfio")));
    writeFileSync(device, "");
    const holder = spawn("sh", ["-c", `exec 3<${device}; echo held; exec sleep 300`], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    await new Promise((r) => holder.stdout?.once("data", r));
    try {
      expect(findHolders(join(dir, "vfio"))).toEqual([holder.pid]);
      expect(findHolders(join(dir, "vfi"))).toEqual([]);
    } finally {
      holder.kill("SIGKILL");
      await new Promise((r) => holder.once("exit", r));
    }
  });
});
