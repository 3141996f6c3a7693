import {
  ArnFormat,
  CfnOutput,
  CliCredentialsStackSynthesizer,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
} from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import * as secrets from "aws-cdk-lib/aws-secretsmanager";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import {
  definitionTemplate,
  FUNCTION_SUBSTITUTIONS,
  type FunctionSubstitution,
  STATE_MACHINE_NAME,
} from "../state-machine.js";
import { LAMBDA_ENV, STEP_NAMES, type StepName, stepNeeds } from "./steps.js";

/** Where the stack's Lambda code comes from: one directory per bundle, each with `index.mjs`. */
export interface LambdaCodeDirs {
  step: string;
  api: string;
}

/** Options of {@link GangwayStack}. */
export interface GangwayStackProps extends StackProps {
  /** Bundled code (see `bundle.ts`); tests may point at tiny pre-built directories. */
  code: LambdaCodeDirs;
  /** An inventory (JSON or YAML) of the hosts running `gangway agent`; none: no slices to use. */
  inventoryFile?: string | undefined;
  /** The CA certificate (PEM) that signed the agents' TLS certificates; none: plain-text gRPC. */
  agentCaFile?: string | undefined;
  /** Service accounts whose Google-signed Pub/Sub pushes the API accepts; none: pushes refused. */
  pushServiceAccounts?: readonly string[] | undefined;
  /** Audience of push tokens, when not the Function URL itself (e.g. behind a custom domain). */
  pushAudience?: string | undefined;
}

/** The S3 bucket assets are published to (the deployer creates it when missing). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation placeholders, filled in at publish time.
export const ASSETS_BUCKET = "gangway-assets-${AWS::AccountId}-${AWS::Region}";

/** The state machine's name in a stack: the plain name in the stack `gangway`, prefixed in others. */
export function stateMachineNameFor(stackName: string): string {
  return stackName === "gangway" ? STATE_MACHINE_NAME : `${stackName}-${STATE_MACHINE_NAME}`;
}

/** Lambda function name of a step or the API in a stack (`gangway-init` …, as the embedded engine names them). */
export const lambdaName = (stackName: string, fn: StepName | "api") => `${stackName}-${fn}`;

/**
 * The Lambda runtime. Node 22: AWS deprecated nodejs20.x on 2026-04-30 (creation stops
 * 2027-02-01); the bundles target Node 20 syntax, so they run unchanged on it.
 */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_22_X;

/**
 * How long a step may run: Lambda's maximum. Teardown waits out each host's grace period
 * (`cancelGraceSeconds`, which a job may raise) plus the agent's own minute; Lambda bills only
 * the time used, so the ceiling costs nothing on the ordinary path.
 */
const STEP_TIMEOUT = Duration.minutes(15);
const API_TIMEOUT = Duration.seconds(30);

/**
 * gangway on AWS: the committed state machine definition (its `${…FunctionArn}` placeholders
 * filled in by CloudFormation's DefinitionSubstitutions, the text otherwise untouched), each step
 * function and the API as Node 22 Lambdas, the API behind a Function URL, a results bucket, and
 * the webhook secret, agent token and API token in Secrets Manager. Each function has its own
 * role with only what its step needs (see STEP_NEEDS); no statement names a `*` action.
 */
export class GangwayStack extends Stack {
  readonly functions: Record<StepName, lambda.Function>;
  readonly api: lambda.Function;
  readonly stateMachine: sfn.StateMachine;
  readonly results: s3.Bucket;
  readonly secrets: { webhook: secrets.Secret; agentToken: secrets.Secret; apiToken: secrets.Secret };

  constructor(scope: Construct, id: string, props: GangwayStackProps) {
    super(scope, id, {
      ...props,
      synthesizer:
        props.synthesizer ??
        new CliCredentialsStackSynthesizer({ fileAssetsBucketName: ASSETS_BUCKET, bucketPrefix: `${id}/` }),
    });
    const name = this.stackName;
    const smName = stateMachineNameFor(name);
    // Built from the name, not the resource: functions that start executions would otherwise
    // depend on the machine that depends on them.
    const stateMachineArn = this.formatArn({
      service: "states",
      resource: "stateMachine",
      resourceName: smName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const executionArns = this.formatArn({
      service: "states",
      resource: "execution",
      resourceName: `${smName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    this.results = new s3.Bucket(this, "Results", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const secret = (sid: string, what: string) =>
      new secrets.Secret(this, sid, {
        secretName: `${name}/${what}`,
        description: `gangway ${what} (stack ${name})`,
        generateSecretString: { passwordLength: 48, excludePunctuation: true },
      });
    this.secrets = {
      webhook: secret("WebhookSecret", "webhook-secret"),
      agentToken: secret("AgentToken", "agent-token"),
      apiToken: secret("ApiToken", "api-token"),
    };
    const inventory = props.inventoryFile
      ? new Asset(this, "Inventory", { path: props.inventoryFile })
      : undefined;
    const agentCa = props.agentCaFile ? new Asset(this, "AgentCa", { path: props.agentCaFile }) : undefined;
    const objectArn = (a: Asset) => `arn:${this.partition}:s3:::${a.s3BucketName}/${a.s3ObjectKey}`;

    const stepCode = lambda.Code.fromAsset(props.code.step);
    const fnOf = (fnId: string, fnName: string, code: lambda.Code, timeout: Duration) => {
      const role = new iam.Role(this, `${fnId}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `gangway ${fnName}: only what this function calls`,
      });
      const logGroup = new logs.LogGroup(this, `${fnId}Logs`, {
        logGroupName: `/aws/lambda/${fnName}`,
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
          resources: [logGroup.logGroupArn],
        }),
      );
      const fn = new lambda.Function(this, fnId, {
        functionName: fnName,
        runtime: LAMBDA_RUNTIME,
        architecture: lambda.Architecture.X86_64,
        handler: "index.handler",
        code,
        role,
        logGroup,
        timeout,
        memorySize: 512,
        environment: {
          NODE_OPTIONS: "--enable-source-maps",
          [LAMBDA_ENV.resultsBucket]: this.results.bucketName,
        },
      });
      return { fn, role };
    };
    const allow = (role: iam.Role, actions: string[], resources: string[]) =>
      role.addToPolicy(new iam.PolicyStatement({ actions, resources }));
    const allowStore = (role: iam.Role) => {
      allow(role, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], [this.results.arnForObjects("*")]);
      allow(role, ["s3:ListBucket"], [this.results.bucketArn]);
    };
    const allowSecret = (fn: lambda.Function, role: iam.Role, env: string, s: secrets.Secret) => {
      fn.addEnvironment(env, s.secretArn);
      allow(role, ["secretsmanager:GetSecretValue"], [s.secretArn]);
    };
    const allowAsset = (fn: lambda.Function, role: iam.Role, a: Asset, bucketEnv: string, keyEnv: string) => {
      fn.addEnvironment(bucketEnv, a.s3BucketName);
      fn.addEnvironment(keyEnv, a.s3ObjectKey);
      allow(role, ["s3:GetObject"], [objectArn(a)]);
    };
    const allowAgents = (fn: lambda.Function, role: iam.Role) => {
      allowSecret(fn, role, LAMBDA_ENV.agentTokenSecretArn, this.secrets.agentToken);
      if (agentCa) allowAsset(fn, role, agentCa, LAMBDA_ENV.agentCaBucket, LAMBDA_ENV.agentCaKey);
    };
    const allowTokens = (role: iam.Role) =>
      allow(
        role,
        ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
        [stateMachineArn],
      );

    const functions = {} as Record<StepName, lambda.Function>;
    for (const step of STEP_NAMES) {
      const id = step.replace(/(^|-)(\w)/g, (_, _d: string, c: string) => c.toUpperCase());
      const { fn, role } = fnOf(`${id}Function`, lambdaName(name, step), stepCode, STEP_TIMEOUT);
      fn.addEnvironment(LAMBDA_ENV.step, step);
      if (stepNeeds(step, "store")) allowStore(role);
      if (stepNeeds(step, "agents")) allowAgents(fn, role);
      if (stepNeeds(step, "tokens")) allowTokens(role);
      if (stepNeeds(step, "executions")) allow(role, ["states:StartExecution"], [stateMachineArn]);
      if (stepNeeds(step, "provider") && inventory)
        allowAsset(fn, role, inventory, LAMBDA_ENV.inventoryBucket, LAMBDA_ENV.inventoryKey);
      functions[step] = fn;
    }
    this.functions = functions;

    const api = fnOf(
      "ApiFunction",
      lambdaName(name, "api"),
      lambda.Code.fromAsset(props.code.api),
      API_TIMEOUT,
    );
    this.api = api.fn;
    api.fn.addEnvironment(LAMBDA_ENV.stateMachineArn, stateMachineArn);
    if (props.pushServiceAccounts?.length)
      api.fn.addEnvironment(LAMBDA_ENV.pushEmails, props.pushServiceAccounts.join(","));
    if (props.pushAudience) api.fn.addEnvironment(LAMBDA_ENV.pushAudience, props.pushAudience);
    allowStore(api.role);
    allowTokens(api.role);
    allowAgents(api.fn, api.role);
    allowSecret(api.fn, api.role, LAMBDA_ENV.webhookSecretArn, this.secrets.webhook);
    allowSecret(api.fn, api.role, LAMBDA_ENV.apiTokenSecretArn, this.secrets.apiToken);
    allow(api.role, ["states:StartExecution", "states:ListExecutions"], [stateMachineArn]);
    allow(api.role, ["states:DescribeExecution", "states:GetExecutionHistory"], [executionArns]);
    const url = api.fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });

    const machineRole = new iam.Role(this, "StateMachineRole", {
      assumedBy: new iam.ServicePrincipal("states.amazonaws.com"),
      description: "gangway state machine: invokes the step functions, nothing else",
    });
    allow(
      machineRole,
      ["lambda:InvokeFunction"],
      STEP_NAMES.map((s) => functions[s].functionArn),
    );
    const substitutions = Object.fromEntries(
      (Object.entries(FUNCTION_SUBSTITUTIONS) as Array<[FunctionSubstitution, StepName]>).map(
        ([sub, step]) => [sub, functions[step].functionArn],
      ),
    );
    this.stateMachine = new sfn.StateMachine(this, "StateMachine", {
      stateMachineName: smName,
      // The committed text as is: CloudFormation fills in the function ARNs, nothing else differs.
      definitionBody: sfn.DefinitionBody.fromString(definitionTemplate()),
      definitionSubstitutions: substitutions,
      role: machineRole,
    });

    const out = (oid: string, value: string, description: string) =>
      new CfnOutput(this, oid, { value, description });
    out("ApiUrl", url.url, "The API: webhook, jobs, console, Pub/Sub pushes");
    out("StateMachineArn", this.stateMachine.stateMachineArn, "The gang-scheduling state machine");
    out("ResultsBucket", this.results.bucketName, "Results store");
    out("WebhookSecretArn", this.secrets.webhook.secretArn, "HMAC secret of POST /v1/jobs");
    out("AgentTokenSecretArn", this.secrets.agentToken.secretArn, "Bearer token the host agents accept");
    out(
      "ApiTokenSecretArn",
      this.secrets.apiToken.secretArn,
      "Bearer token of reads, cancels and the console",
    );
  }
}
