import { z } from "zod";
import { GangwayError } from "../../../core/errors.js";
import { toValidationIssues, type ValidationIssue } from "../../../core/validation.js";
import { LAMBDA_ENV, STEP_NAMES, type StepName } from "../steps.js";

/** A Lambda's environment lacks (or garbles) what the stack should have set. */
export class InvalidLambdaConfig extends GangwayError {
  override readonly name = "InvalidLambdaConfig";
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[]) {
    super(`invalid Lambda environment: ${issues.map((i) => i.message).join("; ")}`, { issues });
    this.issues = issues;
  }
}

const arn = z.string().regex(/^arn:[\w-]+:[\w-]+:[\w-]*:\d*:.+$/, "an ARN");
const optional = (s: z.ZodType) => s.optional();
const list = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== ""),
  )
  .optional();

const ConfigSchema = z.object({
  [LAMBDA_ENV.step]: optional(z.enum(STEP_NAMES as [StepName, ...StepName[]])),
  [LAMBDA_ENV.resultsBucket]: optional(z.string().min(3)),
  [LAMBDA_ENV.agentTokenSecretArn]: optional(arn),
  [LAMBDA_ENV.webhookSecretArn]: optional(arn),
  [LAMBDA_ENV.apiTokenSecretArn]: optional(arn),
  [LAMBDA_ENV.inventoryBucket]: optional(z.string().min(3)),
  [LAMBDA_ENV.inventoryKey]: optional(z.string().min(1)),
  [LAMBDA_ENV.agentCaBucket]: optional(z.string().min(3)),
  [LAMBDA_ENV.agentCaKey]: optional(z.string().min(1)),
  [LAMBDA_ENV.stateMachineArn]: optional(arn),
  [LAMBDA_ENV.pushEmails]: list,
  [LAMBDA_ENV.pushAudience]: optional(z.string().url()),
});

/** Where a Lambda finds things, as the stack configured it. Each field is set only where needed. */
export interface LambdaConfig {
  step?: StepName | undefined;
  resultsBucket?: string | undefined;
  agentTokenSecretArn?: string | undefined;
  webhookSecretArn?: string | undefined;
  apiTokenSecretArn?: string | undefined;
  inventory?: { bucket: string; key: string } | undefined;
  /** The CA (PEM) that signed the agents' TLS certificates; none: agents are dialled in plain text. */
  agentCa?: { bucket: string; key: string } | undefined;
  stateMachineArn?: string | undefined;
  pushEmails: string[];
  pushAudience?: string | undefined;
}

/** Read the configuration from `env`; throws {@link InvalidLambdaConfig} naming each bad variable. */
export function readLambdaConfig(env: Record<string, string | undefined>): LambdaConfig {
  const picked = Object.fromEntries(
    Object.values(LAMBDA_ENV)
      .filter((name) => env[name] !== undefined && env[name] !== "")
      .map((name) => [name, env[name]]),
  );
  const parsed = ConfigSchema.safeParse(picked, { reportInput: true });
  if (!parsed.success) throw new InvalidLambdaConfig(toValidationIssues(parsed.error.issues));
  const c = parsed.data as Record<string, unknown>;
  const s = (name: string) => c[name] as string | undefined;
  const pair = (bucketVar: string, keyVar: string) => {
    const bucket = s(bucketVar);
    const key = s(keyVar);
    if ((bucket === undefined) !== (key === undefined)) {
      const missing = bucket === undefined ? bucketVar : keyVar;
      const message = `${missing}: expected set with its pair, got nothing`;
      throw new InvalidLambdaConfig([
        { path: missing, expected: "set with its pair", got: "nothing", message },
      ]);
    }
    return bucket !== undefined && key !== undefined ? { bucket, key } : undefined;
  };
  return {
    step: c[LAMBDA_ENV.step] as StepName | undefined,
    resultsBucket: s(LAMBDA_ENV.resultsBucket),
    agentTokenSecretArn: s(LAMBDA_ENV.agentTokenSecretArn),
    webhookSecretArn: s(LAMBDA_ENV.webhookSecretArn),
    apiTokenSecretArn: s(LAMBDA_ENV.apiTokenSecretArn),
    inventory: pair(LAMBDA_ENV.inventoryBucket, LAMBDA_ENV.inventoryKey),
    agentCa: pair(LAMBDA_ENV.agentCaBucket, LAMBDA_ENV.agentCaKey),
    stateMachineArn: s(LAMBDA_ENV.stateMachineArn),
    pushEmails: (c[LAMBDA_ENV.pushEmails] as string[] | undefined) ?? [],
    pushAudience: s(LAMBDA_ENV.pushAudience),
  };
}

/** `value`, or an {@link InvalidLambdaConfig} naming `variable` when the stack did not set it. */
export function required<T>(value: T | undefined, variable: string): T {
  if (value === undefined)
    throw new InvalidLambdaConfig([
      { path: variable, expected: "set", got: "nothing", message: `${variable}: expected set, got nothing` },
    ]);
  return value;
}
