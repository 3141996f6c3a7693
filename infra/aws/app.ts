import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { App } from "aws-cdk-lib";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { buildLambdaBundles } from "./bundle.js";
import { GangwayStack, type LambdaCodeDirs } from "./gangway-stack.js";
import { STACK_NAME_PATTERN } from "./steps.js";

/** What to synthesize: the stack's name, where its code is, and what it is configured with. */
export interface GangwaySynthOptions {
  stackName: string;
  /** Directory the cloud assembly (template, asset manifest, staged assets) is written to. */
  outdir: string;
  code: LambdaCodeDirs;
  inventoryFile?: string | undefined;
  agentCaFile?: string | undefined;
  pushServiceAccounts?: readonly string[] | undefined;
  pushAudience?: string | undefined;
}

/**
 * Synthesize the gangway CDK app in-process: one {@link GangwayStack}, environment-agnostic (the
 * account and region are CloudFormation's pseudo parameters), into `outdir`.
 */
export function synthesizeGangway(options: GangwaySynthOptions): {
  assembly: CloudAssembly;
  stack: GangwayStack;
} {
  if (!STACK_NAME_PATTERN.test(options.stackName))
    throw new RangeError(
      `stack name ${JSON.stringify(options.stackName)}: expected a letter, then up to 37 letters, digits or dashes`,
    );
  const app = new App({ outdir: options.outdir, analyticsReporting: false });
  const stack = new GangwayStack(app, options.stackName, {
    stackName: options.stackName,
    code: options.code,
    inventoryFile: options.inventoryFile && resolve(options.inventoryFile),
    agentCaFile: options.agentCaFile && resolve(options.agentCaFile),
    pushServiceAccounts: options.pushServiceAccounts,
    pushAudience: options.pushAudience,
    description: "gangway: gang-scheduled training jobs on Step Functions and Lambda",
  });
  return { assembly: app.synth(), stack };
}

/** Bundle the Lambdas with esbuild, then synthesize: what `gangway deploy` and the `cdk` CLI run. */
export async function bundleAndSynthesize(
  options: Omit<GangwaySynthOptions, "code"> & { bundleDir?: string },
): Promise<{ assembly: CloudAssembly; stack: GangwayStack }> {
  const bundleDir = options.bundleDir ?? (await mkdtemp(join(tmpdir(), "gangway-bundles-")));
  const built = await buildLambdaBundles(bundleDir);
  return synthesizeGangway({ ...options, code: { step: built.step.dir, api: built.api.dir } });
}

// `npx cdk synth --app "npx tsx infra/aws/app.ts"` (or `npx tsx infra/aws/app.ts`) runs this.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const outdir = process.env.CDK_OUTDIR ?? "cdk.out";
  const stackName = process.env.GANGWAY_STACK_NAME ?? "gangway";
  const { assembly } = await bundleAndSynthesize({
    stackName,
    outdir,
    inventoryFile: process.env.GANGWAY_INVENTORY,
    agentCaFile: process.env.GANGWAY_AGENT_CA,
    pushServiceAccounts: process.env.GANGWAY_PUSH_SERVICE_ACCOUNTS?.split(",").filter(Boolean),
  });
  console.log(
    JSON.stringify({ synthesized: assembly.directory, stacks: assembly.stacks.map((s) => s.stackName) }),
  );
}
