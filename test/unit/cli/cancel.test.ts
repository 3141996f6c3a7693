import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../../cli/main.js";

// `gangway cancel --wait` answers 0 only when the job ended CANCELLED, as its help says.

/** An API whose job `j` accepts the cancel, then shows `statuses` one look after another (the last one stays). */
function stubApi(statuses: string[], onLook: () => void = () => {}) {
  let look = 0;
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const body = (code: number, value: unknown) =>
      new Response(JSON.stringify(value), { status: code, headers: { "content-type": "application/json" } });
    if (init.method === "DELETE") return body(202, { jobId: "j", cancelling: true });
    if (new URL(url).pathname === "/v1/jobs/j") {
      onLook();
      return body(200, { jobId: "j", status: statuses[Math.min(look++, statuses.length - 1)] });
    }
    return body(404, { code: "NotFound", message: url });
  });
}

async function cancel(argv: string[], signal = new AbortController().signal) {
  let stdout = "";
  let stderr = "";
  const code = await main(["cancel", "j", ...argv, "--api", "http://gangway.test"], {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    cwd: "/",
    env: {},
    signal,
  });
  return { code, stdout, stderr };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("gangway cancel", () => {
  it("answers 0 once the job ended CANCELLED", async () => {
    stubApi(["RUNNING", "CANCELLED"]);
    expect(await cancel(["--wait"])).toMatchObject({ code: 0, stdout: "j: CANCELLED\n" });
  });

  it("answers 0 without --wait: the cancel was accepted", async () => {
    stubApi(["RUNNING"]);
    expect(await cancel([])).toMatchObject({ code: 0, stdout: "j: CANCELLING\n" });
  });

  it("answers 1 when the job ended otherwise: the cancel came too late", async () => {
    stubApi(["RUNNING", "SUCCEEDED"]);
    const r = await cancel(["--wait", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ jobId: "j", status: "SUCCEEDED" });
    expect(r.stderr).toContain("ended SUCCEEDED, not CANCELLED");
  });

  it("answers 1 when the wait was interrupted", async () => {
    const controller = new AbortController();
    stubApi(["RUNNING"], () => controller.abort());
    const r = await cancel(["--wait"], controller.signal);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("interrupted");
  });
});
