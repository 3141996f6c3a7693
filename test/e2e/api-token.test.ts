import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.js";
import { signBody } from "../../functions/api/signature.js";
import { isLoopback, type LocalStack, startLocalStack } from "../../infra/local/stack.js";
import { processesOfJob, REPO } from "./harness.js";

// `gangway up --host` on an address a network reaches: submissions are signed as always, and the
// reads, cancels and console take a bearer token the stack makes and keeps in its state dir.

let stack: LocalStack;
let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "gangway-api-token-"));
  stack = await startLocalStack({ cluster: "v4-8x1", stateDir, host: "0.0.0.0", workloadCwd: REPO });
});
afterAll(async () => {
  await stack?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const bearer = () => ({ authorization: `Bearer ${stack.apiToken}` });

describe("the API served beyond this machine", () => {
  it("tells loopback addresses from others", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) expect(isLoopback(h)).toBe(true);
    for (const h of ["0.0.0.0", "10.0.0.1", "::", "128.0.0.1"]) expect(isLoopback(h)).toBe(false);
  });

  it("makes a token, prints it once and keeps it for the CLI", async () => {
    expect(stack.apiToken).toMatch(/^[0-9a-f]{48}$/);
    expect(stack.readyLine()).toMatchObject({ apiToken: stack.apiToken });
    const ready = JSON.parse(await readFile(join(stateDir, "ready.json"), "utf8"));
    expect(ready.apiToken).toBe(stack.apiToken);
    expect((await readFile(join(stateDir, "api-token"), "utf8")).trim()).toBe(stack.apiToken);
    // The engine takes no credentials: it stays on this machine.
    expect(new URL(stack.sfnEndpoint).hostname).toBe("127.0.0.1");
  });

  it("refuses reads, cancels and the console without it, and takes a signed submission", async () => {
    for (const [method, path] of [
      ["GET", "/v1/jobs"],
      ["GET", "/v1/jobs/x"],
      ["GET", "/v1/jobs/x/logs"],
      ["DELETE", "/v1/jobs/x"],
    ] as const) {
      const res = await fetch(`${stack.api}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(await res.json()).toMatchObject({ code: "Unauthorized" });
    }
    expect((await fetch(`${stack.api}/console`)).status).toBe(401);
    expect((await fetch(`${stack.api}/v1/jobs`, { headers: bearer() })).status).toBe(200);
    expect((await fetch(`${stack.api}/health`)).status).toBe(200);

    const body = JSON.stringify({
      name: "open",
      accelerator: { kind: "tpu", type: "v4-8", slices: 1 },
      workload: { command: ["sh", "-c", "echo hi"] },
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(`${stack.api}/v1/jobs`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        "x-gangway-timestamp": ts,
        "x-gangway-signature": signBody(stack.webhookSecret, ts, body),
      },
    });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    // The CLI beside the stack finds the API and its token in the state dir.
    let out = "";
    for (let i = 0; i < 200; i++) {
      out = "";
      const code = await main(["status", jobId, "--json", `--state-dir=${stateDir}`], {
        stdout: (s) => {
          out += s;
        },
        stderr: () => {},
        cwd: REPO,
        signal: new AbortController().signal,
      });
      expect(code).toBe(0);
      if (JSON.parse(out).status === "SUCCEEDED") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(JSON.parse(out)).toMatchObject({ jobId, status: "SUCCEEDED" });
    expect(await processesOfJob(jobId)).toEqual([]);
  });
});
