import { rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import {
  CreateStateMachineCommand,
  ListStateMachinesCommand,
  UpdateStateMachineCommand,
} from "@aws-sdk/client-sfn";
import { PubSub } from "@google-cloud/pubsub";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { requireApiToken } from "../../functions/api/api-token.js";
import { routeNotFound } from "../../functions/api/errors.js";
import { createJobsApi } from "../../functions/api/jobs.js";
import { createLaunchRequestsApp } from "../../functions/api/launch-requests.js";
import { createOidcVerifier } from "../../functions/api/oidc.js";
import { createAwaitAttemptApp } from "../../functions/await-attempt/index.js";
import { createCheckResultsApp } from "../../functions/check-results/index.js";
import { createCheckScaleUpApp } from "../../functions/check-scale-up/index.js";
import { createAgentConnector } from "../../functions/clients/agent/connector.js";
import { createDirectoryResultsStore } from "../../functions/clients/results-store.js";
import { createSfnClient, createSfnExecutionsApi, createSfnTaskTokens } from "../../functions/clients/sfn.js";
import { createConsoleApp } from "../../functions/console/index.js";
import { createContinueExecutionApp } from "../../functions/continue-execution/index.js";
import type { ControlPlaneDeps } from "../../functions/deps.js";
import { createIngestApp } from "../../functions/ingest/index.js";
import { createInitApp } from "../../functions/init/index.js";
import { createLaunchHostsApp } from "../../functions/launch-hosts/index.js";
import type { SliceProvider } from "../../functions/ports.js";
import { createPreparePlacementApp } from "../../functions/prepare-placement/index.js";
import { createScaleSlicesApp } from "../../functions/scale-slices/index.js";
import { createTeardownApp } from "../../functions/teardown/index.js";
import { createPubSubEventSink } from "../agent/pubsub-event-sink.js";
import { type DirLock, startHoldingStateDir } from "../dir-lock.js";
import { FUNCTION_SUBSTITUTIONS, renderDefinition, STATE_MACHINE_NAME } from "../state-machine.js";
import { startClusterAdmin } from "./cluster/admin-server.js";
import { createLocalProvider, type LocalProvider, type LocalQuota } from "./cluster/local-provider.js";
import { writeClusterState } from "./cluster/state-file.js";
import { createStaticProvider, staticProviderPort } from "./cluster/static-provider.js";
import { startPubSubEmulator } from "./pubsub/emulator.js";
import { createSfnEngine, type SfnEngine, startSfnServer } from "./sfn/index.js";
import { announceLostHosts, killLeftoverWorkloads } from "./stack-recovery.js";
import {
  ensureTopicsAndPushes,
  PUSH_SERVICE_ACCOUNT,
  persistentSecret,
  providerPort,
} from "./stack-wiring.js";

/** Options of the embedded stack (`gangway up`). */
export interface LocalStackOptions {
  /** Cluster spec of the local provider, e.g. `v4-16x2`. */
  cluster: string;
  /** Where everything durable lives: engine journal, Pub/Sub log, results store, agent work dirs. */
  stateDir: string;
  /** Port of the API (ingest, later webhook and console); 0 picks one. */
  port?: number;
  host?: string;
  projectId?: string;
  /** Time the local autoscaler takes to bring a slice up (and back after a preemption). */
  provisioningDelayMs?: number;
  /** Limits of the local autoscaler (default: none). */
  quota?: LocalQuota;
  /** Continue jobs as new executions past this many history events (tests lower it). */
  historyBudget?: number;
  /** Token the console asks for (default: $GANGWAY_CONSOLE_TOKEN, else the API token, if any; none: open on this machine). */
  consoleToken?: string;
  /** HMAC secret of `POST /v1/jobs` (default: $GANGWAY_WEBHOOK_SECRET, else one generated and kept in the state dir). */
  webhookSecret?: string;
  /**
   * Bearer token of the jobs API's reads and cancels (default: $GANGWAY_API_TOKEN). None on the
   * loopback address: they are open to this machine. Served on any other address, the stack
   * makes one and keeps it in the state dir: a network must not read logs or cancel jobs.
   */
  apiToken?: string;
  /** Directory relative workload paths resolve against (default: the current directory). */
  workloadCwd?: string;
  /**
   * Run on real hosts instead of a local cluster: an inventory file of agents (see
   * docs/static-inventory.md), the agents' bearer token (default: `<stateDir>/agent-token`, made
   * on first start for you to install on the hosts) and the CA of their TLS certificates.
   */
  inventory?: { file: string; agentToken?: string; tlsCa?: string } | undefined;
  /** Port of the Pub/Sub emulator (default: any): a fixed one for agents on other machines. */
  pubsubPort?: number;
  log?: (line: string) => void;
}

/** A running embedded stack. */
export interface LocalStack {
  api: string;
  sfnEndpoint: string;
  pubsubEmulatorHost: string;
  stateMachineArn: string;
  projectId: string;
  /** The local cluster (throws on a stack over an inventory: there is none). */
  readonly provider: LocalProvider;
  engine: SfnEngine;
  webhookSecret: string;
  /** The bearer token the jobs API's reads and cancels need, if they need one. */
  apiToken: string | undefined;
  /** The ready line `gangway up` prints. */
  readyLine(): Record<string, unknown>;
  close(): Promise<void>;
}

/** The API could not listen where asked: `--port` in use (EADDRINUSE), or not ours to bind. */
export class ApiListenFailed extends Error {
  override readonly name = "ApiListenFailed";
  readonly code: string | undefined;
  constructor(host: string, port: number, cause: NodeJS.ErrnoException) {
    const why =
      cause.code === "EADDRINUSE"
        ? `port ${port} is already in use (EADDRINUSE); choose another --port, or 0 for any free one`
        : `${cause.code ?? "error"}: ${cause.message}`;
    super(`the API cannot listen on ${host}:${port}: ${why}`, { cause });
    this.code = cause.code;
  }
}

/** Function name of each step in the engine (`gangway-<step>`), as on AWS Lambda. */
export const functionName = (step: string) => `gangway-${step}`;

/** Whether `host` is this machine's loopback (127.0.0.0/8, ::1, localhost): no network reaches it. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Start the whole control plane on this machine: the Step Functions engine, the Pub/Sub
 * emulator, the step functions and ingest, the results store and a local cluster. Durable in
 * `stateDir`: started again on the same directory, running jobs go on.
 */
export function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  // First, before anything reads or kills: a second stack on this dir would take the first
  // one's workloads for leftovers and kill them, and both would append to the same journals.
  return startHoldingStateDir(
    resolve(options.stateDir),
    "gangway stack",
    "stop it first, or give this one its own --state-dir",
    (lock) => startHolding(options, lock),
  );
}

async function startHolding(options: LocalStackOptions, lock: DirLock): Promise<LocalStack> {
  const log = options.log ?? (() => {});
  const stateDir = resolve(options.stateDir);
  const host = options.host ?? "127.0.0.1";
  const projectId = options.projectId ?? "gangway-local";
  const inventory = options.inventory;
  const token = inventory?.agentToken ?? (await persistentSecret(join(stateDir, "agent-token")));
  const givenSecret = options.webhookSecret ?? process.env.GANGWAY_WEBHOOK_SECRET;
  const webhookSecret = givenSecret ?? (await persistentSecret(join(stateDir, "webhook-secret")));
  const givenApiToken = options.apiToken ?? process.env.GANGWAY_API_TOKEN;
  const apiToken =
    givenApiToken ?? (isLoopback(host) ? undefined : await persistentSecret(join(stateDir, "api-token")));
  const closers: Array<() => Promise<void> | void> = [() => lock.release()];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        log(`close: ${(e as Error).message}`);
      }
    }
  };
  try {
    const emulator = await startPubSubEmulator({
      host,
      port: options.pubsubPort ?? 0,
      stateDir: join(stateDir, "pubsub"),
    });
    closers.push(() => emulator.close());
    const pubsub = new PubSub({ projectId, apiEndpoint: emulator.host, emulatorMode: true });
    closers.push(() => pubsub.close());

    let local: LocalProvider | undefined;
    let slices: SliceProvider;
    if (inventory) {
      slices = staticProviderPort(await createStaticProvider({ inventoryFile: inventory.file }), log);
    } else {
      await killLeftoverWorkloads(join(stateDir, "cluster"), log);
      const provider = await createLocalProvider({
        spec: options.cluster,
        token,
        workDir: join(stateDir, "cluster"),
        eventSink: createPubSubEventSink(pubsub),
        provisioningDelayMs: options.provisioningDelayMs ?? 1000,
        ...(options.quota ? { quota: options.quota } : {}),
        log,
      });
      closers.push(() => provider.close());
      // `gangway preempt <slice> --state-file <state-dir>/cluster.json` reaches the cluster here.
      const admin = await startClusterAdmin(provider, { token, host });
      closers.push(() => admin.close());
      const clusterState = { admin: admin.url, tokenFile: join(stateDir, "agent-token"), pid: process.pid };
      writeClusterState(join(stateDir, "cluster.json"), clusterState);
      local = provider;
      slices = providerPort(provider, log);
    }

    // The engine resumes running executions as it starts, before the functions exist (they need
    // its endpoint): each function name answers once the apps are made, never "not found".
    let functionsReady: (apps: Record<string, Hono>) => void = () => {};
    const functions = new Promise<Record<string, Hono>>((resolve) => {
      functionsReady = resolve;
    });
    const lambdas = Object.fromEntries(
      Object.values(FUNCTION_SUBSTITUTIONS).map((step) => [
        functionName(step),
        {
          fetch: async (request: Request) => {
            const app = (await functions)[step];
            if (!app) throw new Error(`no function ${step}`);
            return app.fetch(request);
          },
        },
      ]),
    );
    const engine = await createSfnEngine({ stateDir: join(stateDir, "sfn"), log, lambdas });
    closers.push(() => engine.close());
    // The engine's API takes no credentials: it serves this machine only, whatever --host says
    // (agents need the Pub/Sub emulator, not the engine; a network reaches jobs through the API).
    const sfnServer = await startSfnServer({ engine, host: isLoopback(host) ? host : "127.0.0.1", port: 0 });
    closers.push(() => sfnServer.close());
    const sfn = createSfnClient({ endpoint: sfnServer.url });
    closers.push(() => sfn.destroy());

    const agents = createAgentConnector({
      token,
      deadlineMs: 30_000,
      tls: inventory?.tlsCa === undefined ? undefined : { ca: inventory.tlsCa },
    });
    closers.push(() => agents.close());
    const executionsApi = createSfnExecutionsApi(sfn);
    const deps: ControlPlaneDeps = {
      provider: slices,
      agents,
      store: createDirectoryResultsStore(join(stateDir, "results")),
      tokens: createSfnTaskTokens(sfn),
      executions: executionsApi,
      clock: { now: () => Date.now() },
      workloadCwd: options.workloadCwd ?? process.cwd(),
      historyBudget: options.historyBudget,
      log,
    };
    const apps = {
      init: createInitApp(deps),
      "scale-slices": createScaleSlicesApp(deps),
      "prepare-placement": createPreparePlacementApp(deps),
      "launch-hosts": createLaunchHostsApp(deps),
      "await-attempt": createAwaitAttemptApp(deps),
      "check-scale-up": createCheckScaleUpApp(deps),
      "check-results": createCheckResultsApp(deps),
      teardown: createTeardownApp(deps),
      "continue-execution": createContinueExecutionApp(deps),
    };
    functionsReady(apps);

    const substitutions = Object.fromEntries(
      Object.entries(FUNCTION_SUBSTITUTIONS).map(([sub, step]) => [sub, functionName(step)]),
    );
    const definition = renderDefinition(substitutions);
    const existing = (await sfn.send(new ListStateMachinesCommand({}))).stateMachines?.find(
      (m) => m.name === STATE_MACHINE_NAME,
    );
    const roleArn = "arn:aws:iam::000000000000:role/gangway-local";
    let stateMachineArn = existing?.stateMachineArn;
    if (stateMachineArn) await sfn.send(new UpdateStateMachineCommand({ stateMachineArn, definition }));
    else {
      stateMachineArn = (
        await sfn.send(new CreateStateMachineCommand({ name: STATE_MACHINE_NAME, definition, roleArn }))
      ).stateMachineArn;
    }
    if (!stateMachineArn) throw new Error("the engine did not answer a state machine ARN");
    const arn = stateMachineArn;

    const api = new Hono();
    // Unknown routes answer {code, message, issues} like every other error of the API.
    api.notFound(routeNotFound);
    // The audience is the API's URL, known once it listens; pushes only come after that.
    let audience = "";
    // One verifier, made once the audience is known, so its checked-token cache lasts.
    let verifyPush: ReturnType<typeof createOidcVerifier> | undefined;
    const checkPush = (authorization: string | undefined) => {
      verifyPush ??= createOidcVerifier(() => emulator.jwks(), {
        issuers: [emulator.tokenIssuer],
        audience,
        emails: [PUSH_SERVICE_ACCOUNT],
      });
      return verifyPush(authorization, Date.now());
    };
    api.route("/", createIngestApp(deps, { authorizePush: async (a) => (await checkPush(a)) === undefined }));
    api.route(
      "/",
      createLaunchRequestsApp({
        executions: executionsApi,
        store: deps.store,
        stateMachineArn: arn,
        authorizePush: checkPush,
        log,
      }),
    );
    if (apiToken !== undefined) api.use("/v1/jobs/*", requireApiToken(apiToken));
    api.route(
      "/",
      createJobsApi({ ...deps, agents, executions: executionsApi, stateMachineArn: arn, webhookSecret }),
    );
    api.route(
      "/",
      createConsoleApp({
        executions: executionsApi,
        store: deps.store,
        stateMachineArn: arn,
        definition,
        // The console shows what the API's reads do: behind the API token too, when there is one.
        token: options.consoleToken ?? process.env.GANGWAY_CONSOLE_TOKEN ?? apiToken,
      }),
    );
    api.get("/health", (c) => c.json({ ok: true }));
    const port = options.port ?? 0;
    const server = await new Promise<Server>((ready, fail) => {
      // A port in use (or not ours to bind) is an 'error' event, not a throw: without a
      // listener it would crash the process, skip the closing below and never settle here.
      const refused = (e: NodeJS.ErrnoException) => fail(new ApiListenFailed(host, port, e));
      const s = serve({ fetch: api.fetch, hostname: host, port }, () => {
        s.off("error", refused);
        s.on("error", (e) => log(`api server: ${e.message}`));
        ready(s as Server);
      });
      s.once("error", refused);
    });
    closers.push(
      () =>
        new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
    );
    const apiUrl = `http://${host.includes(":") ? `[${host}]` : host}:${(server.address() as AddressInfo).port}`;
    audience = apiUrl;
    await ensureTopicsAndPushes(pubsub, apiUrl);

    // Jobs that were running when the stack died lost their local hosts with it: say so at once.
    // Real hosts of an inventory live on; their heartbeats tell.
    if (!inventory) await announceLostHosts(deps.store, pubsub, log);

    // Where CLI commands run beside this stack find it (the secret too, so: owner only).
    await writeFile(
      join(stateDir, "ready.json"),
      JSON.stringify({
        api: apiUrl,
        sfnEndpoint: sfnServer.url,
        pubsubEmulatorHost: emulator.host,
        stateMachineArn: arn,
        projectId,
        webhookSecret,
        ...(apiToken === undefined ? {} : { apiToken }),
      }),
      { mode: 0o600 },
    );
    // A stopped stack is not "ready": CLI commands beside it then say nothing is running.
    closers.push(() => rm(join(stateDir, "ready.json"), { force: true }));
    return {
      api: apiUrl,
      sfnEndpoint: sfnServer.url,
      pubsubEmulatorHost: emulator.host,
      stateMachineArn: arn,
      projectId,
      get provider(): LocalProvider {
        if (!local) throw new Error("this stack runs on an inventory of real hosts: it has no local cluster");
        return local;
      },
      engine,
      webhookSecret,
      apiToken,
      readyLine: () => ({
        ready: true,
        api: apiUrl,
        sfnEndpoint: sfnServer.url,
        pubsubEmulatorHost: emulator.host,
        stateMachineArn: arn,
        projectId,
        // Printed only when generated here: a secret the user gave is theirs already.
        ...(givenSecret === undefined ? { webhookSecret } : {}),
        ...(givenApiToken === undefined && apiToken !== undefined ? { apiToken } : {}),
      }),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
