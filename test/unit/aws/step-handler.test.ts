import type { SFNClient } from "@aws-sdk/client-sfn";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InsufficientSlices } from "../../../core/errors.js";
import { caughtToError } from "../../../functions/attempts.js";
import { ExecutionStateSchema } from "../../../functions/state.js";
import { createStepApp, type FunctionErrorBody, INVALID_STEP_INPUT } from "../../../functions/step-app.js";
import { type AwsClients, buildStepDeps } from "../../../infra/aws/lambda/aws-deps.js";
import { InvalidLambdaConfig, readLambdaConfig } from "../../../infra/aws/lambda/config.js";
import { buildStepApp } from "../../../infra/aws/lambda/step-apps.js";
import { createStepHandler, once, StepFunctionError } from "../../../infra/aws/lambda/step-handler.js";
import { FakeS3, type RecordedRequest } from "./fake-aws.js";

const BUCKET = "gangway-results";
const TOKEN_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:gangway-agent-token-AbCdEf";
const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";

/** Fake AWS: S3 in memory, an SFN that records its commands, secrets that count their reads. */
function fakeClients(objects: Record<string, string> = {}) {
  const s3 = new FakeS3(BUCKET);
  for (const [k, v] of Object.entries(objects)) s3.objects.set(k, v);
  const sfnRequests: RecordedRequest[] = [];
  const sfn = {
    send: async (command: { input: object; constructor: { name: string } }) => {
      sfnRequests.push({
        command: command.constructor.name,
        input: command.input as Record<string, unknown>,
      });
      return { executionArn: `${SM.replace(":stateMachine:", ":execution:")}:next` };
    },
  } as unknown as SFNClient;
  const secretReads: string[] = [];
  const clients: AwsClients = {
    s3,
    sfn,
    readSecret: async (arn) => {
      secretReads.push(arn);
      return "agent-token-agent-token";
    },
  };
  return { s3, sfnRequests, secretReads, clients };
}

const env = (step: string, extra: Record<string, string> = {}) => ({
  GANGWAY_STEP: step,
  GANGWAY_RESULTS_BUCKET: BUCKET,
  GANGWAY_AGENT_TOKEN_SECRET_ARN: TOKEN_ARN,
  ...extra,
});

const jobSpec = {
  name: "train",
  accelerator: { kind: "cpu", hosts: 1 },
  workload: { command: ["python3", "train.py"] },
};
const execution = {
  Id: "arn:aws:states:us-east-1:000000000000:execution:gangway-multislice:job-1",
  Name: "job-1",
};

async function catchError(p: Promise<unknown>): Promise<StepFunctionError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof StepFunctionError) return e;
    throw e;
  }
  throw new Error("expected the handler to throw");
}

describe("the step adapter", () => {
  it("runs the real Init step on a raw Step Functions payload and answers its result", async () => {
    const { s3, clients, secretReads } = fakeClients();
    const config = readLambdaConfig(env("init"));
    const handler = createStepHandler(async () =>
      buildStepApp("init", await buildStepDeps("init", config, clients, () => {})),
    );
    const out = (await handler({ input: jobSpec, execution, stateMachine: { Id: SM } })) as Record<
      string,
      unknown
    >;
    expect(out).toMatchObject({
      jobId: "job-1",
      executionArn: execution.Id,
      stateMachineArn: SM,
      attempt: 0,
    });
    expect(ExecutionStateSchema.safeParse(out).success).toBe(true);
    // The job's current attempt went to the results bucket; Init never needed the agent token.
    expect([...s3.objects.keys()].some((k) => k.startsWith("jobs/job-1/"))).toBe(true);
    expect(secretReads).toEqual([]);
  });

  it("throws the step's named failure, its whole body in the message", async () => {
    const { clients } = fakeClients();
    const handler = createStepHandler(async () =>
      buildStepApp("init", await buildStepDeps("init", readLambdaConfig(env("init")), clients, () => {})),
    );
    const e = await catchError(handler({ input: { name: "x" }, execution }));
    expect(e.name).toBe("InvalidJobSpec");
    const body = JSON.parse(e.message) as FunctionErrorBody;
    expect(body.errorType).toBe("InvalidJobSpec");
    expect(body.error?.name).toBe("InvalidJobSpec");
    expect(JSON.stringify(body.error?.details)).toContain("accelerator");
    // The trace the Lambda runtime reports is the step's own, not the adapter's.
    expect(e.stack).toBe(body.trace?.join("\n"));
  });

  it("keeps a failure's name and details through the Cause Step Functions builds from it", async () => {
    const app = createStepApp({
      name: "scale-slices",
      input: z.object({}),
      handle: async () => {
        throw new InsufficientSlices([4], 2, "v4-32");
      },
    });
    const e = await catchError(createStepHandler(() => app)({}));
    expect(e.name).toBe("InsufficientSlices");
    // What the Lambda runtime sends back for a thrown error, and so the Task's Cause.
    const cause = JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: e.stack?.split("\n") });
    const seen = caughtToError({ Error: e.name, Cause: cause });
    expect(seen).toMatchObject({ name: "InsufficientSlices", details: { wanted: [4], available: 2 } });
    expect(seen.message).toBe("insufficient slices of v4-32: wanted 4, available 2");
  });

  it("answers invalid input as InvalidStepInput naming the field, path, expected and got", async () => {
    const { clients } = fakeClients();
    const handler = createStepHandler(async () =>
      buildStepApp("init", await buildStepDeps("init", readLambdaConfig(env("init")), clients, () => {})),
    );
    const e = await catchError(handler({ input: jobSpec, execution: { Id: 7 } }));
    expect(e.name).toBe(INVALID_STEP_INPUT);
    const body = JSON.parse(e.message) as FunctionErrorBody;
    expect(body.code).toBe(INVALID_STEP_INPUT);
    expect(body.issues?.map((i) => i.path)).toEqual(
      expect.arrayContaining(["execution.Id", "execution.Name"]),
    );
    expect(body.issues?.find((i) => i.path === "execution.Id")?.message).toMatch(
      /expected string, got integer 7/,
    );
    const none = await catchError(handler(undefined));
    expect(none.name).toBe(INVALID_STEP_INPUT);
  });

  it("throws a non-JSON failure under a Lambda.Http name", async () => {
    const app = { request: async () => new Response("upstream exploded", { status: 502 }) };
    const e = await catchError(createStepHandler(() => app as never)({}));
    expect(e.name).toBe("Lambda.Http502");
    expect(JSON.parse(e.message)).toMatchObject({ errorMessage: "upstream exploded" });
  });

  it("builds each step with only what it needs: the inventory from S3, the token from Secrets Manager", async () => {
    const inventory = JSON.stringify({
      slices: [
        {
          name: "pod-a",
          type: "v4-16",
          hosts: [
            { address: "10.0.0.2", workerId: 0, agent: "10.0.0.2:7070" },
            { address: "10.0.0.3", workerId: 1, agent: "10.0.0.3:7070" },
          ],
        },
      ],
    });
    const { clients, secretReads, s3 } = fakeClients({
      "inventory/abc.json": inventory,
      "agents-ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    });
    const config = readLambdaConfig(
      env("scale-slices", {
        GANGWAY_INVENTORY_BUCKET: BUCKET,
        GANGWAY_INVENTORY_KEY: "inventory/abc.json",
        GANGWAY_AGENT_CA_BUCKET: BUCKET,
        GANGWAY_AGENT_CA_KEY: "agents-ca.pem",
      }),
    );
    const deps = await buildStepDeps("scale-slices", config, clients, () => {});
    expect((await deps.provider.listSlices()).map((s) => [s.name, s.hosts.length])).toEqual([["pod-a", 2]]);
    expect(secretReads).toEqual([TOKEN_ARN]);
    expect(typeof deps.agents.agent("10.0.0.2:7070").health).toBe("function");
    (deps.agents as unknown as { close(): void }).close();
    const reads = s3.requests.filter((r) => r.command === "GetObjectCommand").map((r) => r.input.Key);
    expect(reads.sort()).toEqual(["agents-ca.pem", "inventory/abc.json"]);

    // Continue-execution starts the next execution through SFN and points the job's record at it.
    const cont = fakeClients();
    const contDeps = await buildStepDeps("continue-execution", config, cont.clients, () => {});
    expect(Object.keys(contDeps).sort()).toEqual(["clock", "executions", "log", "store"]);
    await contDeps.executions.start({ stateMachineArn: SM, name: "job-1-c2", input: "{}" });
    expect(cont.sfnRequests).toEqual([
      { command: "StartExecutionCommand", input: { stateMachineArn: SM, name: "job-1-c2", input: "{}" } },
    ]);
  });

  it("refuses a bad inventory and a missing setting with named errors", async () => {
    const { clients } = fakeClients({ "inv.json": '{"slices":[{"name":"a"}]}' });
    const config = readLambdaConfig(
      env("teardown", { GANGWAY_INVENTORY_BUCKET: BUCKET, GANGWAY_INVENTORY_KEY: "inv.json" }),
    );
    await expect(buildStepDeps("teardown", config, clients, () => {})).rejects.toMatchObject({
      name: "InvalidInventory",
    });
    const noBucket = readLambdaConfig({ GANGWAY_STEP: "init" });
    await expect(buildStepDeps("init", noBucket, clients, () => {})).rejects.toThrow(
      /GANGWAY_RESULTS_BUCKET: expected set, got nothing/,
    );
    expect(() => readLambdaConfig({ GANGWAY_STEP: "nope" })).toThrow(InvalidLambdaConfig);
    expect(() => readLambdaConfig({ GANGWAY_AGENT_TOKEN_SECRET_ARN: "token-in-plain-text" })).toThrow(
      /GANGWAY_AGENT_TOKEN_SECRET_ARN: .*ARN/,
    );
    expect(() => readLambdaConfig({ GANGWAY_INVENTORY_KEY: "k" })).toThrow(/GANGWAY_INVENTORY_BUCKET/);
  });

  it("builds deps once per container, and again after a failed build", async () => {
    let builds = 0;
    const get = once(async () => {
      builds++;
      if (builds === 1) throw new Error("Secrets Manager hiccup");
      return builds;
    });
    await expect(get()).rejects.toThrow("hiccup");
    expect(await get()).toBe(2);
    expect(await get()).toBe(2);
    expect(builds).toBe(2);
  });
});
