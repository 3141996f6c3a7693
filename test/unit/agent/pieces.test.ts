import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseRequest, RunSchema } from "../../../functions/clients/agent/messages.js";
import { createTokenCheck } from "../../../infra/agent/auth.js";
import { defaultWorkDir } from "../../../infra/agent/cli-support.js";
import { createJsonLinesEventSink, HOST_EVENTS_TOPIC, type HostEvent } from "../../../infra/agent/events.js";
import { OutputTail } from "../../../infra/agent/output-tail.js";
import { clearRunFile, readErrorFile, readResultFile } from "../../../infra/agent/run-files.js";
import { findHolders } from "../../../infra/agent/vfio.js";

let dir: string;
/** FIFOs a test made: a reader stuck opening one (the bug) is freed by opening its write end. */
let fifos: string[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-agent-pieces-"));
});
afterEach(() => {
  for (const f of fifos) {
    try {
      closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: no reader waiting, as it should be
    }
  }
  fifos = [];
  rmSync(dir, { recursive: true, force: true });
});

const mkfifo = (path: string) => {
  execFileSync("mkfifo", [path]);
  fifos.push(path);
};

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
  it("reports a directory at the result or error path as invalid, never throws", async () => {
    const r = join(dir, "result.json");
    const e = join(dir, "error.json");
    mkdirSync(r);
    mkdirSync(e);
    // A limit above a directory's st_size, as the agent's are: the old read got as far as EISDIR.
    const result = await readResultFile(r, 1 << 20);
    expect(result).toMatchObject({ kind: "invalid", error: { name: "InvalidResult" } });
    expect(result.kind === "invalid" && result.error.message).toContain(
      `${r} is not a readable regular file: a directory`,
    );
    const error = await readErrorFile(e, 1 << 20);
    expect(error).toMatchObject({ name: "InvalidErrorFile", details: { path: e, found: "a directory" } });
  });
  it("reports a FIFO at the result or error path as invalid, without waiting for a writer", async () => {
    const r = join(dir, "result.json");
    const e = join(dir, "error.json");
    mkfifo(r);
    mkfifo(e);
    // Without O_NONBLOCK these opens wait for a writer that never comes (the test times out).
    const [result, error] = await Promise.all([readResultFile(r, 100), readErrorFile(e, 100)]);
    expect(result).toMatchObject({ kind: "invalid", error: { name: "InvalidResult" } });
    expect(result.kind === "invalid" && result.error.message).toContain(
      `${r} is not a readable regular file: a FIFO`,
    );
    expect(error).toMatchObject({ name: "InvalidErrorFile", details: { path: e, found: "a FIFO" } });
  });
  it("does not follow a symlink at the result path", async () => {
    const target = join(dir, "elsewhere.json");
    writeFileSync(target, '{"secret":1}');
    const r = join(dir, "result.json");
    symlinkSync(target, r);
    expect(await readResultFile(r, 100)).toMatchObject({
      kind: "invalid",
      error: { name: "InvalidResult", details: { found: "a symbolic link" } },
    });
  });
  it("clears whatever a previous run left at a run file's path", async () => {
    const file = join(dir, "file.json");
    writeFileSync(file, "{}");
    const tree = join(dir, "tree.json");
    mkdirSync(join(tree, "a", "b"), { recursive: true });
    writeFileSync(join(tree, "a", "b", "c"), "x");
    const fifo = join(dir, "fifo.json");
    mkfifo(fifo);
    const target = join(dir, "kept");
    writeFileSync(target, "kept");
    const link = join(dir, "link.json");
    symlinkSync(target, link);
    await Promise.all([file, tree, fifo, link, join(dir, "absent.json")].map(clearRunFile));
    for (const p of [file, tree, fifo, link]) expect(existsSync(p)).toBe(false);
    // A symlink goes, never what it points to.
    expect(readFileSync(target, "utf8")).toBe("kept");
    // A later run's file can be written and read there again.
    writeFileSync(tree, '{"ok":true}');
    expect(await readResultFile(tree, 100)).toMatchObject({ kind: "ok" });
  });
});

describe("JSON-lines event sink", () => {
  const event = (eventId: string) => ({ kind: "heartbeat", eventId }) as unknown as HostEvent;
  it("answers each publish with its own append: one failure does not fail the later ones", async () => {
    const sub = join(dir, "later");
    const file = join(sub, "events.jsonl");
    const sink = createJsonLinesEventSink(file);
    await expect(sink.publish(HOST_EVENTS_TOPIC, event("lost"))).rejects.toMatchObject({ code: "ENOENT" });
    mkdirSync(sub);
    await sink.publish(HOST_EVENTS_TOPIC, event("kept"));
    await sink.publish(HOST_EVENTS_TOPIC, event("kept-too"));
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { topic: HOST_EVENTS_TOPIC, event: { kind: "heartbeat", eventId: "kept" } },
      { topic: HOST_EVENTS_TOPIC, event: { kind: "heartbeat", eventId: "kept-too" } },
    ]);
  });
});

describe("gangway agent's default work dir", () => {
  it("is one per listen address, so agents of one machine never share one", () => {
    expect(defaultWorkDir("127.0.0.1:8470", "/t")).toBe("/t/gangway-agent-127.0.0.1-8470");
    expect(defaultWorkDir("127.0.0.1:8471", "/t")).toBe("/t/gangway-agent-127.0.0.1-8471");
    expect(defaultWorkDir("10.0.0.2:8470", "/t")).toBe("/t/gangway-agent-10.0.0.2-8470");
    expect(defaultWorkDir("[::1]:8470", "/t")).toBe("/t/gangway-agent-__1-8470");
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
