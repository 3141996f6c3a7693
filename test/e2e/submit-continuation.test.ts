import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runJob } from "../../cli/client/index.js";
import type { JobSpecInput } from "../../core/job-spec.js";
import { behaveJob, cliAgainst, startTestStack } from "./harness.js";

// A job that continues as a new execution (the history budget lowered so that it does after
// two attempts), followed to its end by `gangway submit --wait` and by the TypeScript client.

let t: Awaited<ReturnType<typeof startTestStack>>;
let dir: string;
beforeAll(async () => {
  t = await startTestStack("v4-8x1", { historyBudget: 60 });
  dir = await mkdtemp(join(tmpdir(), "gangway-submit-long-"));
});
afterAll(async () => {
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Three attempts end with an exit code that asks to be recovered; the fourth succeeds.
const spec = (name: string) =>
  behaveJob(
    name,
    { kind: "tpu", type: "v4-8", slices: 1 },
    ["--fail-until-attempt", "4", "--exit-code", "75"],
    { retry: { maxPreemptions: 5, maxFailures: 0, retryOnExitCodes: [75] } },
  );

const gangway = (...argv: string[]) => cliAgainst(t.stack, argv);

/**
 * Make the CLI's first look at the job's history that reaches past its first execution's end
 * stop right there — a look landing between the two executions, as a 250 ms poll may — so
 * that it is no longer a matter of luck. The API itself is untouched: only this process's
 * `fetch` of `/v1/jobs/<id>/history` answers once with the events cut there.
 */
function cutHistoryOnceAtFirstEnd() {
  const realFetch = globalThis.fetch;
  let cut = false;
  vi.stubGlobal("fetch", async (input: string | URL | Request, init?: RequestInit) => {
    const res = await realFetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (cut || !/^\/v1\/jobs\/[^/]+\/history$/.test(url.pathname) || !res.ok) return res;
    const body = (await res.json()) as { events: HistoryEvent[] };
    const end = body.events.findIndex((e) => e.type === "ExecutionSucceeded");
    if (end >= 0 && end < body.events.length - 1) {
      cut = true;
      body.events = body.events.slice(0, end + 1);
    }
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  });
  return () => cut;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("a job that continues in a new execution", () => {
  it("is followed by gangway submit --wait to its end, past the first execution's end", async () => {
    const file = join(dir, "long.json");
    await writeFile(file, JSON.stringify(spec("submit-long")));
    const wasCut = cutHistoryOnceAtFirstEnd();
    const sub = await gangway("submit", file, "--wait", "--json");
    expect(wasCut()).toBe(true);
    expect(sub.stderr).toBe("");
    expect(sub.code).toBe(0);
    expect(JSON.parse(sub.stdout)).toMatchObject({
      status: "SUCCEEDED",
      counters: { attempts: 4, preemptions: 3, failures: 0 },
      result: [{ attempt: 4 }],
    });
  });

  it("shows the continuation among submit --wait's progress lines", async () => {
    const file = join(dir, "long-lines.json");
    await writeFile(file, JSON.stringify(spec("submit-lines")));
    const sub = await gangway("submit", file, "--wait");
    expect(sub.code).toBe(0);
    expect(sub.stdout).toMatch(/continued in a new execution \(history limit\): \S+-c2\n/);
    expect(sub.stdout).toContain("attempt 4: leased");
    expect(sub.stdout).toContain("SUCCEEDED after 4 attempt(s)");
  });

  it.each([
    ["the API", () => ({ api: t.stack.api, webhookSecret: t.stack.webhookSecret })],
    [
      "the SFN client",
      () => ({ sfnEndpoint: t.stack.sfnEndpoint, stateMachineArn: t.stack.stateMachineArn }),
    ],
  ])("reports every execution's events to the client's onEvent, through %s", async (_, connection) => {
    const events: HistoryEvent[] = [];
    const status = await runJob(spec("client-long") as unknown as JobSpecInput, {
      connection: connection(),
      onEvent: (e) => events.push(e),
    });
    expect(status).toMatchObject({ status: "SUCCEEDED", counters: { attempts: 4 } });
    expect(events.filter((e) => e.type === "ExecutionStarted")).toHaveLength(2);
    // The continuation's attempts are reported, not only the first execution's.
    const attempts = events.flatMap((e) =>
      e.stateExitedEventDetails?.name === "ScaleSlices"
        ? [(JSON.parse(e.stateExitedEventDetails.output ?? "{}") as { attempt?: number }).attempt]
        : [],
    );
    expect(attempts).toContain(4);
  });
});
