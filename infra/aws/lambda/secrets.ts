import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GangwayError } from "../../../core/errors.js";
import { once } from "./step-handler.js";

/** A secret that exists but holds no string (binary, or empty). */
export class SecretUnusable extends GangwayError {
  override readonly name = "SecretUnusable";
}

/** The one call of the Secrets Manager client made here. */
export type SecretsSender = Pick<SecretsManagerClient, "send">;

/**
 * A reader of Secrets Manager secrets that fetches each ARN once per Lambda container (cold
 * start) and shares the answer; a failed fetch is not kept, so the next invocation tries again.
 */
export function createSecretReader(client: SecretsSender): (arn: string) => Promise<string> {
  const readers = new Map<string, () => Promise<string>>();
  return (arn) => {
    let read = readers.get(arn);
    if (!read) {
      read = once(async () => {
        const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
        const value = out.SecretString?.trim();
        if (!value) throw new SecretUnusable(`secret ${arn} holds no string`, { arn });
        return value;
      });
      readers.set(arn, read);
    }
    return read();
  };
}
