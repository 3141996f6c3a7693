import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClusterAdmin, startClusterAdmin } from "../../../infra/local/cluster/admin-server.js";
import { createLocalProvider, type LocalProvider } from "../../../infra/local/cluster/local-provider.js";

const TOKEN = "admin-test-token";
let dir: string;
let provider: LocalProvider;
let admin: ClusterAdmin;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gangway-admin-it-"));
  provider = await createLocalProvider({
    spec: "v4-8x2",
    token: TOKEN,
    workDir: dir,
    provisioningDelayMs: 50,
  });
  admin = await startClusterAdmin(provider, { token: TOKEN });
});
afterAll(async () => {
  await admin.close();
  await provider.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, init: { method?: string; body?: string; token?: string | null } = {}) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? TOKEN}`;
  const res = await fetch(`${admin.url}${path}`, { method: init.method ?? "GET", headers, body: init.body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("local cluster admin API", () => {
  it("lists slices, requests and releases them", async () => {
    const listed = await call("/v1/slices");
    expect(listed.status).toBe(200);
    expect((listed.body.slices as Array<{ name: string }>).map((s) => s.name)).toEqual(["v4-8-0", "v4-8-1"]);
    const requested = await call("/v1/request", {
      method: "POST",
      body: JSON.stringify({ type: "v4-8", count: 1 }),
    });
    expect(requested.body).toMatchObject({ requested: 1 });
    await expect
      .poll(async () => ((await call("/v1/slices")).body.slices as unknown[]).length, { timeout: 10_000 })
      .toBe(3);
    const released = await call("/v1/release", {
      method: "POST",
      body: JSON.stringify({ names: ["v4-8-2"] }),
    });
    expect(released.body).toEqual({ released: ["v4-8-2"] });
  });

  it("refuses a missing or wrong token", async () => {
    expect((await call("/v1/slices", { token: null })).status).toBe(401);
    expect((await call("/v1/slices", { token: "nope" })).status).toBe(401);
    const preempt = await call("/v1/preempt", {
      method: "POST",
      token: "x",
      body: JSON.stringify({ slice: "v4-8-0" }),
    });
    expect(preempt.status).toBe(401);
    expect(provider.listSlices().map((s) => s.name)).toContain("v4-8-0");
  });

  it("answers malformed and hostile bodies with a clear 4xx and keeps serving", async () => {
    const notJson = await call("/v1/preempt", { method: "POST", body: "{nope" });
    expect(notJson).toMatchObject({ status: 400, body: { error: "body is not JSON" } });
    const wrongType = await call("/v1/request", {
      method: "POST",
      body: JSON.stringify({ type: "v4-8", count: "9" }),
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toContain("count: expected number");
    const extra = await call("/v1/preempt", {
      method: "POST",
      body: JSON.stringify({ slice: "v4-8-0", all: true }),
    });
    expect(extra.status).toBe(400);
    expect(extra.body.error).toContain("all");
    const unknownType = await call("/v1/request", {
      method: "POST",
      body: JSON.stringify({ type: "v9-1", count: 1 }),
    });
    expect(unknownType.status).toBe(400);
    const huge = await call("/v1/release", {
      method: "POST",
      body: JSON.stringify({ names: ["x".repeat(100_000)] }),
    });
    expect(huge.status).toBe(413);
    expect((await call("/v1/nothing")).status).toBe(404);
    expect((await call("/v1/preempt", { method: "DELETE" })).status).toBe(405);
    const unknown = await call("/v1/preempt", { method: "POST", body: JSON.stringify({ slice: "v4-8-9" }) });
    expect(unknown).toMatchObject({ status: 404, body: { name: "UnknownSlice" } });
    expect(provider.listSlices().map((s) => s.name)).toEqual(["v4-8-0", "v4-8-1"]);
    expect((await call("/v1/slices")).status).toBe(200);
  });
});
