import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type Capability,
  type CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  type Stack,
  UpdateStackCommand,
} from "@aws-sdk/client-cloudformation";
import {
  CreateBucketCommand,
  type CreateBucketCommandInput,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import { GangwayError } from "../../core/errors.js";
import { zipDirectory } from "./zip.js";

/** The AWS calls a deployment makes (real clients, or fakes that record them in tests). */
export interface DeployClients {
  cloudFormation: Pick<CloudFormationClient, "send">;
  s3: Pick<S3Client, "send">;
  sts: Pick<STSClient, "send">;
}

/** A stack that ended in a failed or rolled-back state; `reasons` are CloudFormation's. */
export class StackDeployFailed extends GangwayError {
  override readonly name = "StackDeployFailed";
}

/** A stack busy with another operation, or a deployment that outlived its time. */
export class StackNotReady extends GangwayError {
  override readonly name = "StackNotReady";
}

/** A cloud assembly that lacks what a deployment needs (template, asset manifest). */
export class InvalidCloudAssembly extends GangwayError {
  override readonly name = "InvalidCloudAssembly";
}

/** One file asset of the assembly, placed: where it is on disk, where it goes in S3. */
export interface PlacedAsset {
  id: string;
  displayName: string;
  path: string;
  packaging: "zip" | "file";
  bucket: string;
  key: string;
}

/** What the deployment of one stack needs from a synthesized cloud assembly. */
export interface StackArtifacts {
  stackName: string;
  templateFile: string;
  /** Assets with `${AWS::AccountId}`, `${AWS::Region}`, `${AWS::Partition}` still in their names. */
  assets: PlacedAsset[];
}

interface AssetManifest {
  files?: Record<
    string,
    {
      displayName?: string;
      source: { path: string; packaging?: "zip" | "file" };
      destinations: Record<string, { bucketName: string; objectKey: string }>;
    }
  >;
  dockerImages?: Record<string, unknown>;
}

/** Read a stack's template and asset manifest out of a cloud assembly directory (`manifest.json`). */
export async function readStackArtifacts(assemblyDir: string, stackName: string): Promise<StackArtifacts> {
  const manifest = JSON.parse(await readFile(join(assemblyDir, "manifest.json"), "utf8")) as {
    artifacts?: Record<
      string,
      { type: string; properties?: Record<string, unknown>; dependencies?: string[] }
    >;
  };
  const artifacts = manifest.artifacts ?? {};
  const stack = Object.entries(artifacts).find(
    ([id, a]) => a.type === "aws:cloudformation:stack" && (a.properties?.stackName ?? id) === stackName,
  );
  if (!stack) throw new InvalidCloudAssembly(`no stack ${stackName} in ${assemblyDir}`);
  const [stackId, stackArtifact] = stack;
  const templateFile = join(assemblyDir, String(stackArtifact.properties?.templateFile));
  const assetIds = (stackArtifact.dependencies ?? []).filter(
    (d) => artifacts[d]?.type === "cdk:asset-manifest",
  );
  const assets: PlacedAsset[] = [];
  for (const id of assetIds.length > 0 ? assetIds : [`${stackId}.assets`]) {
    const file = artifacts[id]?.properties?.file;
    if (typeof file !== "string") throw new InvalidCloudAssembly(`asset manifest ${id} names no file`);
    const am = JSON.parse(await readFile(join(assemblyDir, file), "utf8")) as AssetManifest;
    if (Object.keys(am.dockerImages ?? {}).length > 0)
      throw new InvalidCloudAssembly("container image assets are not supported by gangway deploy");
    for (const [assetId, a] of Object.entries(am.files ?? {})) {
      for (const d of Object.values(a.destinations)) {
        assets.push({
          id: assetId,
          displayName: a.displayName ?? assetId,
          path: join(assemblyDir, a.source.path),
          packaging: a.source.packaging ?? "file",
          bucket: d.bucketName,
          key: d.objectKey,
        });
      }
    }
  }
  return { stackName, templateFile, assets };
}

/** Fill in the CloudFormation pseudo parameters asset manifests use. */
export function placeAsset<T extends { bucket: string; key: string }>(
  asset: T,
  env: { account: string; region: string; partition?: string },
): T {
  const values: Record<string, string> = {
    AccountId: env.account,
    Region: env.region,
    Partition: env.partition ?? "aws",
  };
  const fill = (s: string) =>
    s.replace(/\$\{AWS::(AccountId|Region|Partition)\}/g, (_, p: string) => values[p] ?? "");
  return { ...asset, bucket: fill(asset.bucket), key: fill(asset.key) };
}

const errorName = (e: unknown) => (e as { name?: string }).name ?? "";
const statusOf = (e: unknown) =>
  (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
const notFound = (e: unknown) =>
  ["NotFound", "NoSuchBucket", "NoSuchKey"].includes(errorName(e)) || statusOf(e) === 404;

/** The largest template CloudFormation takes inline; larger ones go through S3. */
export const MAX_TEMPLATE_BODY = 51_200;

/** Options of {@link deployStack}. */
export interface DeployOptions {
  artifacts: StackArtifacts;
  clients: DeployClients;
  region: string;
  /** The URL of an uploaded template (differs between AWS and LocalStack). */
  templateUrl: (bucket: string, key: string) => string;
  /** Wait between status polls (default 3 s). */
  pollMs?: number;
  /** Give up waiting after this long (default 45 minutes). */
  maxWaitMs?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Injected in tests: sleep and clock. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

const CAPABILITIES: Capability[] = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"];

async function ensureBucket(
  s3: DeployClients["s3"],
  bucket: string,
  region: string,
  log: (l: string) => void,
) {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return;
  } catch (e) {
    if (!notFound(e)) throw e;
  }
  log(`creating asset bucket ${bucket}`);
  const input: CreateBucketCommandInput = { Bucket: bucket };
  if (region !== "us-east-1") input.CreateBucketConfiguration = { LocationConstraint: region as never };
  await s3.send(new CreateBucketCommand(input));
  await s3.send(
    new PutPublicAccessBlockCommand({
      Bucket: bucket,
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    }),
  );
}

/** Upload each asset not already in its bucket (keys are content hashes, so present = same). */
export async function publishAssets(
  assets: readonly PlacedAsset[],
  s3: DeployClients["s3"],
  region: string,
  log: (line: string) => void = () => {},
): Promise<{ uploaded: string[]; skipped: string[] }> {
  const uploaded: string[] = [];
  const skipped: string[] = [];
  for (const bucket of new Set(assets.map((a) => a.bucket))) await ensureBucket(s3, bucket, region, log);
  for (const a of assets) {
    try {
      await s3.send(new HeadObjectCommand({ Bucket: a.bucket, Key: a.key }));
      skipped.push(a.key);
      continue;
    } catch (e) {
      if (!notFound(e)) throw e;
    }
    const isDir = (await stat(a.path)).isDirectory();
    const body = a.packaging === "zip" && isDir ? await zipDirectory(a.path) : await readFile(a.path);
    log(`uploading ${a.displayName} (${body.length} bytes) to s3://${a.bucket}/${a.key}`);
    await s3.send(new PutObjectCommand({ Bucket: a.bucket, Key: a.key, Body: body }));
    uploaded.push(a.key);
  }
  return { uploaded, skipped };
}

async function describeStack(
  cfn: DeployClients["cloudFormation"],
  stackName: string,
): Promise<Stack | undefined> {
  try {
    return (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
  } catch (e) {
    if (errorName(e) === "ValidationError" && /does not exist/.test((e as Error).message)) return undefined;
    throw e;
  }
}

const IN_PROGRESS = /_IN_PROGRESS$/;
const SUCCEEDED = new Set(["CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"]);

/**
 * Deploy one synthesized stack with CloudFormation: account from STS, assets published to their
 * buckets (created when missing), the stack created or updated (a stack left in
 * ROLLBACK_COMPLETE by a failed first create is deleted first), then waited for. Answers the
 * stack's outputs; a failure throws {@link StackDeployFailed} with CloudFormation's reasons.
 */
export async function deployStack(options: DeployOptions): Promise<Record<string, string>> {
  const { clients, artifacts, region } = options;
  const log = options.log ?? (() => {});
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const pollMs = options.pollMs ?? 3000;
  const deadline = now() + (options.maxWaitMs ?? 45 * 60_000);
  const cfn = clients.cloudFormation;
  const name = artifacts.stackName;

  const identity = await clients.sts.send(new GetCallerIdentityCommand({}));
  if (!identity.Account) throw new StackNotReady("STS answered no account id");
  const assets = artifacts.assets.map((a) => placeAsset(a, { account: identity.Account as string, region }));
  await publishAssets(assets, clients.s3, region, log);

  // Without the synthesizer's indentation the template stays inline far longer (55 KB → 41 KB).
  const templateText = JSON.stringify(JSON.parse(await readFile(artifacts.templateFile, "utf8")));
  const templateAsset = assets.find((a) => a.path === artifacts.templateFile);
  const template =
    templateText.length <= MAX_TEMPLATE_BODY || !templateAsset
      ? { TemplateBody: templateText }
      : { TemplateURL: options.templateUrl(templateAsset.bucket, templateAsset.key) };

  const waitWhile = async (what: string): Promise<Stack | undefined> => {
    for (;;) {
      options.signal?.throwIfAborted();
      const s = await describeStack(cfn, name);
      if (!s?.StackStatus || !IN_PROGRESS.test(s.StackStatus)) return s;
      if (now() > deadline)
        throw new StackNotReady(`${name}: still ${s.StackStatus} after waiting for ${what}`);
      await sleep(pollMs);
    }
  };

  let existing = await describeStack(cfn, name);
  if (existing?.StackStatus && IN_PROGRESS.test(existing.StackStatus))
    throw new StackNotReady(`stack ${name} is busy (${existing.StackStatus}); try again when it settles`);
  if (existing?.StackStatus === "ROLLBACK_COMPLETE") {
    log(`stack ${name} is in ROLLBACK_COMPLETE from a failed create: deleting it first`);
    await cfn.send(new DeleteStackCommand({ StackName: name }));
    await waitWhile("the delete");
    existing = undefined;
  }
  // A minute of slack: failure events are stamped by CloudFormation's clock, not ours.
  const startedAt = new Date(now() - 60_000);
  const common = {
    StackName: name,
    ...template,
    Capabilities: CAPABILITIES,
    Tags: [{ Key: "gangway", Value: name }],
  };
  if (!existing || existing.StackStatus === "DELETE_COMPLETE") {
    log(`creating stack ${name}`);
    await cfn.send(new CreateStackCommand({ ...common, OnFailure: "ROLLBACK" }));
  } else {
    log(`updating stack ${name} (${existing.StackStatus})`);
    try {
      await cfn.send(new UpdateStackCommand(common));
    } catch (e) {
      if (
        !(errorName(e) === "ValidationError" && /No updates are to be performed/.test((e as Error).message))
      )
        throw e;
      log(`stack ${name}: no changes`);
      return outputsOf(existing);
    }
  }
  const done = await waitWhile("the deployment");
  if (!done?.StackStatus || !SUCCEEDED.has(done.StackStatus) || done.StackStatus === "DELETE_COMPLETE") {
    const reasons = await failureReasons(cfn, name, startedAt);
    throw new StackDeployFailed(
      `stack ${name} ended ${done?.StackStatus ?? "gone"}${reasons.length ? `:\n  ${reasons.join("\n  ")}` : ""}`,
      { status: done?.StackStatus, reasons },
    );
  }
  return outputsOf(done);
}

function outputsOf(stack: Stack): Record<string, string> {
  return Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? "", o.OutputValue ?? ""]));
}

/** The reasons CloudFormation gave for resources that failed since `since`, oldest first. */
async function failureReasons(
  cfn: DeployClients["cloudFormation"],
  name: string,
  since: Date,
): Promise<string[]> {
  try {
    const events = (await cfn.send(new DescribeStackEventsCommand({ StackName: name }))).StackEvents ?? [];
    return events
      .filter((e) => e.ResourceStatus?.endsWith("_FAILED") && (e.Timestamp ?? new Date(0)) >= since)
      .reverse()
      .map((e) => `${e.LogicalResourceId}: ${e.ResourceStatusReason ?? e.ResourceStatus}`);
  } catch {
    return [];
  }
}
