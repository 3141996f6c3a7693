import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { SFNClient } from "@aws-sdk/client-sfn";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { createAgentConnector } from "../../../functions/clients/agent/connector.js";
import { createS3ResultsStore, type S3Sender } from "../../../functions/clients/s3-results-store.js";
import { createSfnExecutionsApi, createSfnTaskTokens } from "../../../functions/clients/sfn.js";
import type { ControlPlaneDeps } from "../../../functions/deps.js";
import { type SliceProvider, systemClock } from "../../../functions/ports.js";
import { parseInventory } from "../../local/cluster/static-provider.js";
import { LAMBDA_ENV, STEP_NEEDS, type StepName } from "../steps.js";
import { type LambdaConfig, required } from "./config.js";
import type { StepDeps } from "./step-apps.js";

/** The AWS clients a Lambda talks through (real ones in Lambda, fakes in unit tests). */
export interface AwsClients {
  s3: S3Sender;
  /** Only `send` is used; the type is the SDK's because the SFN port factories take it. */
  sfn: SFNClient;
  readSecret: (arn: string) => Promise<string>;
}

/** How long one agent call may take from a Lambda (the step's own timeout is longer). */
export const AGENT_DEADLINE_MS = 30_000;

/**
 * A provider over a fixed inventory of real hosts running `gangway agent`: it cannot add slices
 * (`requestSlices` does nothing; a job short of slices waits) nor delete them (they are not ours).
 */
export function staticSliceProvider(slices: readonly ClusterSlice[]): SliceProvider {
  return {
    listSlices: async () => slices.map((s) => ({ ...s, hosts: s.hosts.map((h) => ({ ...h })) })),
    requestSlices: async () => {},
    releaseSlices: async () => {},
  };
}

/** The text of an S3 object the stack published as an asset. */
async function readObject(s3: S3Sender, location: { bucket: string; key: string }): Promise<string> {
  const out = await s3.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }));
  return out.Body ? await out.Body.transformToString("utf8") : "";
}

/** The inventory the stack published as an S3 object, or none when the stack was given none. */
export async function readInventory(
  s3: S3Sender,
  location: { bucket: string; key: string } | undefined,
): Promise<ClusterSlice[]> {
  if (!location) return [];
  return parseInventory(await readObject(s3, location), `s3://${location.bucket}/${location.key}`);
}

/** The agent connector: its bearer token from Secrets Manager, the agents' CA (TLS) from S3 when given. */
export async function agentConnector(config: LambdaConfig, clients: AwsClients) {
  const [token, ca] = await Promise.all([
    clients.readSecret(required(config.agentTokenSecretArn, LAMBDA_ENV.agentTokenSecretArn)),
    config.agentCa ? readObject(clients.s3, config.agentCa) : undefined,
  ]);
  return createAgentConnector({ token, deadlineMs: AGENT_DEADLINE_MS, tls: ca ? { ca } : undefined });
}

/** The results store in the stack's bucket. */
export function resultsStore(config: LambdaConfig, clients: AwsClients) {
  return createS3ResultsStore({
    client: clients.s3,
    bucket: required(config.resultsBucket, LAMBDA_ENV.resultsBucket),
  });
}

/**
 * Build the deps step `step` needs — and nothing else, so a step that has no grant for a secret
 * or the inventory never asks for it. Called once per Lambda container (cold start).
 */
export async function buildStepDeps<S extends StepName>(
  step: S,
  config: LambdaConfig,
  clients: AwsClients,
  log: (line: string) => void = (line) => console.log(line),
): Promise<StepDeps<S>> {
  const needs = new Set<string>(STEP_NEEDS[step]);
  const deps: Partial<ControlPlaneDeps> = { log };
  if (needs.has("clock")) deps.clock = systemClock;
  if (needs.has("store")) deps.store = resultsStore(config, clients);
  if (needs.has("tokens")) deps.tokens = createSfnTaskTokens(clients.sfn);
  if (needs.has("executions")) deps.executions = createSfnExecutionsApi(clients.sfn);
  if (needs.has("provider"))
    deps.provider = staticSliceProvider(await readInventory(clients.s3, config.inventory));
  if (needs.has("agents")) deps.agents = await agentConnector(config, clients);
  return deps as StepDeps<S>;
}
