import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { S3Client } from "@aws-sdk/client-s3";
import { STSClient } from "@aws-sdk/client-sts";
import { GangwayError } from "../../core/errors.js";
import type { DeployClients } from "./deploy.js";

/** LocalStack's default edge endpoint. */
export const LOCALSTACK_ENDPOINT = "http://localhost:4566";

/** Where a deployment goes: LocalStack at an endpoint, or AWS with the caller's credentials. */
export type DeployTarget =
  | { kind: "localstack"; endpoint: string; region: string }
  | { kind: "aws"; region: string };

/** LocalStack did not answer its health check at the endpoint. */
export class LocalStackUnreachable extends GangwayError {
  override readonly name = "LocalStackUnreachable";
}

/** The services a gangway stack needs from LocalStack. */
export const LOCALSTACK_SERVICES = [
  "cloudformation",
  "s3",
  "lambda",
  "stepfunctions",
  "secretsmanager",
  "iam",
  "logs",
  "sts",
] as const;

/**
 * Check that LocalStack answers at `endpoint` (`/_localstack/health`) and runs the services a
 * gangway stack needs; throws {@link LocalStackUnreachable} saying how to start it otherwise.
 */
export async function probeLocalStack(
  endpoint: string,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<{ services: Record<string, string>; version?: string | undefined }> {
  const url = `${endpoint.replace(/\/+$/, "")}/_localstack/health`;
  let body: { services?: Record<string, string>; version?: string };
  try {
    const res = await (options.fetch ?? fetch)(url, {
      signal: AbortSignal.timeout(options.timeoutMs ?? 3000),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = (await res.json()) as typeof body;
  } catch (e) {
    throw new LocalStackUnreachable(
      `LocalStack does not answer at ${endpoint} (${(e as Error).message}): start it with \`localstack start\` (it needs Docker), or pass --endpoint`,
      { endpoint },
    );
  }
  const services = body.services ?? {};
  const missing = LOCALSTACK_SERVICES.filter((s) => !["running", "available"].includes(services[s] ?? ""));
  if (missing.length > 0)
    throw new LocalStackUnreachable(
      `LocalStack at ${endpoint} does not offer ${missing.join(", ")} (${missing.map((s) => `${s}: ${services[s] ?? "absent"}`).join(", ")})`,
      { endpoint, missing },
    );
  return { services, version: body.version };
}

/** The AWS clients of a deployment to `target` (LocalStack: its endpoint and dummy credentials). */
export function createDeployClients(target: DeployTarget): DeployClients & { destroy(): void } {
  const base =
    target.kind === "localstack"
      ? {
          region: target.region,
          endpoint: target.endpoint,
          credentials: {
            accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "test",
            secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "test",
          },
        }
      : { region: target.region };
  const cloudFormation = new CloudFormationClient(base);
  const s3 = new S3Client({ ...base, forcePathStyle: target.kind === "localstack" });
  const sts = new STSClient(base);
  return {
    cloudFormation,
    s3,
    sts,
    destroy() {
      cloudFormation.destroy();
      s3.destroy();
      sts.destroy();
    },
  };
}

/** The URL CloudFormation fetches an uploaded template from. */
export function templateUrlFor(target: DeployTarget): (bucket: string, key: string) => string {
  if (target.kind === "localstack")
    return (bucket, key) => `${target.endpoint.replace(/\/+$/, "")}/${bucket}/${key}`;
  return (bucket, key) => `https://${bucket}.s3.${target.region}.amazonaws.com/${key}`;
}
