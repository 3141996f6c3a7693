import { readFileSync } from "node:fs";

/** Name of the state machine every stack registers. */
export const STATE_MACHINE_NAME = "gangway-multislice";

/** The functions the definition invokes, by substitution name. */
export const FUNCTION_SUBSTITUTIONS = {
  InitFunctionArn: "init",
  ScaleSlicesFunctionArn: "scale-slices",
  PreparePlacementFunctionArn: "prepare-placement",
  LaunchHostsFunctionArn: "launch-hosts",
  AwaitAttemptFunctionArn: "await-attempt",
  CheckScaleUpFunctionArn: "check-scale-up",
  CheckResultsFunctionArn: "check-results",
  TeardownFunctionArn: "teardown",
  ContinueExecutionFunctionArn: "continue-execution",
} as const;
export type FunctionSubstitution = keyof typeof FUNCTION_SUBSTITUTIONS;

const DEFINITION_URL = new URL("../statemachines/gangway-multislice.asl.json", import.meta.url);

/** The definition's text as committed, with `${…}` placeholders. */
export function definitionTemplate(): string {
  return readFileSync(DEFINITION_URL, "utf8");
}

/**
 * The definition with every `${Name}` replaced — the only way environments differ (AWS, LocalStack,
 * embedded). An unknown or missing substitution is an error, never left in place.
 *
 * @example
 * renderDefinition(functionArns("arn:aws:lambda:us-east-1:000000000000:function:gangway-"))
 */
export function renderDefinition(substitutions: Readonly<Record<string, string>>): string {
  const text = definitionTemplate();
  const missing = new Set<string>();
  const rendered = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    const value = substitutions[name];
    if (value === undefined) {
      missing.add(name);
      return "";
    }
    return value;
  });
  if (missing.size > 0) throw new Error(`definition substitutions missing: ${[...missing].join(", ")}`);
  return rendered;
}

/** Substitutions naming each function `${prefix}${function-name}` (an ARN prefix, or bare names). */
export function functionArns(prefix: string): Record<FunctionSubstitution, string> {
  return Object.fromEntries(
    Object.entries(FUNCTION_SUBSTITUTIONS).map(([sub, fn]) => [sub, `${prefix}${fn}`]),
  ) as Record<FunctionSubstitution, string>;
}
