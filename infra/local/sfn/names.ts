/** Names and ARNs as Step Functions forms and checks them. */
import { hasNameCharactersOnly } from "../../../core/execution-name.js";
import { apiErrors } from "./errors.js";

/** Throw `InvalidName` unless `name` is 1–80 characters without forbidden characters. */
export function checkName(name: string, what: "execution" | "state machine"): void {
  if (name.length < 1 || name.length > 80)
    throw apiErrors.invalidName(`Invalid Name: '${name}' (${what} names must be 1 to 80 characters long)`);
  if (!hasNameCharactersOnly(name)) throw apiErrors.invalidName(`Invalid Name: '${name}'`);
}

/** `arn:aws:states:<region>:<account>:stateMachine:<name>` */
export function stateMachineArn(region: string, account: string, name: string): string {
  return `arn:aws:states:${region}:${account}:stateMachine:${name}`;
}

/** `arn:aws:states:<region>:<account>:execution:<machine>:<name>` */
export function executionArn(region: string, account: string, machine: string, name: string): string {
  return `arn:aws:states:${region}:${account}:execution:${machine}:${name}`;
}

/** Throw `InvalidArn` unless `arn` is a state-machine ARN; returns the machine name. */
export function parseStateMachineArn(arn: string): string {
  const m = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:([^:]+)$/.exec(arn);
  if (!m) throw apiErrors.invalidArn(`Invalid Arn: 'Resource type not valid in this context: ${arn}'`);
  return m[1] as string;
}

/** Throw `InvalidArn` unless `arn` is an execution ARN. */
export function parseExecutionArn(arn: string): { machine: string; name: string } {
  const m = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:([^:]+):([^:]+)$/.exec(arn);
  if (!m) throw apiErrors.invalidArn(`Invalid Arn: 'Resource type not valid in this context: ${arn}'`);
  return { machine: m[1] as string, name: m[2] as string };
}

/** Throw `InvalidArn` unless `arn` looks like an IAM role ARN. */
export function checkRoleArn(arn: string): void {
  if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/.test(arn)) throw apiErrors.invalidArn(`Invalid Arn: '${arn}'`);
}
