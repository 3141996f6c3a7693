import { handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { createGooglePushVerifier, googleCertsKeySource } from "../../../functions/api/google-keys.js";
import { createSfnExecutionsApi, createSfnTaskTokens } from "../../../functions/clients/sfn.js";
import { systemClock } from "../../../functions/ports.js";
import definition from "../../../statemachines/gangway-multislice.asl.json" with { type: "json" };
import { LAMBDA_ENV } from "../steps.js";
import { createAwsApiApp, type PushVerifier } from "./api-app.js";
import { type AwsClients, agentConnector, resultsStore } from "./aws-deps.js";
import { lambdaClients } from "./clients.js";
import { type LambdaConfig, readLambdaConfig, required } from "./config.js";
import { once } from "./step-handler.js";

/** Pushes are taken only from the service accounts the stack names, signed by Google. */
function googlePushVerifier(config: LambdaConfig): PushVerifier | undefined {
  if (config.pushEmails.length === 0) return undefined;
  const keys = googleCertsKeySource();
  // One verifier per audience (a Function URL has one or two), so its checked-token cache lasts.
  const byAudience = new Map<string, ReturnType<typeof createGooglePushVerifier>>();
  return (authorization, nowMs, audience) => {
    let verify = byAudience.get(audience);
    if (!verify) {
      verify = createGooglePushVerifier(keys, { audience, emails: config.pushEmails });
      if (byAudience.size >= 8) byAudience.clear();
      byAudience.set(audience, verify);
    }
    return verify(authorization, nowMs);
  };
}

/** The API app with AWS deps: secrets read once per container. */
export async function buildAwsApi(config: LambdaConfig, clients: AwsClients) {
  const [webhookSecret, apiToken, agents] = await Promise.all([
    clients.readSecret(required(config.webhookSecretArn, LAMBDA_ENV.webhookSecretArn)),
    clients.readSecret(required(config.apiTokenSecretArn, LAMBDA_ENV.apiTokenSecretArn)),
    agentConnector(config, clients),
  ]);
  return createAwsApiApp({
    executions: createSfnExecutionsApi(clients.sfn),
    store: resultsStore(config, clients),
    tokens: createSfnTaskTokens(clients.sfn),
    clock: systemClock,
    agents,
    stateMachineArn: required(config.stateMachineArn, LAMBDA_ENV.stateMachineArn),
    definition: JSON.stringify(definition),
    webhookSecret,
    apiToken,
    verifyPush: googlePushVerifier(config),
    pushAudience: config.pushAudience,
    log: (line) => console.log(line),
  });
}

const lambda = once(async () => handle(await buildAwsApi(readLambdaConfig(process.env), lambdaClients())));

/** The Lambda handler behind the Function URL (payload format 2.0). */
export const handler = async (event: LambdaEvent, context: LambdaContext) => (await lambda())(event, context);
