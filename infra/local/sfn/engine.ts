/**
 * The embedded Step Functions engine: state machines, executions and task tokens behind the
 * operations of the Step Functions API, durable through a journal in a state directory.
 *
 * @example
 * const engine = await createSfnEngine({ stateDir: ".gangway/sfn", lambdas: { ScaleSlices: app } });
 * const out = await engine.call("ListStateMachines", {});
 */

import { randomUUID } from "node:crypto";
import { type DirLock, startHoldingStateDir } from "../../dir-lock.js";
import { parseDefinition, type StatesBlock } from "./definition.js";
import { apiErrors, SfnApiError } from "./errors.js";
import { ExecutionRun, type RunnerHost } from "./execution.js";
import { History } from "./history.js";
import { decodeEvent, Journal, readRun } from "./journal.js";
import { LambdaRegistry, type LambdaTarget } from "./lambda.js";
import type { ExecutionData, HistoryEvent, JournalRecord, StateMachineData } from "./model.js";
import {
  checkName,
  checkRoleArn,
  executionArn,
  parseExecutionArn,
  parseStateMachineArn,
  stateMachineArn,
} from "./names.js";
import { jsonDepth, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH } from "./payload.js";
import { type Operation, parseRequest, REQUESTS } from "./requests.js";
import { TokenRegistry } from "./tokens.js";

/** Options of `createSfnEngine`. */
export interface SfnEngineOptions {
  /** Where state lives; omitted → nothing survives the process (tests, benches of the peer). */
  stateDir?: string;
  region?: string;
  accountId?: string;
  /** Clock in ms since the epoch (injected for tests). */
  clock?: () => number;
  /** Function name → handler, for Task states of the Lambda integration. */
  lambdas?: Record<string, LambdaTarget>;
  /** fsync every flush (survives power loss, not only a killed process). */
  fsync?: boolean;
  /** Called when an execution ends (any status), after its end is durable. */
  onExecutionEnd?: (executionArn: string, status: string) => void;
  /** Rewrite the journal compacted once it has grown by this many bytes (default 64 MiB). */
  compactAfterBytes?: number;
  /** Called with one line of text for noteworthy events (resume counts, journal compaction). */
  log?: (line: string) => void;
}

/** The engine's public face. */
export interface SfnEngine {
  /** Run API operation `op` (e.g. "StartExecution") with its JSON body; throws `SfnApiError`. */
  call(op: string, body: unknown): Promise<unknown>;
  /** Bind a Lambda function name to an in-process app, a function or a URL. */
  registerLambda(name: string, target: LambdaTarget): void;
  /** Executions running now. */
  runningCount(): number;
  /** Stop timers and close the journal; running executions resume at the next start. */
  close(): Promise<void>;
}

const sec = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000);

function pageToken(offset: number, scope: string): string {
  return Buffer.from(JSON.stringify({ o: offset, s: scope })).toString("base64url");
}
function readPageToken(token: string | undefined, scope: string): number {
  if (token === undefined) return 0;
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { o?: unknown; s?: unknown };
    if (typeof v.o === "number" && Number.isInteger(v.o) && v.o >= 0 && v.s === scope) return v.o;
  } catch {
    // fall through
  }
  throw apiErrors.invalidToken(`Invalid Token: '${token}'`);
}

/** Replay one event: it extends the history and, if it enters a state, places its branch there. */
function replayEvent(e: ExecutionData, b: string, ev: HistoryEvent): void {
  e.events.add(ev);
  e.lastEvent.set(b, ev.id);
  const entered = (ev.stateEnteredEventDetails as { name?: string } | undefined)?.name;
  if (entered !== undefined)
    e.branches.set(b, { state: entered, input: undefined, entered: ev.id, vars: {}, phase: "enter" });
}

/** Create the engine, replay its journal and resume every execution that was running. */
export async function createSfnEngine(options: SfnEngineOptions = {}): Promise<SfnEngine> {
  // One engine per journal: two appending to it would interleave and corrupt it.
  return startHoldingStateDir(
    options.stateDir,
    "step functions engine",
    "give each engine its own --state-dir",
    (lock) => createHolding(options, lock),
  );
}

async function createHolding(options: SfnEngineOptions, lock: DirLock | undefined): Promise<SfnEngine> {
  const region = options.region ?? "us-east-1";
  const accountId = options.accountId ?? "123456789012";
  const now = options.clock ?? Date.now;
  const log = options.log ?? (() => {});
  const journal = new Journal(options.stateDir, { fsync: options.fsync ?? false });
  const lambdas = new LambdaRegistry(options.lambdas);
  const tokens = new TokenRegistry();
  const machines = new Map<string, StateMachineData>();
  const executions = new Map<string, ExecutionData>();
  const bySeq = new Map<number, ExecutionData>();
  const byMachine = new Map<string, ExecutionData[]>();
  const running = new Map<string, ExecutionRun>();
  const parsed = new Map<string, StatesBlock>();
  let seq = 0;
  let closed = false;

  const definitionOf = (text: string): StatesBlock => {
    let d = parsed.get(text);
    if (!d) {
      d = parseDefinition(text);
      parsed.set(text, d);
    }
    return d;
  };

  const host: RunnerHost = {
    now,
    region,
    accountId,
    record: (r) => journal.append(r),
    recordStateEvent: (x, b, events, id) => journal.appendStateEvent(x, b, events, id),
    flush: () => journal.flush(),
    invokeLambda: (name, payload, timeoutMs, signal) =>
      lambdas.invoke(
        name,
        payload,
        timeoutMs,
        signal,
        `arn:aws:lambda:${region}:${accountId}:function:${name}`,
      ),
    tokens,
    finished: (exec) => {
      running.delete(exec.executionArn);
      options.onExecutionEnd?.(exec.executionArn, exec.status);
    },
  };

  // ---- replay ----
  const addExecution = (e: ExecutionData) => {
    executions.set(e.executionArn, e);
    bySeq.set(e.seq, e);
    const list = byMachine.get(e.stateMachineArn) ?? [];
    list.push(e);
    byMachine.set(e.stateMachineArn, list);
    seq = Math.max(seq, e.seq);
  };
  for (const r of journal.read()) {
    switch (r.k) {
      case "sm":
        machines.set(r.sm.stateMachineArn, r.sm);
        break;
      case "smdel":
        machines.delete(r.arn);
        break;
      case "exec":
        addExecution({
          ...r.exec,
          events: History.from(r.exec.events),
          branches: new Map(r.exec.branches),
          lastEvent: new Map(r.exec.lastEvent),
        });
        break;
      case "start":
        addExecution({
          ...r.exec,
          definition: r.exec.definition ?? machines.get(r.exec.stateMachineArn)?.definition ?? "",
          status: "RUNNING",
          events: new History(),
          branches: new Map(),
          lastEvent: new Map(),
        });
        break;
      default: {
        const e = bySeq.get(r.x);
        if (!e) break;
        if (r.k === "ev") replayEvent(e, r.b, r.e);
        else if (r.k === "evs")
          for (const x of r.l) {
            const [b, ev] = decodeEvent(x);
            replayEvent(e, b, ev);
          }
        else if (r.k === "sr")
          readRun(r, (timestamp, type, id, previousEventId, kind, name, text) => {
            e.events.addState(timestamp, type, previousEventId, kind, name, text);
            e.lastEvent.set(r.b, id);
            if (kind === 0)
              e.branches.set(r.b, { state: name, input: undefined, entered: id, vars: {}, phase: "enter" });
          });
        else if (r.k === "cp") e.branches.set(r.b, r.c);
        else if (r.k === "done") e.branches.set(r.b, { done: r.d });
        else if (r.k === "clear") {
          const prefix = `${r.b}.`;
          for (const k of e.branches.keys()) if (k.startsWith(prefix)) e.branches.delete(k);
          for (const k of e.lastEvent.keys()) if (k.startsWith(prefix)) e.lastEvent.delete(k);
        } else if (r.k === "end") {
          e.status = r.status;
          e.stopDate = r.stopDate;
          if (r.output !== undefined) e.output = r.output;
          if (r.error !== undefined) e.error = r.error;
          if (r.cause !== undefined) e.cause = r.cause;
          e.branches.clear();
          e.lastEvent.clear();
        }
      }
    }
  }
  // Checkpoints taken from StateEntered events (or written without their input) get it now.
  for (const e of executions.values()) {
    for (const c of e.branches.values()) {
      if (!("state" in c) || c.input !== undefined) continue;
      c.input = JSON.parse(e.events.entryOf(c.entered)?.input ?? "null");
    }
  }
  const compact = function* (): Generator<JournalRecord> {
    for (const sm of machines.values()) yield { k: "sm", sm };
    for (const e of executions.values())
      yield {
        k: "exec",
        exec: { ...e, events: e.events.toJSON(), branches: [...e.branches], lastEvent: [...e.lastEvent] },
      };
  };
  journal.rewrite(compact());
  // The journal is compacted again whenever it has grown by this much since the last time.
  const compactAfterBytes = options.compactAfterBytes ?? 64 * 1024 * 1024;
  const compactor = setInterval(() => {
    if (journal.appendedBytes < compactAfterBytes) return;
    journal.rewrite(compact());
    log("journal compacted");
  }, 1000);
  compactor.unref();

  let resumed = 0;
  for (const e of executions.values()) {
    if (e.status !== "RUNNING") continue;
    let machine: StatesBlock;
    try {
      machine = definitionOf(e.definition);
    } catch (err) {
      // Only a damaged journal gets here (a start without its machine): keep the rest running.
      log(`execution ${e.executionArn} cannot resume: ${String(err)}`);
      continue;
    }
    const run = new ExecutionRun(e, machine, host);
    running.set(e.executionArn, run);
    resumed++;
    void run.resume().catch((err) => log(`execution ${e.executionArn} crashed: ${String(err)}`));
  }
  if (resumed > 0) {
    log(`resumed ${resumed} running execution(s)`);
    // Let resumed tasks re-register their tokens before the first request is answered.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }

  // ---- operations ----
  const machine = (arnText: string): StateMachineData => {
    parseStateMachineArn(arnText);
    const sm = machines.get(arnText);
    if (!sm) throw apiErrors.stateMachineDoesNotExist(`State Machine Does Not Exist: '${arnText}'`);
    return sm;
  };
  const execution = (arnText: string): ExecutionData => {
    parseExecutionArn(arnText);
    const e = executions.get(arnText);
    if (!e) throw apiErrors.executionDoesNotExist(`Execution Does Not Exist: '${arnText}'`);
    return e;
  };
  const waiter = (token: string) => {
    const w = tokens.get(token);
    if (w) return w;
    if (!TokenRegistry.wellFormed(token)) throw apiErrors.invalidToken("Invalid Token");
    if (tokens.isTimedOut(token)) throw apiErrors.taskTimedOut("Task Timed Out");
    throw apiErrors.taskDoesNotExist("Task Does Not Exist");
  };
  const checkJson = (text: string, what: "input" | "output") => {
    if (Buffer.byteLength(text, "utf8") > MAX_PAYLOAD_BYTES)
      throw apiErrors.validation(
        `1 validation error detected: Value at '${what}' failed to satisfy constraint: Member must have length less than or equal to ${MAX_PAYLOAD_BYTES}`,
      );
    const refuse = (why: string) => {
      const m = `Invalid ${what === "input" ? "State Machine Execution Input" : "Output"}: '${why}'`;
      return what === "input" ? apiErrors.invalidExecutionInput(m) : apiErrors.invalidOutput(m);
    };
    if (jsonDepth(text) > MAX_PAYLOAD_DEPTH) throw refuse(`nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
    try {
      JSON.parse(text);
    } catch (e) {
      throw refuse((e as Error).message);
    }
  };

  const ops: { [K in Operation]: (body: ReturnType<typeof parseRequest<K>>) => unknown } = {
    CreateStateMachine: (b) => {
      checkName(b.name, "state machine");
      checkRoleArn(b.roleArn);
      definitionOf(b.definition);
      const arnText = stateMachineArn(region, accountId, b.name);
      const type = b.type ?? "STANDARD";
      const existing = machines.get(arnText);
      if (existing) {
        if (existing.definition === b.definition && existing.roleArn === b.roleArn && existing.type === type)
          return { stateMachineArn: arnText, creationDate: sec(existing.creationDate) };
        throw apiErrors.stateMachineAlreadyExists(`State Machine Already Exists: '${arnText}'`);
      }
      const sm: StateMachineData = {
        stateMachineArn: arnText,
        name: b.name,
        definition: b.definition,
        roleArn: b.roleArn,
        type,
        creationDate: now(),
        revisionId: randomUUID(),
      };
      machines.set(arnText, sm);
      journal.append({ k: "sm", sm });
      return { stateMachineArn: arnText, creationDate: sec(sm.creationDate) };
    },
    UpdateStateMachine: (b) => {
      const sm = machine(b.stateMachineArn);
      if (b.definition === undefined && b.roleArn === undefined)
        throw apiErrors.missingParameter("Either the definition or the roleArn must be specified");
      if (b.definition !== undefined) definitionOf(b.definition);
      if (b.roleArn !== undefined) checkRoleArn(b.roleArn);
      const next: StateMachineData = {
        ...sm,
        definition: b.definition ?? sm.definition,
        roleArn: b.roleArn ?? sm.roleArn,
        updateDate: now(),
        revisionId: randomUUID(),
      };
      machines.set(sm.stateMachineArn, next);
      journal.append({ k: "sm", sm: next });
      return { updateDate: sec(next.updateDate), revisionId: next.revisionId };
    },
    DescribeStateMachine: (b) => {
      const sm = machine(b.stateMachineArn);
      return {
        stateMachineArn: sm.stateMachineArn,
        name: sm.name,
        status: "ACTIVE",
        definition: sm.definition,
        roleArn: sm.roleArn,
        type: sm.type,
        creationDate: sec(sm.creationDate),
        revisionId: sm.revisionId,
        loggingConfiguration: { level: "OFF", includeExecutionData: false },
        tracingConfiguration: { enabled: false },
      };
    },
    DeleteStateMachine: (b) => {
      parseStateMachineArn(b.stateMachineArn);
      if (machines.delete(b.stateMachineArn)) journal.append({ k: "smdel", arn: b.stateMachineArn });
      return {};
    },
    ListStateMachines: (b) => {
      const all = [...machines.values()].sort((x, y) => x.name.localeCompare(y.name));
      const from = readPageToken(b.nextToken, "sm");
      const size = b.maxResults || 100;
      const page = all.slice(from, from + size);
      const out: Record<string, unknown> = {
        stateMachines: page.map((sm) => ({
          stateMachineArn: sm.stateMachineArn,
          name: sm.name,
          type: sm.type,
          creationDate: sec(sm.creationDate),
        })),
      };
      if (from + size < all.length) out.nextToken = pageToken(from + size, "sm");
      return out;
    },
    StartExecution: (b) => {
      const sm = machine(b.stateMachineArn);
      const name = b.name ?? randomUUID();
      checkName(name, "execution");
      const input = b.input ?? "{}";
      checkJson(input, "input");
      const arnText = executionArn(region, accountId, sm.name, name);
      const existing = executions.get(arnText);
      if (existing) {
        // Idempotent as on AWS: same name and input while running → the same answer.
        if (existing.status === "RUNNING" && existing.input === input)
          return { executionArn: arnText, startDate: sec(existing.startDate) };
        throw apiErrors.executionAlreadyExists(`Execution Already Exists: '${arnText}'`);
      }
      const e: ExecutionData = {
        seq: ++seq,
        executionArn: arnText,
        stateMachineArn: sm.stateMachineArn,
        stateMachineName: sm.name,
        name,
        roleArn: sm.roleArn,
        definition: sm.definition,
        input,
        startDate: now(),
        status: "RUNNING",
        events: new History(),
        branches: new Map(),
        lastEvent: new Map(),
      };
      // The definition is the machine's, journaled with it already: the start need not repeat it
      // (replay reads it from the machine as it stood at that point of the journal).
      const { events: _e, branches: _b, lastEvent: _l, status: _s, definition: _d, ...meta } = e;
      journal.append({ k: "start", x: e.seq, exec: meta });
      addExecution(e);
      const run = new ExecutionRun(e, definitionOf(sm.definition), host);
      running.set(arnText, run);
      void run.start().catch((err) => log(`execution ${arnText} crashed: ${String(err)}`));
      return { executionArn: arnText, startDate: sec(e.startDate) };
    },
    DescribeExecution: (b) => {
      const e = execution(b.executionArn);
      const out: Record<string, unknown> = {
        executionArn: e.executionArn,
        stateMachineArn: e.stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: sec(e.startDate),
        input: e.input,
        inputDetails: { included: true },
        redriveCount: 0,
        redriveStatus: "NOT_REDRIVABLE",
      };
      if (e.stopDate !== undefined) out.stopDate = sec(e.stopDate);
      if (e.output !== undefined) {
        out.output = e.output;
        out.outputDetails = { included: true };
      }
      if (e.error !== undefined) out.error = e.error;
      if (e.cause !== undefined) out.cause = e.cause;
      return out;
    },
    DescribeStateMachineForExecution: (b) => {
      const e = execution(b.executionArn);
      const sm = machines.get(e.stateMachineArn);
      return {
        stateMachineArn: e.stateMachineArn,
        name: e.stateMachineName,
        definition: e.definition,
        roleArn: e.roleArn,
        updateDate: sec(sm?.updateDate ?? sm?.creationDate ?? e.startDate),
        revisionId: sm?.revisionId,
      };
    },
    ListExecutions: (b) => {
      machine(b.stateMachineArn);
      let list = [...(byMachine.get(b.stateMachineArn) ?? [])].reverse();
      if (b.statusFilter) list = list.filter((e) => e.status === b.statusFilter);
      const scope = `ex:${b.stateMachineArn}:${b.statusFilter ?? ""}`;
      const from = readPageToken(b.nextToken, scope);
      const size = b.maxResults || 100;
      const out: Record<string, unknown> = {
        executions: list.slice(from, from + size).map((e) => {
          const item: Record<string, unknown> = {
            executionArn: e.executionArn,
            stateMachineArn: e.stateMachineArn,
            name: e.name,
            status: e.status,
            startDate: sec(e.startDate),
          };
          if (e.stopDate !== undefined) item.stopDate = sec(e.stopDate);
          return item;
        }),
      };
      if (from + size < list.length) out.nextToken = pageToken(from + size, scope);
      return out;
    },
    StopExecution: (b) => {
      const e = execution(b.executionArn);
      const run = running.get(e.executionArn);
      if (run) run.stop(b.error, b.cause);
      return { stopDate: sec(e.stopDate ?? now()) };
    },
    GetExecutionHistory: (b) => {
      const e = execution(b.executionArn);
      const n = e.events.length;
      const scope = `h:${e.executionArn}:${b.reverseOrder ? 1 : 0}`;
      const from = readPageToken(b.nextToken, scope);
      const size = b.maxResults || 100;
      const strip = b.includeExecutionData === false;
      const page: Array<Record<string, unknown>> = [];
      for (let i = from; i < Math.min(from + size, n); i++) {
        const ev = e.events.get(b.reverseOrder ? n - i : i + 1) as HistoryEvent;
        const out: Record<string, unknown> = { ...ev, timestamp: ev.timestamp / 1000 };
        if (strip) {
          for (const [k, v] of Object.entries(out)) {
            if (k.endsWith("EventDetails") && v && typeof v === "object") {
              const { input: _i, output: _o, ...rest } = v as Record<string, unknown>;
              out[k] = rest;
            }
          }
        }
        page.push(out);
      }
      const out: Record<string, unknown> = { events: page };
      if (from + size < n) out.nextToken = pageToken(from + size, scope);
      return out;
    },
    SendTaskSuccess: (b) => {
      const w = waiter(b.taskToken);
      checkJson(b.output, "output");
      w.settle({ output: b.output });
      return {};
    },
    SendTaskFailure: (b) => {
      const w = waiter(b.taskToken);
      w.settle({ error: b.error ?? "", cause: b.cause ?? "" });
      return {};
    },
    SendTaskHeartbeat: (b) => {
      waiter(b.taskToken).heartbeat();
      return {};
    },
  };

  return {
    async call(op, body) {
      if (closed) throw new SfnApiError("ServiceUnavailable", "The engine is shutting down");
      if (!Object.hasOwn(REQUESTS, op)) throw apiErrors.unknownOperation(`Unknown operation ${op}`);
      const operation = op as Operation;
      const handler = ops[operation] as (b: unknown) => unknown;
      const result = handler(parseRequest(operation, body));
      // A settled token's task records its outcome in the microtasks that follow: let them run,
      // or a crash right after the acknowledgement would leave the task waiting on its token.
      if (operation === "SendTaskSuccess" || operation === "SendTaskFailure")
        await new Promise((r) => setImmediate(r));
      // Acknowledge only what is durable.
      journal.flush();
      return result;
    },
    registerLambda: (name, target) => lambdas.register(name, target),
    runningCount: () => running.size,
    async close() {
      closed = true;
      clearInterval(compactor);
      for (const run of running.values()) run.controller.abort();
      running.clear();
      journal.close();
      await lock?.release();
    },
  };
}
