import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { StackArtifacts } from "../../infra/aws/deploy.js";
import type { DeployTarget } from "../../infra/aws/deploy-target.js";
import { STACK_NAME_PATTERN } from "../../infra/aws/steps.js";
import { type CliCommand, type CliContext, EXIT, parseCommandArgs, UsageError } from "../command.js";

const USAGE = `usage: gangway deploy --target localstack|aws|gcp-pubsub [options]

Deploy gangway to a cloud. Prints one JSON line: the stack's outputs, or with --dry-run what
would be deployed (nothing is changed then; the AWS and LocalStack dry run contacts nothing, the
gcp-pubsub one reads the project's topics and subscriptions to compare).

  --target localstack     the AWS CDK app (infra/aws) to LocalStack: Step Functions, Lambdas,
                          the API on a Function URL, a results bucket, secrets
  --target aws            the same app to AWS, with the credentials of the AWS SDK's default
                          chain (AWS_PROFILE, AWS_ACCESS_KEY_ID …) and --region or AWS_REGION
  --target gcp-pubsub     the Pub/Sub topics and push subscriptions that deliver to the API at
                          --api-url (project from --project or the Google client's default)

AWS and LocalStack:
  --endpoint URL              LocalStack's endpoint (default http://localhost:4566)
  --region REGION             default $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1 on LocalStack
  --stack-name NAME           CloudFormation stack, and prefix of every name (default gangway)
  --inventory FILE            the hosts running \`gangway agent\` (JSON or YAML); none: no slices
  --agent-ca FILE             CA certificate (PEM) of the agents' TLS certificates; none: plain gRPC
  --push-service-account SA   accept Pub/Sub pushes signed for this service account (repeatable)
  --push-audience URL         audience of push tokens when not the Function URL itself
  --out DIR                   keep the cloud assembly in DIR (default: a temporary directory)
  --verbose                   say what is done, on stderr
Pub/Sub:
  --api-url URL               the deployed API (the ApiUrl output of the AWS stack)
  --push-service-account SA   the service account Pub/Sub signs its pushes as
  --push-audience URL         audience of the push tokens (default --api-url)
  --project ID                Google Cloud project
Both:
  --dry-run                   show what would be deployed, change nothing`;

type Values = {
  target?: string;
  endpoint?: string;
  region?: string;
  "stack-name": string;
  inventory?: string;
  "agent-ca"?: string;
  "push-service-account"?: string[];
  "push-audience"?: string;
  out?: string;
  "api-url"?: string;
  project?: string;
  "dry-run": boolean;
  verbose: boolean;
};

/** Output keys as the JSON line names them: `ApiUrl` → `apiUrl`. */
const camel = (key: string) => key.charAt(0).toLowerCase() + key.slice(1);

function awsTarget(kind: "localstack" | "aws", v: Values, env: CliContext["env"]): DeployTarget {
  const region = v.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (kind === "localstack") {
    const endpoint = v.endpoint ?? "http://localhost:4566";
    if (!/^https?:\/\/[^/\s]+\/?$/.test(endpoint))
      throw new UsageError(`--endpoint: expected http(s)://host:port, got ${JSON.stringify(endpoint)}`);
    return { kind, endpoint: endpoint.replace(/\/+$/, ""), region: region ?? "us-east-1" };
  }
  if (v.endpoint !== undefined) throw new UsageError("--endpoint: only with --target localstack");
  if (!region) throw new UsageError("--target aws: say which region with --region or AWS_REGION");
  return { kind, region };
}

/** What a dry run reports: the template's resources and each asset with its size and place. */
async function describePlan(artifacts: StackArtifacts, target: DeployTarget) {
  const { placeAsset } = await import("../../infra/aws/deploy.js");
  const { zipDirectory } = await import("../../infra/aws/zip.js");
  const template = JSON.parse(await readFile(artifacts.templateFile, "utf8")) as {
    Resources: Record<string, { Type: string }>;
    Outputs?: Record<string, unknown>;
  };
  const resources: Record<string, number> = {};
  for (const r of Object.values(template.Resources)) resources[r.Type] = (resources[r.Type] ?? 0) + 1;
  // LocalStack's account is fixed; on AWS it is the caller's, known only once STS is asked.
  const account = target.kind === "localstack" ? "000000000000" : "<account>";
  const assets = [];
  for (const a of artifacts.assets) {
    const placed = placeAsset(a, { account, region: target.region });
    const isDir = (await stat(a.path)).isDirectory();
    const bytes = isDir ? (await zipDirectory(a.path)).length : (await stat(a.path)).size;
    assets.push({
      asset: a.displayName,
      packaging: a.packaging,
      bytes,
      to: `s3://${placed.bucket}/${placed.key}`,
    });
  }
  return { resources, assets, outputs: Object.keys(template.Outputs ?? {}).map(camel) };
}

async function deployAws(ctx: CliContext, kind: "localstack" | "aws", v: Values): Promise<number> {
  // Loaded here, not at the top: \`gangway --help\` loads every command, and the CDK is heavy.
  const { bundleAndSynthesize } = await import("../../infra/aws/app.js");
  const { deployStack, readStackArtifacts } = await import("../../infra/aws/deploy.js");
  const { createDeployClients, probeLocalStack, templateUrlFor } = await import(
    "../../infra/aws/deploy-target.js"
  );
  const target = awsTarget(kind, v, ctx.env);
  const log = v.verbose ? (line: string) => ctx.stderr(`deploy: ${line}\n`) : () => {};
  const name = v["stack-name"];
  if (!STACK_NAME_PATTERN.test(name))
    throw new UsageError(
      `--stack-name: expected a letter, then up to 37 letters, digits or dashes, got ${JSON.stringify(name)}`,
    );
  const file = async (flag: "inventory" | "agent-ca") => {
    const given = v[flag];
    if (given === undefined) return undefined;
    const path = resolve(ctx.cwd, given);
    await stat(path).catch(() => {
      throw new UsageError(`--${flag}: no file ${path}`);
    });
    return path;
  };
  const inventoryFile = await file("inventory");
  const agentCaFile = await file("agent-ca");
  // Before the slow part: a LocalStack that is not there is said at once.
  if (target.kind === "localstack" && !v["dry-run"]) await probeLocalStack(target.endpoint);

  const outdir =
    v.out === undefined ? await mkdtemp(join(tmpdir(), "gangway-cdk-")) : resolve(ctx.cwd, v.out);
  try {
    log(`bundling and synthesizing ${name} into ${outdir}`);
    await bundleAndSynthesize({
      stackName: name,
      outdir: join(outdir, "assembly"),
      bundleDir: join(outdir, "bundles"),
      inventoryFile,
      agentCaFile,
      pushServiceAccounts: v["push-service-account"],
      pushAudience: v["push-audience"],
    });
    const artifacts = await readStackArtifacts(join(outdir, "assembly"), name);
    const where = target.kind === "localstack" ? { endpoint: target.endpoint } : {};
    if (v["dry-run"]) {
      const plan = await describePlan(artifacts, target);
      ctx.stdout(
        `${JSON.stringify({ dryRun: true, target: kind, stackName: name, region: target.region, ...where, ...plan })}\n`,
      );
      return EXIT.ok;
    }
    const clients = createDeployClients(target);
    try {
      const outputs = await deployStack({
        artifacts,
        clients,
        region: target.region,
        templateUrl: templateUrlFor(target),
        pollMs: target.kind === "localstack" ? 1000 : 5000,
        log,
        signal: ctx.signal,
      });
      const named = Object.fromEntries(Object.entries(outputs).map(([k, val]) => [camel(k), val]));
      ctx.stdout(
        `${JSON.stringify({ deployed: true, target: kind, stackName: name, region: target.region, ...where, ...named })}\n`,
      );
      return EXIT.ok;
    } finally {
      clients.destroy();
    }
  } finally {
    if (v.out === undefined) await rm(outdir, { recursive: true, force: true });
  }
}

async function deployGcpPubSub(ctx: CliContext, v: Values): Promise<number> {
  const apiUrl = v["api-url"];
  const accounts = v["push-service-account"] ?? [];
  if (apiUrl === undefined) throw new UsageError("--target gcp-pubsub: --api-url is required");
  if (accounts.length !== 1)
    throw new UsageError(
      "--target gcp-pubsub: give exactly one --push-service-account (the one Pub/Sub pushes as)",
    );
  const { PubSub } = await import("@google-cloud/pubsub");
  const { deployPubSub } = await import("../../infra/gcp/pubsub-deploy.js");
  const pubsub = new PubSub(v.project ? { projectId: v.project } : {});
  try {
    const report = await deployPubSub(pubsub, {
      apiUrl,
      pushServiceAccount: accounts[0] as string,
      audience: v["push-audience"],
      dryRun: v["dry-run"],
    });
    for (const step of report.iamSteps) ctx.stderr(`${step}\n`);
    ctx.stdout(`${JSON.stringify({ deployed: !v["dry-run"], target: "gcp-pubsub", ...report })}\n`);
    return EXIT.ok;
  } finally {
    await pubsub.close();
  }
}

/** `gangway deploy`: the AWS CDK app to LocalStack or AWS, or the Pub/Sub layout to Google Cloud. */
export const command: CliCommand = {
  name: "deploy",
  summary: "deploy gangway to LocalStack, AWS, or its Pub/Sub layout to Google Cloud",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(
      {
        args: ctx.argv,
        allowPositionals: true,
        options: {
          target: { type: "string" },
          endpoint: { type: "string" },
          region: { type: "string" },
          "stack-name": { type: "string", default: "gangway" },
          inventory: { type: "string" },
          "agent-ca": { type: "string" },
          "push-service-account": { type: "string", multiple: true },
          "push-audience": { type: "string" },
          out: { type: "string" },
          "api-url": { type: "string" },
          project: { type: "string" },
          "dry-run": { type: "boolean", default: false },
          verbose: { type: "boolean", default: false },
        },
      },
      USAGE,
    );
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${USAGE}`);
    const v = values as Values;
    switch (v.target) {
      case "localstack":
      case "aws":
        return deployAws(ctx, v.target, v);
      case "gcp-pubsub":
        return deployGcpPubSub(ctx, v);
      default:
        throw new UsageError(
          `--target: expected localstack, aws or gcp-pubsub, got ${v.target === undefined ? "nothing" : JSON.stringify(v.target)}\n\n${USAGE}`,
        );
    }
  },
};
