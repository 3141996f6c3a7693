import { LAMBDA_ENV } from "../steps.js";
import { buildStepDeps } from "./aws-deps.js";
import { lambdaClients } from "./clients.js";
import { readLambdaConfig, required } from "./config.js";
import { buildStepApp } from "./step-apps.js";
import { createStepHandler, once } from "./step-handler.js";

/**
 * Lambda entry of every step function (one bundle; `GANGWAY_STEP` says which step this is).
 * Deps are built once per container on first invocation: the agent token is read from Secrets
 * Manager then, and the inventory from S3.
 */
const app = once(async () => {
  const config = readLambdaConfig(process.env);
  const step = required(config.step, LAMBDA_ENV.step);
  return buildStepApp(step, await buildStepDeps(step, config, lambdaClients()));
});

/** The Lambda handler: the raw Step Functions payload in, the step's result out (or a named error). */
export const handler = createStepHandler(app);
