import { FUNCTION_SUBSTITUTIONS, type FunctionSubstitution } from "../state-machine.js";

/**
 * The AWS deployment's shared vocabulary: which step functions exist, what each needs from the
 * world, and the environment variables through which the stack tells a Lambda where things are.
 * The stack grants IAM from {@link STEP_NEEDS}; the Lambda builds only the deps listed there, and
 * the step table in `lambda/step-apps.ts` fails to compile if a step's factory wants more.
 */

/** A step function's name (`init`, `scale-slices`, …), as the definition's substitutions name them. */
export type StepName = (typeof FUNCTION_SUBSTITUTIONS)[FunctionSubstitution];

/** Every step, in the definition's order. */
export const STEP_NAMES = Object.values(FUNCTION_SUBSTITUTIONS) as StepName[];

/** The dependency each step is built with (keys of `ControlPlaneDeps`; clock and log are free). */
export const STEP_NEEDS = {
  init: ["store", "clock"],
  "scale-slices": ["provider", "agents", "store", "clock"],
  "prepare-placement": ["agents", "store", "clock"],
  "launch-hosts": ["agents", "store", "clock"],
  "await-attempt": ["store", "tokens"],
  "check-scale-up": ["provider", "agents", "store", "clock"],
  "check-results": ["agents", "store", "clock"],
  teardown: ["agents", "store", "provider", "clock"],
  "continue-execution": ["executions", "store", "clock"],
} as const satisfies Record<StepName, readonly string[]>;

/** Whether step `step` is built with dependency `need`. */
export function stepNeeds(step: StepName, need: string): boolean {
  return (STEP_NEEDS[step] as readonly string[]).includes(need);
}

/** Environment variables the stack sets and the Lambdas read. Secrets travel as ARNs, never values. */
export const LAMBDA_ENV = {
  step: "GANGWAY_STEP",
  resultsBucket: "GANGWAY_RESULTS_BUCKET",
  agentTokenSecretArn: "GANGWAY_AGENT_TOKEN_SECRET_ARN",
  webhookSecretArn: "GANGWAY_WEBHOOK_SECRET_ARN",
  apiTokenSecretArn: "GANGWAY_API_TOKEN_SECRET_ARN",
  inventoryBucket: "GANGWAY_INVENTORY_BUCKET",
  inventoryKey: "GANGWAY_INVENTORY_KEY",
  agentCaBucket: "GANGWAY_AGENT_CA_BUCKET",
  agentCaKey: "GANGWAY_AGENT_CA_KEY",
  stateMachineArn: "GANGWAY_STATE_MACHINE_ARN",
  pushEmails: "GANGWAY_PUSH_EMAILS",
  pushAudience: "GANGWAY_PUSH_AUDIENCE",
} as const;

/** The stack names CloudFormation accepts (and short enough for `<stack>-continue-execution`). */
export const STACK_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9-]{0,37}$/;
