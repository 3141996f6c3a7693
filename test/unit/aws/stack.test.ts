import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STEP_NAMES, type StepName } from "../../../infra/aws/steps.js";
import {
  definitionTemplate,
  FUNCTION_SUBSTITUTIONS,
  functionArns,
  renderDefinition,
} from "../../../infra/state-machine.js";
import { synthesizeWithTinyCode } from "./synth-fixture.js";

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };
type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";
const PUSHER = "gangway-push@proj.iam.gserviceaccount.com";

let dir: string;
let template: Template;
let resources: Record<string, Resource>;

/**
 * Resolve the intrinsic functions this template uses (Ref, Fn::GetAtt, Fn::Join, Fn::Sub of
 * pseudo parameters) to the values CloudFormation would give them in one account and region.
 */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (value === null || typeof value !== "object") return value;
  const v = value as Record<string, unknown>;
  if ("Ref" in v) {
    const ref = String(v.Ref);
    const pseudo: Record<string, string> = {
      "AWS::Partition": "aws",
      "AWS::Region": REGION,
      "AWS::AccountId": ACCOUNT,
      "AWS::URLSuffix": "amazonaws.com",
    };
    if (pseudo[ref]) return pseudo[ref];
    const r = resources[ref];
    if (!r) throw new Error(`Ref to unknown ${ref}`);
    if (r.Type === "AWS::SecretsManager::Secret")
      return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${ref}`;
    if (r.Type === "AWS::S3::Bucket") return `bucket-${ref.toLowerCase()}`;
    if (r.Type === "AWS::Logs::LogGroup") return String(r.Properties.LogGroupName);
    return `ref-${ref}`;
  }
  if ("Fn::GetAtt" in v) {
    const [id, attr] = v["Fn::GetAtt"] as [string, string];
    const r = resources[id];
    if (!r) throw new Error(`GetAtt of unknown ${id}`);
    if (r.Type === "AWS::Lambda::Function" && attr === "Arn")
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${String(r.Properties.FunctionName)}`;
    if (r.Type === "AWS::Logs::LogGroup" && attr === "Arn")
      return `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${String(r.Properties.LogGroupName)}:*`;
    if (r.Type === "AWS::S3::Bucket" && attr === "Arn") return `arn:aws:s3:::bucket-${id.toLowerCase()}`;
    if (r.Type === "AWS::IAM::Role" && attr === "Arn") return `arn:aws:iam::${ACCOUNT}:role/${id}`;
    return `getatt-${id}-${attr}`;
  }
  if ("Fn::Join" in v) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map((p) => String(resolve(p))).join(sep);
  }
  if ("Fn::Sub" in v)
    return String(v["Fn::Sub"]).replace(/\$\{AWS::(AccountId|Region)\}/g, (_, p: string) =>
      p === "Region" ? REGION : ACCOUNT,
    );
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
}

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const fnByName = (name: string) => {
  const found = ofType("AWS::Lambda::Function").find(([, r]) => r.Properties.FunctionName === name);
  if (!found) throw new Error(`no function ${name}`);
  return found;
};
/** Every statement of the policies attached to the role of function `name`, resolved. */
function statementsOf(roleId: string): Array<{ actions: string[]; resources: string[] }> {
  return ofType("AWS::IAM::Policy")
    .filter(([, p]) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .map((s) => {
      expect(s.Effect).toBe("Allow");
      const resolved = resolve(s.Resource);
      return {
        actions: [s.Action].flat(),
        resources: (Array.isArray(resolved) ? resolved : [resolved]).map(String),
      };
    });
}
const roleOfFunction = (name: string) =>
  (fnByName(name)[1].Properties.Role as { "Fn::GetAtt": [string, string] })["Fn::GetAtt"][0];
/** action → resources granted to the role of function `name`. */
function grants(name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of statementsOf(roleOfFunction(name)))
    for (const a of s.actions) out.set(a, [...(out.get(a) ?? []), ...s.resources].sort());
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-stack-test-"));
  const { stack } = synthesizeWithTinyCode(dir, { inventory: true, agentCa: true, pushers: [PUSHER] });
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Resource>;
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the synthesized gangway stack", () => {
  it("has each step and the API as a Node 22 Lambda with its own role and log group", () => {
    template.resourceCountIs("AWS::Lambda::Function", STEP_NAMES.length + 1);
    template.resourceCountIs("AWS::IAM::Role", STEP_NAMES.length + 2);
    template.resourceCountIs("AWS::Logs::LogGroup", STEP_NAMES.length + 1);
    template.resourceCountIs("AWS::StepFunctions::StateMachine", 1);
    template.resourceCountIs("AWS::SecretsManager::Secret", 3);
    template.resourceCountIs("AWS::S3::Bucket", 1);
    template.resourceCountIs("AWS::Lambda::Url", 1);
    const names = ofType("AWS::Lambda::Function")
      .map(([, r]) => r.Properties.FunctionName)
      .sort();
    expect(names).toEqual([...STEP_NAMES.map((s) => `gangway-${s}`), "gangway-api"].sort());
    const roles = new Set<string>();
    for (const [, fn] of ofType("AWS::Lambda::Function")) {
      expect(fn.Properties).toMatchObject({ Runtime: "nodejs22.x", Handler: "index.handler" });
      const logGroup = (fn.Properties.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(resources[logGroup]?.Properties.LogGroupName).toBe(`/aws/lambda/${fn.Properties.FunctionName}`);
      roles.add(roleOfFunction(String(fn.Properties.FunctionName)));
    }
    expect(roles.size).toBe(STEP_NAMES.length + 1);
    expect(fnByName("gangway-api")[1].Properties.Timeout).toBe(30);
    for (const step of STEP_NAMES) {
      const env = (
        fnByName(`gangway-${step}`)[1].Properties.Environment as { Variables: Record<string, unknown> }
      ).Variables;
      expect(env.GANGWAY_STEP).toBe(step);
      expect(fnByName(`gangway-${step}`)[1].Properties.Timeout).toBe(900);
    }
  });

  it("holds the committed definition text, its function ARNs filled in by substitution only", () => {
    const [, machine] = ofType("AWS::StepFunctions::StateMachine")[0] ?? [];
    expect(machine?.Properties.DefinitionString).toBe(definitionTemplate());
    const subs = resolve(machine?.Properties.DefinitionSubstitutions) as Record<string, string>;
    expect(Object.keys(subs).sort()).toEqual(Object.keys(FUNCTION_SUBSTITUTIONS).sort());
    // What CloudFormation makes of it: each ${Name} replaced by its value, nothing else touched.
    const deployed = String(machine?.Properties.DefinitionString).replace(
      /\$\{([A-Za-z0-9_]+)\}/g,
      (whole, name: string) => subs[name] ?? whole,
    );
    expect(deployed).toBe(renderDefinition(subs));
    // And each substitution is the function the embedded stack registers under the same name.
    expect(deployed).toBe(
      renderDefinition(functionArns(`arn:aws:lambda:${REGION}:${ACCOUNT}:function:gangway-`)),
    );
    expect(machine?.Properties.StateMachineName).toBe("gangway-multislice");
  });

  it("names no wildcard action and no bare `*` resource in any policy", () => {
    expect(ofType("AWS::IAM::Role").every(([, r]) => r.Properties.ManagedPolicyArns === undefined)).toBe(
      true,
    );
    for (const [, p] of ofType("AWS::IAM::Policy")) {
      for (const s of (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement) {
        for (const a of [s.Action].flat()) expect(a).toMatch(/^[a-z0-9-]+:[A-Za-z]+$/);
        for (const r of [resolve(s.Resource)].flat()) expect(r).not.toBe("*");
      }
    }
  });

  it("lets the state machine invoke the step functions and nothing else", () => {
    const [roleId] = ofType("AWS::IAM::Role").find(([, r]) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes("states.amazonaws.com"),
    ) ?? [""];
    const statements = statementsOf(roleId);
    expect(statements.flatMap((s) => s.actions)).toEqual(["lambda:InvokeFunction"]);
    expect(statements.flatMap((s) => s.resources).sort()).toEqual(
      STEP_NAMES.map((s) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:gangway-${s}`).sort(),
    );
  });

  it("grants each function only what its step calls", () => {
    const sm = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:gangway-multislice`;
    const executions = `arn:aws:states:${REGION}:${ACCOUNT}:execution:gangway-multislice:*`;
    const secret = (id: string) =>
      `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${ofType("AWS::SecretsManager::Secret").find(([k]) => k.startsWith(id))?.[0]}`;
    const bucket = `arn:aws:s3:::bucket-${(ofType("AWS::S3::Bucket")[0]?.[0] ?? "").toLowerCase()}`;
    const logs = (fn: string) => `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/${fn}:*`;
    const env = (fn: string) =>
      resolve((fnByName(fn)[1].Properties.Environment as { Variables: unknown }).Variables) as Record<
        string,
        string
      >;
    const inventoryObject = `arn:aws:s3:::${env("gangway-scale-slices").GANGWAY_INVENTORY_BUCKET}/${env("gangway-scale-slices").GANGWAY_INVENTORY_KEY}`;
    const store = {
      "s3:GetObject": [`${bucket}/*`],
      "s3:PutObject": [`${bucket}/*`],
      "s3:DeleteObject": [`${bucket}/*`],
      "s3:ListBucket": [bucket],
    };
    const agentToken = { "secretsmanager:GetSecretValue": [secret("AgentToken")] };
    const tokens = {
      "states:SendTaskSuccess": [sm],
      "states:SendTaskFailure": [sm],
      "states:SendTaskHeartbeat": [sm],
    };
    const caObject = `arn:aws:s3:::${env("gangway-launch-hosts").GANGWAY_AGENT_CA_BUCKET}/${env("gangway-launch-hosts").GANGWAY_AGENT_CA_KEY}`;
    const read = (...objects: string[]) => ({ "s3:GetObject": [`${bucket}/*`, ...objects].sort() });
    const expected: Record<StepName | "api", Record<string, string[]>> = {
      init: { ...store },
      "scale-slices": { ...store, ...agentToken, ...read(inventoryObject, caObject) },
      "prepare-placement": { ...store, ...agentToken, ...read(caObject) },
      "launch-hosts": { ...store, ...agentToken, ...read(caObject) },
      "await-attempt": { ...store, ...tokens },
      "check-scale-up": { ...store, ...agentToken, ...read(inventoryObject, caObject) },
      "check-results": { ...store, ...agentToken, ...read(caObject) },
      teardown: { ...store, ...agentToken, ...read(inventoryObject, caObject) },
      "continue-execution": { ...store, "states:StartExecution": [sm] },
      api: {
        ...store,
        ...tokens,
        ...read(caObject),
        "secretsmanager:GetSecretValue": [
          secret("AgentToken"),
          secret("WebhookSecret"),
          secret("ApiToken"),
        ].sort(),
        "states:StartExecution": [sm],
        "states:ListExecutions": [sm],
        "states:DescribeExecution": [executions],
        "states:GetExecutionHistory": [executions],
      },
    };
    // The CA is a separate object from the inventory, and both are outside the results bucket.
    expect(new Set([caObject, inventoryObject, `${bucket}/*`]).size).toBe(3);
    for (const [fn, want] of Object.entries(expected)) {
      const name = `gangway-${fn}`;
      const all = { ...want, "logs:CreateLogStream": [logs(name)], "logs:PutLogEvents": [logs(name)] };
      expect(Object.fromEntries(grants(name)), name).toEqual(all);
    }
  });

  it("passes secrets as ARNs only, never their values", () => {
    const secretIds = new Set(ofType("AWS::SecretsManager::Secret").map(([k]) => k));
    for (const [, fn] of ofType("AWS::Lambda::Function")) {
      const vars = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      const text = JSON.stringify(vars);
      expect(text).not.toMatch(/resolve:secretsmanager|SecretString/);
      for (const [k, v] of Object.entries(vars)) {
        if (/SECRET|TOKEN/.test(k)) {
          expect(k).toMatch(/_SECRET_ARN$/);
          expect(secretIds.has((v as { Ref?: string }).Ref ?? "")).toBe(true);
        }
      }
    }
    for (const [, s] of ofType("AWS::SecretsManager::Secret")) {
      expect(s.Properties.SecretString).toBeUndefined();
      expect(s.Properties.GenerateSecretString).toMatchObject({ PasswordLength: 48 });
    }
    const apiEnv = (
      fnByName("gangway-api")[1].Properties.Environment as { Variables: Record<string, unknown> }
    ).Variables;
    expect(apiEnv.GANGWAY_PUSH_EMAILS).toBe(PUSHER);
  });

  it("serves the API on a public Function URL and outputs what a client needs", () => {
    template.hasResourceProperties("AWS::Lambda::Url", { AuthType: "NONE" });
    const url = ofType("AWS::Lambda::Url")[0]?.[1];
    expect(resolve(url?.Properties.TargetFunctionArn)).toBe(
      `arn:aws:lambda:${REGION}:${ACCOUNT}:function:gangway-api`,
    );
    const outputs = template.toJSON().Outputs as Record<string, unknown>;
    expect(Object.keys(outputs).sort()).toEqual(
      [
        "AgentTokenSecretArn",
        "ApiTokenSecretArn",
        "ApiUrl",
        "ResultsBucket",
        "StateMachineArn",
        "WebhookSecretArn",
      ].sort(),
    );
    template.hasResourceProperties("AWS::S3::Bucket", {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
  });

  it("has no dependency cycle CloudFormation would refuse", () => {
    const edges = new Map<string, Set<string>>();
    const refs = (v: unknown, out: Set<string>) => {
      if (Array.isArray(v)) for (const x of v) refs(x, out);
      else if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (typeof o.Ref === "string" && resources[o.Ref]) out.add(o.Ref);
        if (Array.isArray(o["Fn::GetAtt"])) out.add(String((o["Fn::GetAtt"] as unknown[])[0]));
        for (const x of Object.values(o)) refs(x, out);
      }
    };
    for (const [id, r] of Object.entries(resources)) {
      const out = new Set<string>(r.DependsOn ?? []);
      refs(r.Properties, out);
      edges.set(id, out);
    }
    const state = new Map<string, "visiting" | "done">();
    const visit = (id: string, path: string[]) => {
      if (state.get(id) === "done") return;
      if (state.get(id) === "visiting") throw new Error(`cycle: ${[...path, id].join(" → ")}`);
      state.set(id, "visiting");
      for (const next of edges.get(id) ?? []) visit(next, [...path, id]);
      state.set(id, "done");
    };
    for (const id of edges.keys()) visit(id, []);
  });
});
