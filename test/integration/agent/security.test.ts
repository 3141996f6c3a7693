import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentCallError, createAgentClient } from "../../../functions/clients/agent/client.js";
import { METHOD_PATH_PREFIX } from "../../../functions/clients/agent/proto.js";
import { lease, runParams, startTestAgent, type TestAgent, TOKEN } from "./helpers.js";

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (e: AgentCallError) => e.code,
  );

describe("agent security", () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await startTestAgent();
  });
  afterAll(async () => {
    await agent.close();
  });

  it("refuses calls without the right bearer token with UNAUTHENTICATED, and runs nothing", async () => {
    const wrong = createAgentClient(agent.server.address, { token: "not-the-token" });
    const prefix = createAgentClient(agent.server.address, { token: TOKEN.slice(0, -1) });
    for (const c of [wrong, prefix]) {
      expect(await codeOf(c.health())).toBe(grpc.status.UNAUTHENTICATED);
      expect(await codeOf(c.acquireLease(lease()))).toBe(grpc.status.UNAUTHENTICATED);
      expect(await codeOf(c.run(runParams(["touch", join(agent.workDir, "pwned")])))).toBe(
        grpc.status.UNAUTHENTICATED,
      );
      const watch = c.watch();
      await expect(
        (async () => {
          for await (const _ of watch) return "got a status";
          return "ended";
        })(),
      ).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      c.close();
    }
    // No metadata at all, and a token without the Bearer scheme.
    const raw = new grpc.Client(agent.server.address, grpc.credentials.createInsecure());
    const rawCall = (md: grpc.Metadata) =>
      new Promise<number>((resolve) => {
        raw.makeUnaryRequest(
          `${METHOD_PATH_PREFIX}Status`,
          () => Buffer.alloc(0),
          (b: Buffer) => b,
          {},
          md,
          (err) => resolve(err ? err.code : 0),
        );
      });
    expect(await rawCall(new grpc.Metadata())).toBe(grpc.status.UNAUTHENTICATED);
    const basic = new grpc.Metadata();
    basic.set("authorization", TOKEN);
    expect(await rawCall(basic)).toBe(grpc.status.UNAUTHENTICATED);
    raw.close();
    expect((await agent.client.status()).state).toBe("idle");
    expect(existsSync(join(agent.workDir, "pwned"))).toBe(false);
  });

  it("answers malformed requests with INVALID_ARGUMENT naming the field", async () => {
    const c = agent.client;
    const bad: Array<[string, unknown, string]> = [
      ["AcquireLease", { leaseId: "", jobId: "j", epoch: 1, ttlMs: 1000 }, "leaseId"],
      ["AcquireLease", { leaseId: "l", jobId: "j", epoch: 0, ttlMs: 1000 }, "epoch"],
      ["AcquireLease", { leaseId: "l", jobId: "j", epoch: 1, ttlMs: 1 }, "ttlMs"],
      ["RenewLease", { leaseId: "l".repeat(1000), epoch: 1, ttlMs: 1000 }, "leaseId"],
      ["Run", { ...runParams([]), env: {}, cwd: "", graceMs: 0 }, "argv"],
      ["Run", { ...runParams([""]), env: {}, cwd: "", graceMs: 0 }, "argv"],
      ["Run", { ...runParams(["echo", "a\0b"]), env: {}, cwd: "", graceMs: 0 }, "argv[1]"],
      ["Run", { ...runParams(["echo"]), env: { "A=B": "x" }, cwd: "", graceMs: 0 }, "env"],
      ["Run", { ...runParams(["echo"]), env: {}, cwd: "/tmp\0x", graceMs: 0 }, "cwd"],
      ["Run", { ...runParams(["echo"]), attempt: 0, env: {}, cwd: "", graceMs: 0 }, "attempt"],
      ["Cancel", { leaseId: "lease-a", epoch: 1, graceMs: 3_600_001 }, "graceMs"],
    ];
    await c.acquireLease(lease());
    for (const [method, request, field] of bad) {
      const error = (await c.call(method, request).then(
        () => undefined,
        (e: unknown) => e,
      )) as AgentCallError | undefined;
      expect(error?.code, `${method} ${JSON.stringify(request).slice(0, 80)}`).toBe(
        grpc.status.INVALID_ARGUMENT,
      );
      expect(error?.message).toContain(field);
      expect(error?.remote?.name).toBe("InvalidAgentRequest");
    }
    const status = await c.status();
    expect(status.state).toBe("leased");
    expect(status.run).toBeNull();
    await c.releaseLease({ leaseId: "lease-a", epoch: 1 });
  });

  it("survives undecodable bytes and oversized messages, and keeps serving", async () => {
    const raw = new grpc.Client(agent.server.address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    const send = (method: string, payload: Buffer) =>
      new Promise<number>((resolve) => {
        raw.makeUnaryRequest(
          `${METHOD_PATH_PREFIX}${method}`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          payload,
          md,
          (err) => resolve(err ? err.code : 0),
        );
      });
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x00, 0x01]);
    for (const method of ["Run", "AcquireLease", "Cancel", "NoSuchMethod"]) {
      expect(await send(method, garbage)).not.toBe(0);
    }
    // Random bytes at every method: whatever they decode to, nothing may crash or run. (A seeded
    // generator, so a failure can be replayed.)
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const methods = ["Health", "AcquireLease", "RenewLease", "ReleaseLease", "Run", "Cancel", "Status"];
    const answers = new Set<number>();
    for (let i = 0; i < 140; i++) {
      const bytes = Buffer.from(
        Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)),
      );
      answers.add(await send(methods[i % methods.length] ?? "Health", bytes));
    }
    expect(
      [...answers].every((code) =>
        [0, grpc.status.INVALID_ARGUMENT, grpc.status.INTERNAL, grpc.status.FAILED_PRECONDITION].includes(
          code,
        ),
      ),
    ).toBe(true);
    expect(await send("Run", Buffer.alloc(9 * 1024 * 1024, 0x0a))).toBe(grpc.status.RESOURCE_EXHAUSTED);
    raw.close();
    expect((await agent.client.health()).ok).toBe(true);
    expect(existsSync(join(agent.workDir, "runs"))).toBe(false);
  });
});

describe("agent under many watchers", () => {
  it("bounds open Watch streams and serves again once they close", async () => {
    const agent = await startTestAgent({ maxWatchStreams: 2 });
    try {
      // Leaving a for-await loop ends the stream; reading with next() keeps it open.
      const first = async (w: ReturnType<typeof agent.client.watch>) => {
        for await (const s of w) return s.state;
        return "ended";
      };
      const firstKeepOpen = async (w: ReturnType<typeof agent.client.watch>) =>
        (await w[Symbol.asyncIterator]().next()).value?.state;
      const a = agent.client.watch();
      const b = agent.client.watch();
      expect(await firstKeepOpen(a)).toBe("idle");
      expect(await firstKeepOpen(b)).toBe("idle");
      await expect(first(agent.client.watch())).rejects.toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
      });
      a.close();
      b.close();
      await expect
        .poll(async () => first(agent.client.watch()).catch((e: AgentCallError) => e.code))
        .toBe("idle");
    } finally {
      await agent.close();
    }
  });
});

describe("agent over TLS", () => {
  let dir: string;
  let agent: TestAgent;
  let cert: string;
  beforeAll(async () => {
    // A throwaway self-signed cert for 127.0.1.1, made now and deleted after: no key is ever committed.
    dir = mkdtempSync(join(tmpdir(), "gangway-tls-"));
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1"],
        ...["-subj", "/CN=gangway-agent", "-addext", "subjectAltName=IP:127.0.1.1"],
      ],
      { stdio: "ignore" },
    );
    cert = readFileSync(join(dir, "cert.pem"), "utf8");
    agent = await startTestAgent({ tls: { cert, key: readFileSync(join(dir, "key.pem")) } });
  });
  afterAll(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves TLS to a client that trusts the cert, and nothing in clear text", async () => {
    const tls = createAgentClient(agent.server.address, { token: TOKEN, tls: { ca: cert } });
    expect((await tls.health()).ok).toBe(true);
    tls.close();
    const clear = createAgentClient(agent.server.address, { token: TOKEN, deadlineMs: 30_000 });
    expect(await codeOf(clear.health())).toBe(grpc.status.UNAVAILABLE);
    clear.close();
  });
});
