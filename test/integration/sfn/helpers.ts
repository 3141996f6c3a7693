import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { createSfnEngine, type SfnEngine, type SfnEngineOptions } from "../../../infra/local/sfn/engine.js";
import { type SfnServer, startSfnServer } from "../../../infra/local/sfn/server.js";

export const ROLE = "arn:aws:iam::123456789012:role/test";

/** An engine with its API server and an official client pointed at it. */
export interface TestSfn {
  engine: SfnEngine;
  server: SfnServer;
  client: SFNClient;
  stateDir: string;
  close(): Promise<void>;
}

export function sdkClient(endpoint: string): SFNClient {
  return new SFNClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
}

export async function startTestSfn(options: Omit<SfnEngineOptions, "stateDir"> = {}): Promise<TestSfn> {
  const stateDir = mkdtempSync(join(tmpdir(), "gangway-sfn-"));
  const engine = await createSfnEngine({ ...options, stateDir });
  const server = await startSfnServer({ engine });
  const client = sdkClient(server.url);
  return {
    engine,
    server,
    client,
    stateDir,
    async close() {
      client.destroy();
      await server.close();
      await engine.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
/** A unique name for a machine or an execution. */
export function uniqueName(prefix = "t"): string {
  counter += 1;
  return `${prefix}${counter}x${Math.random().toString(36).slice(2, 8)}`;
}

export async function createMachine(
  client: SFNClient,
  definition: unknown,
  name = uniqueName("sm"),
): Promise<string> {
  const r = await client.send(
    new CreateStateMachineCommand({ name, roleArn: ROLE, definition: JSON.stringify(definition) }),
  );
  return r.stateMachineArn as string;
}

/** Poll until `check` returns a value (or the test's own timeout fires). */
export async function until<T>(
  check: () => Promise<T | undefined> | T | undefined,
  everyMs = 20,
): Promise<T> {
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function waitDone(
  client: SFNClient,
  executionArn: string,
): Promise<DescribeExecutionCommandOutput> {
  return until(async () => {
    const d = await client.send(new DescribeExecutionCommand({ executionArn }));
    return d.status === "RUNNING" ? undefined : d;
  });
}

/** Start an execution of `definition` and wait for its end. */
export async function runToEnd(
  client: SFNClient,
  definition: unknown,
  input: unknown = {},
): Promise<DescribeExecutionCommandOutput & { history: HistoryEvent[] }> {
  const stateMachineArn = await createMachine(client, definition);
  const s = await client.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input) }));
  const d = await waitDone(client, s.executionArn as string);
  return { ...d, history: await history(client, s.executionArn as string) };
}

export async function history(client: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const h = await client.send(
      new GetExecutionHistoryCommand({ executionArn, maxResults: 1000, nextToken }),
    );
    events.push(...(h.events ?? []));
    nextToken = h.nextToken;
  } while (nextToken);
  return events;
}
