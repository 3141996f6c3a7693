import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ApiUnreachable, apiTransport, GangwayApiError } from "../../../cli/client/transport.js";
import { resolveConnection } from "../../../cli/connection.js";

/** A fetch that records each request and answers with `status` and `body`. */
function recordingFetch(status: number, body: unknown) {
  const seen: Array<{ url: string; method: string; headers: Record<string, string>; body?: string }> = [];
  const fetchImpl = (async (url: string, init: RequestInit) => {
    seen.push({
      url,
      method: String(init.method),
      headers: { ...(init.headers as Record<string, string>) },
      ...(init.body === undefined ? {} : { body: String(init.body) }),
    });
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  }) as unknown as typeof fetch;
  return { seen, fetchImpl };
}

describe("the CLI's connection to an API", () => {
  it("takes flags first, then the environment, then gangway up's ready file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gangway-conn-"));
    try {
      await writeFile(
        join(dir, "ready.json"),
        JSON.stringify({ api: "http://up", webhookSecret: "from-up" }),
      );
      const env = { GANGWAY_API_TOKEN: "env-token" };
      expect(await resolveConnection({ "state-dir": dir }, env, "/")).toEqual({
        api: "http://up",
        webhookSecret: "from-up",
        apiToken: "env-token",
        unreachableHint: `is \`gangway up\` running (state dir ${dir})?`,
      });
      expect(
        await resolveConnection(
          { api: "http://flag", "api-token": "flag-token", "state-dir": dir },
          env,
          "/",
        ),
      ).toEqual({
        api: "http://flag",
        apiToken: "flag-token",
        // The local stack's secret is not another API's: not sent there.
        webhookSecret: undefined,
        unreachableHint: "is it running, and is --api right?",
      });
      expect(
        await resolveConnection({ "state-dir": dir }, { GANGWAY_API: "https://env" }, "/"),
      ).toMatchObject({ api: "https://env", unreachableHint: "is it running, and is GANGWAY_API right?" });
      await expect(resolveConnection({ "state-dir": join(dir, "none") }, {}, "/")).rejects.toThrow(
        /no API to talk to/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("sends the API token on every call and signs submissions; reads refusals as {code, message, issues}", async () => {
    const ok = recordingFetch(200, { jobs: [] });
    const api = apiTransport({
      api: "http://api/",
      apiToken: "t0k",
      webhookSecret: "s3cret",
      fetch: ok.fetchImpl,
    });
    await api.request("GET", "/v1/jobs");
    await api.request("POST", "/v1/jobs", { name: "x" });
    expect(ok.seen.map((r) => [r.method, r.url, r.headers.authorization])).toEqual([
      ["GET", "http://api/v1/jobs", "Bearer t0k"],
      ["POST", "http://api/v1/jobs", "Bearer t0k"],
    ]);
    expect(ok.seen[1]?.headers["x-gangway-signature"]).toMatch(/\S/);
    expect(ok.seen[0]?.headers["x-gangway-signature"]).toBeUndefined();

    const none = recordingFetch(200, {});
    await apiTransport({ api: "http://api", fetch: none.fetchImpl }).request("GET", "/v1/jobs");
    expect(none.seen[0]?.headers.authorization).toBeUndefined();

    const refused = recordingFetch(401, { code: "Unauthorized", message: "a bearer token is needed" });
    const err = await apiTransport({ api: "http://api", fetch: refused.fetchImpl })
      .request("GET", "/v1/jobs/x")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GangwayApiError);
    expect(err).toMatchObject({ status: 401, code: "Unauthorized", message: "a bearer token is needed" });
  });

  it("says an API that does not answer is unreachable, with the cause's code; an abort stays an abort", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" });
    const failing = (async () => {
      throw new TypeError("fetch failed", { cause: refused });
    }) as unknown as typeof fetch;
    const err = await apiTransport({
      api: "http://127.0.0.1:9/",
      unreachableHint: "is it up?",
      fetch: failing,
    })
      .request("GET", "/v1/jobs")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect(err).toMatchObject({
      code: "ECONNREFUSED",
      message: "cannot reach the API at http://127.0.0.1:9 (ECONNREFUSED) — is it up?",
    });
    expect((err as Error).cause).toBeInstanceOf(TypeError);

    const aborted = (async () => {
      throw new DOMException("This operation was aborted", "AbortError");
    }) as unknown as typeof fetch;
    const abort = await apiTransport({ api: "http://api", fetch: aborted })
      .request("GET", "/v1/jobs")
      .catch((e: unknown) => e);
    expect(abort).toMatchObject({ name: "AbortError" });
  });
});
