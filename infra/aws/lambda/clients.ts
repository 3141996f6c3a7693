import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { createSfnClient } from "../../../functions/clients/sfn.js";
import type { AwsClients } from "./aws-deps.js";
import { createSecretReader } from "./secrets.js";

/**
 * The real AWS clients of a Lambda: region and credentials from the Lambda environment, and on
 * LocalStack its endpoint too (LocalStack sets `AWS_ENDPOINT_URL` in its Lambdas' environment).
 */
export function lambdaClients(): AwsClients {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  const s3 = new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {});
  const sfn = createSfnClient({ endpoint });
  return { s3, sfn, readSecret: createSecretReader(new SecretsManagerClient(endpoint ? { endpoint } : {})) };
}
