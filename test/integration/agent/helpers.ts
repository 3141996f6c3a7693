import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentClient, createAgentClient } from "../../../functions/clients/agent/client.js";
import { createJsonLinesEventSink, type EventTopic, type HostEvent } from "../../../infra/agent/events.js";
import { groupMembers, listProcesses, readProc } from "../../../infra/agent/process-group.js";
import {
  type AgentServerHandle,
  type AgentServerOptions,
  startAgentServer,
} from "../../../infra/agent/server.js";

export const TOKEN = "integration-token-0123456789";

/** A real agent on an ephemeral port of a loopback address, its client, and what it published. */
export interface TestAgent {
  server: AgentServerHandle;
  client: AgentClient;
  workDir: string;
  eventsFile: string;
  events(): Array<{ topic: EventTopic; event: HostEvent }>;
  waitForEvent(
    match: (e: { topic: EventTopic; event: HostEvent }) => boolean,
    timeoutMs?: number,
  ): Promise<HostEvent>;
  close(): Promise<void>;
}

export async function startTestAgent(overrides: Partial<AgentServerOptions> = {}): Promise<TestAgent> {
  const workDir = mkdtempSync(join(tmpdir(), "gangway-agent-it-"));
  const eventsFile = join(workDir, "events.jsonl");
  const server = await startAgentServer({
    listen: "127.0.1.1:0",
    token: TOKEN,
    workDir,
    lockfilePath: join(workDir, "libtpu_lockfile"),
    eventSink: createJsonLinesEventSink(eventsFile),
    graceMs: 2000,
    log: () => {},
    ...overrides,
  });
  const client = createAgentClient(server.address, { token: TOKEN });
  const events = () => {
    let text = "";
    try {
      text = readFileSync(eventsFile, "utf8");
    } catch {
      return [];
    }
    return text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { topic: EventTopic; event: HostEvent });
  };
  return {
    server,
    client,
    workDir,
    eventsFile,
    events,
    async waitForEvent(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = events().find(match);
        if (hit) return hit.event;
        if (Date.now() > deadline) throw new Error(`no matching event; saw ${JSON.stringify(events())}`);
        await sleep(20);
      }
    },
    async close() {
      client.close();
      await server.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns a value other than undefined (or fail after `timeoutMs`). */
export async function until<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(20);
  }
}

/** Pids among `pids` that /proc still shows alive (zombies count as gone). */
export function alive(pids: number[]): number[] {
  return pids.filter((pid) => {
    const p = readProc(pid);
    return p !== undefined && p.state !== "Z" && p.state !== "X";
  });
}

/** Live processes of the group led by `leader` (its group, its session, their descendants). */
export function liveGroup(leader: number): number[] {
  return groupMembers(leader, listProcesses());
}

/** Read pids a workload wrote, one per line, to `file`. */
export function pidsIn(file: string): number[] {
  try {
    return readFileSync(file, "utf8")
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

export const lease = (leaseId = "lease-a", epoch = 1, jobId = "job-a", ttlMs = 30_000) => ({
  leaseId,
  epoch,
  jobId,
  ttlMs,
});

export const runParams = (argv: string[], extra: Record<string, unknown> = {}) => ({
  leaseId: "lease-a",
  epoch: 1,
  jobId: "job-a",
  attempt: 1,
  sliceIndex: 0,
  sliceName: "v4-16-0",
  hostIndex: 0,
  argv,
  ...extra,
});

/**
 * Whether the agent published an `exited` event for runs its lease holder cancelled. Events go
 * out in order: once a later run's exit is seen, an earlier cancelled one would be too.
 */
export async function publishedCancelledExits(agent: TestAgent, epoch = 1): Promise<HostEvent[]> {
  const c = agent.client;
  await c.run(runParams(["true"], { attempt: 99, epoch }));
  await agent.waitForEvent((e) => e.event.kind === "exited" && e.event.attempt === 99);
  return agent
    .events()
    .map((e) => e.event)
    .filter((e) => e.kind === "exited" && e.cancelled);
}
