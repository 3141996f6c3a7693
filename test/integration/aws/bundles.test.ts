import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../../../functions/api/signature.js";
import { createAgentClient } from "../../../functions/clients/agent/client.js";
import { type BuiltBundle, buildLambdaBundles } from "../../../infra/aws/bundle.js";
import { startTestAgent } from "../agent/helpers.js";
import { startFakeAwsServer } from "./fake-aws-server.js";

const SM = "arn:aws:states:us-east-1:000000000000:stateMachine:gangway-multislice";
const secretArn = (n: string) => `arn:aws:secretsmanager:us-east-1:000000000000:secret:gangway/${n}-AbCdEf`;
const SECRETS = {
  [secretArn("webhook-secret")]: "webhook-secret-webhook-secret",
  [secretArn("api-token")]: "api-token-api-token-api-token",
  [secretArn("agent-token")]: "agent-token-agent-token",
};

type StepHandler = (event: unknown) => Promise<unknown>;
type ApiHandler = (event: unknown, context: unknown) => Promise<{ statusCode: number; body: string }>;

let dir: string;
let bundles: Record<"step" | "api", BuiltBundle>;
let aws: Awaited<ReturnType<typeof startFakeAwsServer>>;
const savedEnv = { ...process.env };

/** A fresh instance of a bundle (its own cold start), its environment set first. */
async function load<T>(name: "step" | "api", env: Record<string, string>, instance: string): Promise<T> {
  Object.assign(process.env, env);
  const url = pathToFileURL(join(bundles[name].dir, "index.mjs"));
  url.search = `?instance=${instance}`;
  const mod = (await import(url.href)) as { handler?: T };
  expect(typeof mod.handler).toBe("function");
  return mod.handler as T;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gangway-bundles-test-"));
  bundles = await buildLambdaBundles(dir);
  aws = await startFakeAwsServer(SECRETS);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: aws.url,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    GANGWAY_RESULTS_BUCKET: "results",
  });
}, 120_000);
afterAll(async () => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await aws?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the Lambda bundles, built with esbuild", () => {
  it("are self-contained ES modules with the agent's proto beside them", () => {
    for (const b of Object.values(bundles)) {
      expect(existsSync(join(b.dir, "index.mjs"))).toBe(true);
      expect(existsSync(join(b.dir, "agent.proto"))).toBe(true);
      expect(b.bytes).toBeGreaterThan(100_000);
    }
  });

  it("run the Init step against S3 through the SDK they carry, and name invalid input", async () => {
    const handler = await load<StepHandler>("step", { GANGWAY_STEP: "init" }, "init");
    const spec = { name: "train", accelerator: { kind: "cpu", hosts: 1 }, workload: { command: ["true"] } };
    const execution = { Id: `${SM.replace(":stateMachine:", ":execution:")}:job-b1`, Name: "job-b1" };
    const state = (await handler({ input: spec, execution, stateMachine: { Id: SM } })) as { jobId: string };
    expect(state.jobId).toBe("job-b1");
    expect([...aws.objects.keys()].some((k) => k.startsWith("results/jobs/job-b1/"))).toBe(true);
    const invalid = await handler({ input: spec }).catch((e: unknown) => e as Error);
    expect(invalid).toBeInstanceOf(Error);
    expect((invalid as Error).name).toBe("InvalidStepInput");
    expect(JSON.parse((invalid as Error).message)).toMatchObject({ code: "InvalidStepInput" });
  });

  it("reach a real host agent over gRPC and TLS from the bundle: token from Secrets Manager, inventory and CA from S3", async () => {
    // A throwaway self-signed cert for 127.0.1.1, made now and deleted with the directory.
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1"],
        ...["-subj", "/CN=gangway-agent", "-addext", "subjectAltName=IP:127.0.1.1"],
      ],
      { stdio: "ignore" },
    );
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    aws.objects.set("assets/agents-ca.pem", Buffer.from(cert));
    const agent = await startTestAgent({
      token: SECRETS[secretArn("agent-token")],
      tls: { cert, key: readFileSync(join(dir, "key.pem")) },
    });
    try {
      const inventory = {
        slices: [
          {
            name: "box",
            kind: "cpu",
            type: "cpu",
            hosts: [{ address: "127.0.1.1", workerId: 0, agent: agent.server.address }],
          },
        ],
      };
      aws.objects.set("assets/inventory.json", Buffer.from(JSON.stringify(inventory)));
      const init = await load<StepHandler>("step", { GANGWAY_STEP: "init" }, "init-2");
      const spec = { name: "train", accelerator: { kind: "cpu", hosts: 1 }, workload: { command: ["true"] } };
      const execution = { Id: `${SM.replace(":stateMachine:", ":execution:")}:job-b2`, Name: "job-b2" };
      const state = await init({ input: spec, execution, stateMachine: { Id: SM } });
      const scale = await load<StepHandler>(
        "step",
        {
          GANGWAY_STEP: "scale-slices",
          GANGWAY_AGENT_TOKEN_SECRET_ARN: secretArn("agent-token"),
          GANGWAY_INVENTORY_BUCKET: "assets",
          GANGWAY_INVENTORY_KEY: "inventory.json",
          GANGWAY_AGENT_CA_BUCKET: "assets",
          GANGWAY_AGENT_CA_KEY: "agents-ca.pem",
        },
        "scale",
      );
      const out = (await scale(state)) as { scale?: { status?: string } };
      expect(out.scale?.status).not.toBe("pending");
      // The bundled step leased the host through the agent's gRPC API, with the token it read.
      const client = createAgentClient(agent.server.address, {
        token: SECRETS[secretArn("agent-token")] ?? "",
        tls: { ca: cert },
      });
      try {
        expect((await client.status()).lease?.jobId).toBe("job-b2");
      } finally {
        client.close();
      }
      const reads = aws.calls.filter((c) => c.service === "secretsmanager").map((c) => c.detail.SecretId);
      expect(reads).toEqual([secretArn("agent-token")]);
    } finally {
      await agent.close();
    }
  });

  it("serve a signed webhook request through the API bundle, starting one execution", async () => {
    const handler = await load<ApiHandler>(
      "api",
      {
        GANGWAY_WEBHOOK_SECRET_ARN: secretArn("webhook-secret"),
        GANGWAY_API_TOKEN_SECRET_ARN: secretArn("api-token"),
        GANGWAY_AGENT_TOKEN_SECRET_ARN: secretArn("agent-token"),
        GANGWAY_STATE_MACHINE_ARN: SM,
      },
      "api",
    );
    const body = JSON.stringify({
      name: "train",
      accelerator: { kind: "tpu", type: "v4-8" },
      workload: { command: ["python3", "t.py"] },
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const domain = "abcdefghij.lambda-url.us-east-1.on.aws";
    const event = {
      version: "2.0",
      routeKey: "$default",
      rawPath: "/v1/jobs",
      rawQueryString: "",
      headers: {
        host: domain,
        "content-type": "application/json",
        "x-gangway-timestamp": ts,
        "x-gangway-signature": signBody(SECRETS[secretArn("webhook-secret")] ?? "", ts, body),
      },
      requestContext: {
        domainName: domain,
        http: {
          method: "POST",
          path: "/v1/jobs",
          protocol: "HTTP/1.1",
          sourceIp: "203.0.113.9",
          userAgent: "t",
        },
        requestId: "r1",
        routeKey: "$default",
        stage: "$default",
        timeEpoch: Date.now(),
      },
      body,
      isBase64Encoded: false,
    };
    const res = await handler(event, {});
    expect(res.statusCode).toBe(202);
    const { jobId } = JSON.parse(res.body) as { jobId: string };
    const starts = aws.calls.filter((c) => c.service === "sfn" && c.operation === "StartExecution");
    expect(starts.map((s) => s.detail.name)).toEqual([jobId]);
    expect(starts[0]?.detail.stateMachineArn).toBe(SM);
    const unsigned = await handler(
      { ...event, headers: { host: domain, "content-type": "application/json" } },
      {},
    );
    expect(unsigned.statusCode).toBe(401);
  });
});
