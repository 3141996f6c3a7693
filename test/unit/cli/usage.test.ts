import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gangwayInProcess } from "../../cli-in-process.js";

// Bad option values are bad usage (exit 2, the flag, what was expected and what was given),
// said before anything is started or asked.

const repo = new URL("../../../", import.meta.url).pathname;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gangway-usage-"));
});
afterEach(async () => {
  vi.unstubAllGlobals();
  await rm(dir, { recursive: true, force: true });
});

const gangway = (...argv: string[]) => gangwayInProcess(argv, { cwd: repo, env: {} });

/** An API whose every call is recorded and answered `body` (200). */
function stubApi(body: unknown) {
  const urls: string[] = [];
  vi.stubGlobal("fetch", async (url: string) => {
    urls.push(url);
    return new Response(JSON.stringify(body), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  });
  return urls;
}

describe("gangway up and run check their options before starting anything", () => {
  it("refuses a cluster spec that does not parse, naming --cluster", async () => {
    const state = join(dir, "state");
    const up = await gangway("up", "--cluster", "foo", "--state-dir", state);
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(/^gangway: --cluster: cluster entry "foo": /);
    expect(up.stdout).toBe("");
    expect(existsSync(state)).toBe(false); // no stack was started there

    const run = await gangway("run", "examples/cpu-hosts/job.yaml", "--cluster", "v4-16x0");
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      '--cluster: cluster entry "v4-16x0": expected a count from 1 to 4096, got 0',
    );
    expect(run.stdout).toBe("");
  }, 30_000); // the first import of the stack's modules takes seconds on a busy machine

  it("takes --provisioning-delay-ms, and --provisioning-delay as its old name, not both", async () => {
    const state = join(dir, "state");
    for (const [flag, value] of [
      ["--provisioning-delay-ms", "-1"],
      ["--provisioning-delay-ms", "1.5"],
      ["--provisioning-delay", "soon"],
    ] as const) {
      const r = await gangway("up", "--state-dir", state, `${flag}=${value}`);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${flag}: expected a whole number of milliseconds ≥ 0, got "${value}"`);
    }
    const both = await gangway("up", "--provisioning-delay-ms", "5", "--provisioning-delay", "5");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give one");
    expect(existsSync(state)).toBe(false);
  });

  it("refuses --cluster beside --inventory: the inventory's slices are its own", async () => {
    const r = await gangway("up", "--inventory", join(dir, "hosts.yaml"), "--cluster", "v4-8");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--cluster and --inventory: give one");
  });

  it("refuses an inventory that does not parse, naming --inventory, the file and the field", async () => {
    const file = join(dir, "hosts.yaml");
    await writeFile(
      file,
      'slices: [{name: a, type: v4-8, hosts: [{address: 10.0.0.1, workerId: 0, agent: "10.0.0.1"}]}]\n',
    );
    const state = join(dir, "state");
    const r = await gangway("up", "--inventory", file, "--state-dir", state);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--inventory: ${file}: slices[0].hosts[0].agent: expected host:port`);
    expect(existsSync(state)).toBe(false);
  });
});

describe("gangway status --limit and logs --max-bytes", () => {
  it("are whole numbers in the API's bounds, said before the API is asked", async () => {
    const urls = stubApi({ jobs: [] });
    for (const [argv, flag, got, max] of [
      [["status", "--limit", "0"], "--limit", "0", 1000],
      [["status", "--limit", "ten"], "--limit", "ten", 1000],
      [["status", "--limit", "1001"], "--limit", "1001", 1000],
      [["logs", "j", "--max-bytes", "0"], "--max-bytes", "0", 1048576],
      [["logs", "j", "--max-bytes", "1e3"], "--max-bytes", "1e3", 1048576],
    ] as const) {
      const r = await gangway(...argv, "--api", "http://gangway.test");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${flag}: expected a whole number from 1 to ${max}, got "${got}"`);
    }
    expect(urls).toEqual([]);
    expect((await gangway("status", "--limit", "5", "--api", "http://gangway.test")).code).toBe(0);
    expect(urls).toEqual(["http://gangway.test/v1/jobs?limit=5"]);
  });

  it("explains them in the help", async () => {
    expect((await gangway("status", "--help")).stdout).toMatch(
      /--limit N\s+without a job id: list at most N jobs/,
    );
    expect((await gangway("logs", "--help")).stdout).toMatch(/--max-bytes N\s+the last N bytes/);
  });
});

describe("gangway logs with a filter no host matches", () => {
  it("says so on stderr and answers 1", async () => {
    const urls = stubApi({ jobId: "j", attempt: 2, hosts: [] });
    const r = await gangway("logs", "j", "--slice", "nosuch", "--api", "http://gangway.test");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "gangway logs: no host of j's attempt 2 matches --slice nosuch\n",
    });
    expect(urls).toEqual(["http://gangway.test/v1/jobs/j/logs?slice=nosuch"]);
  });

  it("answers 0 without a filter: a job whose hosts are not placed yet has nothing to show", async () => {
    stubApi({ jobId: "j", attempt: 0, hosts: [] });
    const r = await gangway("logs", "j", "--api", "http://gangway.test");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("has no hosts yet");
  });
});

describe("gangway sfn-local", () => {
  it("parses its options as the other commands do", async () => {
    const bad = await gangway("sfn-local", "--port=abc");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--port: expected an integer 0-65535, got "abc"');
    const lambda = await gangway("sfn-local", "--lambda=nourl");
    expect(lambda.code).toBe(2);
    expect(lambda.stderr).toContain('--lambda: expected NAME=http(s)://…, got "nourl"');
    const unknown = await gangway("sfn-local", "--nosuch");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("usage: gangway sfn-local");
    expect((await gangway("sfn-local", "--help")).stdout).toContain("default .gangway-sfn");
  });
});
