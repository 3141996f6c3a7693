import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { main } from "../../../cli/main.js";
import { gangwayInProcess } from "../../cli-in-process.js";

// What the CLI says when what it is pointed at is gone (a stale ready file, a stale cluster state
// file: the stack that wrote it was killed), and that `gangway up` is not undone by a shared
// state file it cannot write.

const REPO = new URL("../../../", import.meta.url).pathname;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gangway-unreachable-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A port on 127.0.0.1 that nothing listens on: an ephemeral one, taken and let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

const gangway = (...argv: string[]) => gangwayInProcess(argv, { cwd: dir, env: {} });

describe("an API that does not answer", () => {
  it("is named with its URL, the error's code and where the URL came from; exit 1", async () => {
    const api = `http://127.0.0.1:${await closedPort()}`;
    const stateDir = join(dir, ".gangway");
    await mkdir(stateDir);
    await writeFile(join(stateDir, "ready.json"), JSON.stringify({ ready: true, api, webhookSecret: "s" }));

    for (const argv of [["status"], ["status", "j"], ["logs", "j"], ["cancel", "j"], ["history", "j"]]) {
      const r = await gangway(...argv);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `gangway: ApiUnreachable: cannot reach the API at ${api} (ECONNREFUSED) — is \`gangway up\` running (state dir ${stateDir})?\n`,
      );
    }
    const job = join(dir, "job.yaml");
    await writeFile(job, "name: x\naccelerator: {kind: cpu}\nworkload: {command: [hostname]}\n");
    expect((await gangway("submit", job)).stderr).toContain(`cannot reach the API at ${api} (ECONNREFUSED)`);

    const flag = await gangway("status", "--api", `${api}/`);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain(
      `cannot reach the API at ${api} (ECONNREFUSED) — is it running, and is --api right?`,
    );
  });

  it("a malformed --api is bad usage", async () => {
    const r = await gangway("status", "--api", "127.0.0.1:8080");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--api: expected an http(s) URL for the API, got "127.0.0.1:8080"');
  });
});

describe("gangway preempt on a stale cluster state file", () => {
  it("names the admin URL, the error's code and the state file; exit 1", async () => {
    const admin = `http://127.0.0.1:${await closedPort()}`;
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "preempt-test-token-0123456789\n", { mode: 0o600 });
    const stateFile = join(dir, "cluster.json");
    await writeFile(stateFile, JSON.stringify({ admin, tokenFile, pid: 1 }));
    const r = await gangway("preempt", "v4-8-0", "--state-file", stateFile);
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: `gangway: preempt: cannot reach the cluster's admin API at ${admin} (ECONNREFUSED) — is \`gangway up\` or \`gangway cluster\` running (state file ${stateFile})?\n`,
    });
  });
});

describe("gangway sfn-local", () => {
  it("takes --port=N, and keeps its state apart from gangway up's", async () => {
    const controller = new AbortController();
    let stdout = "";
    const ended = main(["sfn-local", "--port=0"], {
      stdout: (t) => {
        stdout += t;
        controller.abort(); // ready: stop
      },
      stderr: () => {},
      cwd: dir,
      env: {},
      signal: controller.signal,
    });
    expect(await ended).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({
      ready: true,
      sfnEndpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    });
    expect(existsSync(join(dir, ".gangway-sfn"))).toBe(true);
    expect(existsSync(join(dir, ".gangway"))).toBe(false);
  });
});

describe("gangway up whose shared cluster state file cannot be written", () => {
  it("warns, naming the file and the error, and serves all the same", async () => {
    // The shared file is $TMPDIR/gangway-local-cluster.json: a directory there cannot be replaced.
    const tmp = join(dir, "tmp");
    await mkdir(join(tmp, "gangway-local-cluster.json"), { recursive: true });
    const child = spawn(
      process.execPath,
      ["bin/gangway.mjs", "up", "--cluster", "cpux1", "--state-dir", join(dir, "state")],
      { cwd: REPO, env: { ...process.env, TMPDIR: tmp }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
    await new Promise<void>((ready, fail) => {
      child.stdout.on("data", (d) => {
        stdout += d;
        if (stdout.includes("\n")) ready();
      });
      child.on("exit", () => fail(new Error(`gangway up exited before its ready line: ${stderr}`)));
    });
    expect(JSON.parse(stdout)).toMatchObject({ ready: true });
    expect(stderr).toContain(
      `gangway up: warning: could not write ${join(tmp, "gangway-local-cluster.json")} (`,
    );
    expect(stderr).toContain(`--state-file ${join(dir, "state", "cluster.json")}`);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});
