import { DeleteStackCommand } from "@aws-sdk/client-cloudformation";
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  StartExecutionCommand,
  StopExecutionCommand,
} from "@aws-sdk/client-sfn";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../../cli/main.js";
import { createSfnClient } from "../../../functions/clients/sfn.js";
import { createDeployClients, LOCALSTACK_ENDPOINT } from "../../../infra/aws/deploy-target.js";

/**
 * The AWS app deployed for real to LocalStack at $LOCALSTACK_ENDPOINT (default localhost:4566).
 * Runs only when LocalStack answers there (it needs Docker); otherwise reported as skipped.
 */
const endpoint = process.env.LOCALSTACK_ENDPOINT ?? LOCALSTACK_ENDPOINT;
const up = await fetch(`${endpoint}/_localstack/health`, { signal: AbortSignal.timeout(1500) }).then(
  (r) => r.ok,
  () => false,
);
const stackName = `gangway-it-${process.pid}`;
const region = "us-east-1";
let deployed = false;

afterAll(async () => {
  if (!deployed) return;
  const clients = createDeployClients({ kind: "localstack", endpoint, region });
  try {
    await clients.cloudFormation.send(new DeleteStackCommand({ StackName: stackName }));
  } finally {
    clients.destroy();
  }
});

describe("gangway on LocalStack", () => {
  it.skipIf(!up)(
    "deploys the stack, answers on the Function URL, and runs Init in an execution",
    async () => {
      let stdout = "";
      let stderr = "";
      const code = await main(
        ["deploy", "--target", "localstack", "--endpoint", endpoint, "--stack-name", stackName],
        {
          stdout: (t) => {
            stdout += t;
          },
          stderr: (t) => {
            stderr += t;
          },
          cwd: process.cwd(),
          env: process.env,
          signal: new AbortController().signal,
        },
      );
      expect(code, stderr).toBe(0);
      deployed = true;
      const out = JSON.parse(stdout.trim()) as { apiUrl: string; stateMachineArn: string; deployed: boolean };
      expect(out.deployed).toBe(true);
      expect(out.stateMachineArn).toMatch(/:stateMachine:/);

      const health = await fetch(new URL("/health", out.apiUrl), { signal: AbortSignal.timeout(60_000) });
      expect(health.status).toBe(200);

      const sfn = createSfnClient({ endpoint, region });
      try {
        const { executionArn } = await sfn.send(
          new StartExecutionCommand({
            stateMachineArn: out.stateMachineArn,
            name: `it-${Date.now()}`,
            input: JSON.stringify({
              name: "localstack",
              accelerator: { kind: "cpu", hosts: 1 },
              workload: { command: ["true"] },
            }),
          }),
        );
        // No inventory: the job waits for slices once Init has run in its Lambda.
        const deadline = Date.now() + 150_000;
        let names: string[] = [];
        while (Date.now() < deadline) {
          const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }));
          names = (history.events ?? []).flatMap((e) =>
            e.stateEnteredEventDetails?.name ? [e.stateEnteredEventDetails.name] : [],
          );
          if (names.includes("ScaleSlices")) break;
          const d = await sfn.send(new DescribeExecutionCommand({ executionArn }));
          if (d.status !== "RUNNING") throw new Error(`execution ended ${d.status}: ${d.error} ${d.cause}`);
          await new Promise((r) => setTimeout(r, 2000));
        }
        expect(names.slice(0, 2)).toEqual(["Init", "ScaleSlices"]);
        await sfn.send(new StopExecutionCommand({ executionArn }));
      } finally {
        sfn.destroy();
      }
    },
    900_000,
  );
});
