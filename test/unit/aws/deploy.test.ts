import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  UpdateStackCommand,
} from "@aws-sdk/client-cloudformation";
import {
  CreateBucketCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
} from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DeployClients,
  deployStack,
  placeAsset,
  readStackArtifacts,
  type StackArtifacts,
  StackDeployFailed,
  StackNotReady,
} from "../../../infra/aws/deploy.js";
import { LocalStackUnreachable, probeLocalStack, templateUrlFor } from "../../../infra/aws/deploy-target.js";
import { ASSETS_BUCKET } from "../../../infra/aws/gangway-stack.js";
import { awsError, type RecordedRequest } from "./fake-aws.js";
import { synthesizeWithTinyCode } from "./synth-fixture.js";

const ACCOUNT = "111122223333";
const REGION = "eu-central-1";
type Command = { input: Record<string, unknown>; constructor: { name: string } };

/**
 * Fake AWS for a deployment: STS, S3 buckets and objects, and CloudFormation stacks that go
 * through IN_PROGRESS for two polls before settling as `outcome` says. Every request recorded.
 */
class FakeAws {
  readonly requests: RecordedRequest[] = [];
  readonly buckets = new Set<string>();
  readonly objects = new Map<string, Buffer>();
  stack: { status: string; template: string; polls: number; settle: string } | undefined;
  outcome: "succeed" | "fail" = "succeed";

  private record(c: Command) {
    this.requests.push({ command: c.constructor.name, input: c.input });
  }
  readonly sts = {
    send: async (c: Command): Promise<never> => {
      this.record(c);
      if (!(c instanceof GetCallerIdentityCommand)) throw new Error("unexpected STS call");
      return { Account: ACCOUNT } as never;
    },
  };
  readonly s3 = {
    send: async (c: Command): Promise<never> => {
      this.record(c);
      const bucket = String(c.input.Bucket);
      if (c instanceof HeadBucketCommand) {
        if (!this.buckets.has(bucket)) throw awsError("NotFound", 404);
        return {} as never;
      }
      if (c instanceof CreateBucketCommand) {
        this.buckets.add(bucket);
        return {} as never;
      }
      if (c instanceof PutPublicAccessBlockCommand) return {} as never;
      if (!this.buckets.has(bucket)) throw awsError("NoSuchBucket", 404);
      const key = `${bucket}/${String(c.input.Key)}`;
      if (c instanceof HeadObjectCommand) {
        if (!this.objects.has(key)) throw awsError("NotFound", 404);
        return {} as never;
      }
      if (c instanceof PutObjectCommand) {
        this.objects.set(key, Buffer.from(c.input.Body as Uint8Array));
        return {} as never;
      }
      throw new Error(`unexpected S3 call ${c.constructor.name}`);
    },
  };
  readonly cloudFormation = {
    send: async (c: Command): Promise<never> => {
      this.record(c);
      const template = String(c.input.TemplateBody ?? c.input.TemplateURL ?? "");
      const settle = (kind: "CREATE" | "UPDATE") =>
        this.outcome === "succeed"
          ? `${kind}_COMPLETE`
          : kind === "CREATE"
            ? "ROLLBACK_COMPLETE"
            : "UPDATE_ROLLBACK_COMPLETE";
      if (c instanceof DescribeStacksCommand) {
        if (!this.stack)
          throw Object.assign(awsError("ValidationError", 400), {
            message: "Stack with id gangway does not exist",
          });
        const s = this.stack;
        if (s.polls > 0) s.polls--;
        else s.status = s.settle;
        if (s.status === "DELETE_COMPLETE") {
          this.stack = undefined;
          throw Object.assign(awsError("ValidationError", 400), {
            message: "Stack with id gangway does not exist",
          });
        }
        const outputs = s.status.endsWith("_COMPLETE")
          ? [
              { OutputKey: "ApiUrl", OutputValue: "https://abc.lambda-url.eu-central-1.on.aws/" },
              {
                OutputKey: "StateMachineArn",
                OutputValue: "arn:aws:states:::stateMachine:gangway-multislice",
              },
            ]
          : undefined;
        return { Stacks: [{ StackName: "gangway", StackStatus: s.status, Outputs: outputs }] } as never;
      }
      if (c instanceof CreateStackCommand) {
        this.stack = { status: "CREATE_IN_PROGRESS", template, polls: 2, settle: settle("CREATE") };
        return { StackId: "id" } as never;
      }
      if (c instanceof UpdateStackCommand) {
        if (this.stack?.template === template)
          throw Object.assign(awsError("ValidationError", 400), {
            message: "No updates are to be performed.",
          });
        if (this.stack)
          Object.assign(this.stack, {
            status: "UPDATE_IN_PROGRESS",
            template,
            polls: 2,
            settle: settle("UPDATE"),
          });
        return { StackId: "id" } as never;
      }
      if (c instanceof DeleteStackCommand) {
        if (this.stack)
          Object.assign(this.stack, { status: "DELETE_IN_PROGRESS", polls: 1, settle: "DELETE_COMPLETE" });
        return {} as never;
      }
      if (c instanceof DescribeStackEventsCommand) {
        return {
          StackEvents: [
            { LogicalResourceId: "gangway", ResourceStatus: "ROLLBACK_COMPLETE", Timestamp: new Date() },
            {
              LogicalResourceId: "ApiFunctionCE271BD4",
              ResourceStatus: "CREATE_FAILED",
              ResourceStatusReason: "Resource handler returned message: Code storage limit exceeded",
              Timestamp: new Date(),
            },
          ],
        } as never;
      }
      throw new Error(`unexpected CloudFormation call ${c.constructor.name}`);
    },
  };
  clients(): DeployClients {
    return { cloudFormation: this.cloudFormation, s3: this.s3, sts: this.sts } as unknown as DeployClients;
  }
  commands(): string[] {
    return this.requests.map((r) => r.command.replace(/Command$/, ""));
  }
}

let dir: string;
let artifacts: StackArtifacts;
const hasUnzip = spawnSync("unzip", ["-v"]).status === 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gangway-deploy-test-"));
  const { outdir } = synthesizeWithTinyCode(dir);
  artifacts = await readStackArtifacts(outdir, "gangway");
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const deploy = (aws: FakeAws, extra: Partial<Parameters<typeof deployStack>[0]> = {}) =>
  deployStack({
    artifacts,
    clients: aws.clients(),
    region: REGION,
    templateUrl: templateUrlFor({ kind: "aws", region: REGION }),
    sleep: async () => {},
    ...extra,
  });

describe("deploying a synthesized stack", () => {
  it("reads the template and each asset (two code bundles, the template) from the cloud assembly", () => {
    expect(artifacts.templateFile.endsWith("gangway.template.json")).toBe(true);
    expect(artifacts.assets.map((a) => a.packaging).sort()).toEqual(["file", "zip", "zip"]);
    for (const a of artifacts.assets) expect(a.bucket).toBe(ASSETS_BUCKET);
    expect(
      placeAsset(artifacts.assets[0] as StackArtifacts["assets"][0], { account: ACCOUNT, region: REGION })
        .bucket,
    ).toBe(`gangway-assets-${ACCOUNT}-${REGION}`);
  });

  it("creates the asset bucket, uploads the zipped code, creates the stack and waits for it", async () => {
    const aws = new FakeAws();
    const outputs = await deploy(aws);
    expect(outputs).toEqual({
      ApiUrl: "https://abc.lambda-url.eu-central-1.on.aws/",
      StateMachineArn: "arn:aws:states:::stateMachine:gangway-multislice",
    });
    const bucket = `gangway-assets-${ACCOUNT}-${REGION}`;
    const create = aws.requests.find((r) => r.command === "CreateBucketCommand");
    expect(create?.input).toEqual({
      Bucket: bucket,
      CreateBucketConfiguration: { LocationConstraint: REGION },
    });
    expect(aws.requests.filter((r) => r.command === "PutObjectCommand")).toHaveLength(3);
    const stack = aws.requests.find((r) => r.command === "CreateStackCommand")?.input;
    expect(stack).toMatchObject({
      StackName: "gangway",
      Capabilities: ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
      OnFailure: "ROLLBACK",
      Tags: [{ Key: "gangway", Value: "gangway" }],
    });
    // The template as synthesized, its whitespace dropped.
    expect(JSON.parse(String(stack?.TemplateBody))).toEqual(
      JSON.parse(readFileSync(artifacts.templateFile, "utf8")),
    );
    expect(String(stack?.TemplateBody)).not.toContain("\n ");
    // Polled until it settled: twice in progress, then complete.
    expect(aws.commands().filter((c) => c === "DescribeStacks").length).toBeGreaterThanOrEqual(4);
    // STS first (the bucket's name needs the account), the stack only after every upload.
    expect(aws.commands()[0]).toBe("GetCallerIdentity");
    expect(aws.commands().lastIndexOf("PutObject")).toBeLessThan(aws.commands().indexOf("CreateStack"));
  });

  it.skipIf(!hasUnzip)("uploads each code asset as a zip holding its index.mjs", async () => {
    const aws = new FakeAws();
    await deploy(aws);
    const zips = [...aws.objects.entries()].filter(([k]) => k.endsWith(".zip"));
    expect(zips).toHaveLength(2);
    for (const [key, body] of zips) {
      const file = join(dir, `${key.split("/").pop()}`);
      writeFileSync(file, body);
      expect(execFileSync("unzip", ["-Z1", file], { encoding: "utf8" }).trim()).toBe("index.mjs");
      expect(execFileSync("unzip", ["-p", file, "index.mjs"], { encoding: "utf8" })).toMatch(
        /export const handler/,
      );
    }
  });

  it("uploads nothing twice and reports no change when the template is the same", async () => {
    const aws = new FakeAws();
    await deploy(aws);
    const before = aws.requests.length;
    const outputs = await deploy(aws);
    const again = aws.requests.slice(before).map((r) => r.command);
    expect(again).not.toContain("PutObjectCommand");
    expect(again).not.toContain("CreateBucketCommand");
    expect(again).toContain("UpdateStackCommand");
    expect(outputs.ApiUrl).toBe("https://abc.lambda-url.eu-central-1.on.aws/");
  });

  it("sends a template too large to inline by its S3 URL", async () => {
    const aws = new FakeAws();
    const big = join(dir, "big.template.json");
    writeFileSync(big, JSON.stringify({ Resources: {}, Padding: "x".repeat(60_000) }));
    const bigArtifacts: StackArtifacts = {
      ...artifacts,
      templateFile: big,
      assets: [
        {
          id: "t",
          displayName: "template",
          path: big,
          packaging: "file",
          bucket: ASSETS_BUCKET,
          key: "t.json",
        },
      ],
    };
    await deploy(aws, { artifacts: bigArtifacts });
    const stack = aws.requests.find((r) => r.command === "CreateStackCommand")?.input;
    expect(stack?.TemplateBody).toBeUndefined();
    expect(stack?.TemplateURL).toBe(
      `https://gangway-assets-${ACCOUNT}-${REGION}.s3.${REGION}.amazonaws.com/t.json`,
    );
    expect(
      templateUrlFor({ kind: "localstack", endpoint: "http://localhost:4566", region: REGION })(
        "b",
        "t.json",
      ),
    ).toBe("http://localhost:4566/b/t.json");
  });

  it("throws StackDeployFailed with CloudFormation's reasons when the create rolls back", async () => {
    const aws = new FakeAws();
    aws.outcome = "fail";
    const e = await deploy(aws).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StackDeployFailed);
    expect((e as Error).message).toMatch(/ended ROLLBACK_COMPLETE/);
    expect((e as Error).message).toMatch(
      /ApiFunctionCE271BD4: Resource handler returned message: Code storage limit exceeded/,
    );
  });

  it("deletes a stack left in ROLLBACK_COMPLETE before creating it again", async () => {
    const aws = new FakeAws();
    aws.stack = { status: "ROLLBACK_COMPLETE", template: "old", polls: 0, settle: "ROLLBACK_COMPLETE" };
    await deploy(aws);
    const cfn = aws
      .commands()
      .filter(
        (c) => !["HeadBucket", "CreateBucket", "PutPublicAccessBlock", "HeadObject", "PutObject"].includes(c),
      );
    expect(cfn.indexOf("DeleteStack")).toBeGreaterThan(-1);
    expect(cfn.indexOf("DeleteStack")).toBeLessThan(cfn.indexOf("CreateStack"));
  });

  it("refuses a stack busy with another operation, and gives up on one that never settles", async () => {
    const busy = new FakeAws();
    busy.stack = { status: "UPDATE_IN_PROGRESS", template: "x", polls: 99, settle: "UPDATE_COMPLETE" };
    await expect(deploy(busy)).rejects.toThrow(StackNotReady);
    expect(busy.commands()).not.toContain("UpdateStack");

    const slow = new FakeAws();
    let t = 0;
    const cfnSend = slow.cloudFormation.send;
    slow.cloudFormation.send = async (c: Command) => {
      const out = await cfnSend(c);
      if (slow.stack) slow.stack.polls = 99;
      return out;
    };
    await expect(deploy(slow, { now: () => (t += 60_000), maxWaitMs: 600_000 })).rejects.toThrow(
      /still CREATE_IN_PROGRESS/,
    );
  });
});

describe("the LocalStack probe", () => {
  const answering = (status: number, body: unknown) =>
    (async () => new Response(JSON.stringify(body), { status })) as unknown as typeof fetch;
  const all = Object.fromEntries(
    ["cloudformation", "s3", "lambda", "stepfunctions", "secretsmanager", "iam", "logs", "sts"].map((s) => [
      s,
      "available",
    ]),
  );

  it("accepts a LocalStack that runs every service the stack needs", async () => {
    const out = await probeLocalStack("http://localhost:4566", {
      fetch: answering(200, { services: all, version: "4.9.0" }),
    });
    expect(out.version).toBe("4.9.0");
  });

  it("says how to start LocalStack when nothing answers, and what is missing when a service is off", async () => {
    const refused = (async () => {
      throw new TypeError("fetch failed");
    }) as unknown as typeof fetch;
    await expect(probeLocalStack("http://localhost:4566", { fetch: refused })).rejects.toThrow(
      "LocalStack does not answer at http://localhost:4566 (fetch failed): start it with `localstack start`",
    );
    await expect(
      probeLocalStack("http://localhost:4566", {
        fetch: answering(200, { services: { ...all, stepfunctions: "disabled" } }),
      }),
    ).rejects.toThrow(/does not offer stepfunctions \(stepfunctions: disabled\)/);
    await expect(
      probeLocalStack("http://localhost:4566", { fetch: answering(503, {}) }),
    ).rejects.toBeInstanceOf(LocalStackUnreachable);
  });
});
