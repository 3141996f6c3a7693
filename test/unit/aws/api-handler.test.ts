import type { SFNClient } from "@aws-sdk/client-sfn";
import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { describe, expect, it } from "vitest";
import { signBody } from "../../../functions/api/signature.js";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { buildAwsApi } from "../../../infra/aws/lambda/api.js";
import { createAwsApiApp } from "../../../infra/aws/lambda/api-app.js";
import type { AwsClients } from "../../../infra/aws/lambda/aws-deps.js";
import { readLambdaConfig } from "../../../infra/aws/lambda/config.js";
import { definitionTemplate } from "../../../infra/state-machine.js";
import { FakeS3, type RecordedRequest } from "./fake-aws.js";

const DOMAIN = "abcdefghijklmnop.lambda-url.us-east-1.on.aws";
const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";
const ARN = (name: string) => `arn:aws:secretsmanager:us-east-1:000000000000:secret:${name}-AbCdEf`;
const SECRETS: Record<string, string> = {
  [ARN("webhook")]: "webhook-secret-webhook-secret",
  [ARN("api")]: "api-token-api-token-api-token",
  [ARN("agent")]: "agent-token-agent-token",
};

/** A Function URL request event (payload format 2.0), as Lambda hands it to the handler. */
function urlEvent(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): LambdaEvent {
  const [rawPath = path, rawQueryString = ""] = path.split("?");
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString,
    headers: { host: DOMAIN, "x-forwarded-proto": "https", ...headers },
    requestContext: {
      accountId: "anonymous",
      apiId: "abcdefghijklmnop",
      domainName: DOMAIN,
      domainPrefix: "abcdefghijklmnop",
      http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "203.0.113.9", userAgent: "test" },
      requestId: "c0ffee",
      routeKey: "$default",
      stage: "$default",
      time: "01/Jan/2030:00:00:00 +0000",
      timeEpoch: 1_893_456_000_000,
    },
    body,
    isBase64Encoded: false,
  } as unknown as LambdaEvent;
}
const context = {} as LambdaContext;

function fakeAws() {
  const sfnRequests: RecordedRequest[] = [];
  const sfn = {
    send: async (command: { input: Record<string, unknown>; constructor: { name: string } }) => {
      sfnRequests.push({ command: command.constructor.name, input: command.input });
      if (command.constructor.name === "StartExecutionCommand")
        return { executionArn: `${SM.replace(":stateMachine:", ":execution:")}:${command.input.name}` };
      if (command.constructor.name === "ListExecutionsCommand") return { executions: [] };
      throw Object.assign(new Error("no such execution"), { name: "ExecutionDoesNotExist" });
    },
  } as unknown as SFNClient;
  const reads: string[] = [];
  const clients: AwsClients = {
    s3: new FakeS3("results"),
    sfn,
    readSecret: async (arn) => {
      reads.push(arn);
      const value = SECRETS[arn];
      if (value === undefined) throw new Error(`no secret ${arn}`);
      return value;
    },
  };
  const config = readLambdaConfig({
    GANGWAY_RESULTS_BUCKET: "results",
    GANGWAY_WEBHOOK_SECRET_ARN: ARN("webhook"),
    GANGWAY_API_TOKEN_SECRET_ARN: ARN("api"),
    GANGWAY_AGENT_TOKEN_SECRET_ARN: ARN("agent"),
    GANGWAY_STATE_MACHINE_ARN: SM,
  });
  return { clients, config, sfnRequests, reads };
}

const spec = JSON.stringify({
  name: "train",
  accelerator: { kind: "tpu", type: "v4-8" },
  workload: { command: ["python3", "train.py"] },
});
const signed = (body: string) => {
  const ts = String(Math.floor(Date.now() / 1000));
  return {
    "content-type": "application/json",
    "x-gangway-timestamp": ts,
    "x-gangway-signature": signBody(SECRETS[ARN("webhook")] ?? "", ts, body),
  };
};

describe("the API Lambda behind a Function URL", () => {
  it("starts a job for a signed webhook request and refuses an unsigned one", async () => {
    const aws = fakeAws();
    const handler = handle(await buildAwsApi(aws.config, aws.clients));
    expect(aws.reads.sort()).toEqual([ARN("agent"), ARN("api"), ARN("webhook")].sort());

    const ok = await handler(urlEvent("POST", "/v1/jobs", spec, signed(spec)), context);
    expect(ok.statusCode).toBe(202);
    const { jobId, executionArn } = JSON.parse(ok.body) as { jobId: string; executionArn: string };
    expect(executionArn).toBe(`${SM.replace(":stateMachine:", ":execution:")}:${jobId}`);
    const start = aws.sfnRequests.find((r) => r.command === "StartExecutionCommand");
    expect(start?.input).toMatchObject({ stateMachineArn: SM, name: jobId });
    expect(JSON.parse(String(start?.input.input))).toMatchObject({ name: "train" });

    const unsigned = await handler(
      urlEvent("POST", "/v1/jobs", spec, { "content-type": "application/json" }),
      context,
    );
    expect(unsigned.statusCode).toBe(401);
    expect(JSON.parse(unsigned.body)).toMatchObject({ code: "Unauthorized" });
    const forged = signed(spec);
    const tampered = await handler(
      urlEvent("POST", "/v1/jobs", spec.replace("train", "evil"), forged),
      context,
    );
    expect(tampered.statusCode).toBe(401);
    expect(aws.sfnRequests.filter((r) => r.command === "StartExecutionCommand")).toHaveLength(1);
  });

  it("needs the API token for reads, cancels and the console", async () => {
    const aws = fakeAws();
    const handler = handle(await buildAwsApi(aws.config, aws.clients));
    const bearer = { authorization: `Bearer ${SECRETS[ARN("api")]}` };
    expect((await handler(urlEvent("GET", "/v1/jobs"), context)).statusCode).toBe(401);
    expect((await handler(urlEvent("GET", "/v1/jobs/j1/status"), context)).statusCode).toBe(401);
    expect((await handler(urlEvent("DELETE", "/v1/jobs/j1"), context)).statusCode).toBe(401);
    const wrong = { authorization: "Bearer api-token-api-token-api-tokeX" };
    expect((await handler(urlEvent("GET", "/v1/jobs", undefined, wrong), context)).statusCode).toBe(401);
    expect((await handler(urlEvent("GET", "/v1/jobs", undefined, bearer), context)).statusCode).toBe(200);
    expect((await handler(urlEvent("GET", "/v1/jobs/nope", undefined, bearer), context)).statusCode).toBe(
      404,
    );
    expect((await handler(urlEvent("GET", "/console"), context)).statusCode).toBe(401);
    expect((await handler(urlEvent("GET", "/console", undefined, bearer), context)).statusCode).toBe(200);
    expect((await handler(urlEvent("GET", "/health"), context)).statusCode).toBe(200);
    expect((await handler(urlEvent("GET", "/v1/openapi.json"), context)).statusCode).toBe(200);
  });

  it("answers an unknown route 404 and a known path's other method 405, as {code, message, issues}", async () => {
    const aws = fakeAws();
    const handler = handle(await buildAwsApi(aws.config, aws.clients));
    const bearer = { authorization: `Bearer ${SECRETS[ARN("api")]}` };
    const put = await handler(urlEvent("PUT", "/v1/jobs", spec, bearer), context);
    expect(put.statusCode).toBe(405);
    expect(put.headers?.allow).toContain("POST");
    expect(JSON.parse(put.body)).toMatchObject({
      code: "MethodNotAllowed",
      message: /PUT \/v1\/jobs/,
      issues: [],
    });
    // Still behind the API token: nothing is said about the API to a caller without it.
    expect((await handler(urlEvent("PUT", "/v1/jobs", spec), context)).statusCode).toBe(401);
    for (const [method, path] of [
      ["GET", "/v1/jobs/x/y"],
      ["GET", "/nothing"],
    ] as const) {
      const res = await handler(urlEvent(method, path, undefined, bearer), context);
      expect(res.statusCode).toBe(404);
      expect(res.headers?.["content-type"]).toMatch(/^application\/json/);
      expect(JSON.parse(res.body)).toEqual({
        code: "NotFound",
        message: `no route ${method} ${path}`,
        issues: [],
      });
    }
    expect(aws.sfnRequests.filter((r) => r.command === "StartExecutionCommand")).toHaveLength(0);
  });

  it("refuses every push when no pusher is configured", async () => {
    const aws = fakeAws();
    const handler = handle(await buildAwsApi(aws.config, aws.clients));
    const push = JSON.stringify({ message: { data: Buffer.from("{}").toString("base64"), messageId: "1" } });
    const res = await handler(
      urlEvent("POST", "/push/host-events", push, { authorization: "Bearer a.b.c" }),
      context,
    );
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ code: "Unauthorized", message: /takes no Pub\/Sub pushes/ });
  });

  it("checks pushes for the Function URL's own audience, then ingests them", async () => {
    const audiences: string[] = [];
    const app = createAwsApiApp({
      executions: {
        start: async () => ({ executionArn: "x" }),
        describe: async () => undefined,
        list: async () => ({ executions: [] }),
        history: async () => [],
      },
      store: createMemoryResultsStore(),
      tokens: { succeed: async () => "sent", fail: async () => "sent", heartbeat: async () => "sent" },
      clock: { now: () => Date.now() },
      stateMachineArn: SM,
      definition: definitionTemplate(),
      webhookSecret: "w".repeat(24),
      apiToken: "a".repeat(24),
      verifyPush: async (authorization, _now, audience) => {
        audiences.push(audience);
        return authorization === "Bearer good.token.here"
          ? undefined
          : "the token's signature does not verify";
      },
    });
    const handler = handle(app);
    const notice = { slice: "pod-a", reason: "maintenance" };
    const push = JSON.stringify({
      message: { data: Buffer.from(JSON.stringify(notice)).toString("base64"), messageId: "m1" },
      subscription: "projects/p/subscriptions/s",
    });
    const bad = await handler(
      urlEvent("POST", "/push/preemption-notices", push, { authorization: "Bearer bad.token.here" }),
      context,
    );
    expect(bad.statusCode).toBe(401);
    expect(JSON.parse(bad.body)).toEqual({
      code: "Unauthorized",
      message: "the token's signature does not verify",
      issues: [],
    });
    const good = await handler(
      urlEvent("POST", "/push/preemption-notices", push, { authorization: "Bearer good.token.here" }),
      context,
    );
    expect(good.statusCode).toBe(200);
    expect(audiences).toEqual([`https://${DOMAIN}`, `https://${DOMAIN}`]);
  });
});
