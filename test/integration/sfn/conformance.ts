/**
 * The conformance suite: executions recorded against AWS (../shared/sfn-conformance/cases.json,
 * read at run time, never copied) replayed through `@aws-sdk/client-sfn` against an endpoint, and
 * compared the fair way the cases' README describes.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  type SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";

/** Where the recorded cases live (outside the project). */
export const CASES_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../../../shared/sfn-conformance/cases.json",
);

/** One recorded case (the fields this suite reads). */
export interface ConformanceCase {
  id: string;
  definition: unknown;
  definitionJson?: string;
  input: unknown;
  inputJson?: string;
  expected: { status: string; output?: unknown; error?: string; cause?: string };
  expectedEventTypes?: string[] | null;
  features?: string[];
  estimatedSeconds?: number;
  transforms?: Array<{ type: string; key: string; replacement: string }> | null;
  eventTypesTransform?: string | null;
}

/** Result of one case. */
export interface CaseResult {
  id: string;
  jsonata: boolean;
  outputPass: boolean;
  historyPass: boolean | undefined;
  detail?: string;
}

/** Load the cases. */
export function loadCases(path = CASES_PATH): ConformanceCase[] {
  return (JSON.parse(readFileSync(path, "utf8")) as { cases: ConformanceCase[] }).cases;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Replace run-varying values the way the recordings were (names, ARNs, dates, UUIDs, JSON in causes). */
export function normalize(
  value: unknown,
  names: { sm: string; exec: string; role: string },
  c: ConformanceCase,
): unknown {
  const keyed = new Map((c.transforms ?? []).map((t) => [t.key, t.replacement]));
  const str = (s: string): string => {
    let out = s
      .split(`arn:aws:states:us-east-1:111111111111:execution:${names.sm}:${names.exec}`)
      .join("arn:<partition>:states:<region>:111111111111:execution:<ArnPart_0idx>:<ExecArnPart_0idx>")
      .split(`arn:aws:states:us-east-1:111111111111:stateMachine:${names.sm}`)
      .join("arn:<partition>:states:<region>:111111111111:stateMachine:<ArnPart_0idx>")
      .split(names.role)
      .join("snf_role_arn")
      .split(names.exec)
      .join("<ExecArnPart_0idx>")
      .split(names.sm)
      .join("<ArnPart_0idx>");
    if (ISO.test(out)) return "date";
    out = out.replace(/<uuid:\d+>/g, "<uuid>").replace(UUID, "<uuid>");
    out = out.replace(/'<json-input:\d+>'/g, "'<json>'");
    out = out.replace(/'([{[].*[}\]])'/gs, (m, inner: string) => {
      try {
        JSON.parse(inner);
        return "'<json>'";
      } catch {
        return m;
      }
    });
    return out;
  };
  const walk = (v: unknown, key?: string): unknown => {
    if (key !== undefined && keyed.has(key)) return keyed.get(key);
    if (key !== undefined && /timestamp/i.test(key) && v !== null && typeof v !== "object")
      return "timestamp";
    if (typeof v === "string") return str(v);
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = walk(x, k);
      return o;
    }
    return v;
  };
  return walk(value);
}

/** Deep equality where key order and `1.0` vs `1` do not matter. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") return a === b;
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a))
    return a.length === (b as unknown[]).length && a.every((x, i) => sameJson(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return (
    ka.length === kb.length &&
    ka.every((k) => Object.hasOwn(b as object, k) && sameJson((a as never)[k], (b as never)[k]))
  );
}

const OPEN = new Set(["MapStateStarted", "ParallelStateStarted"]);
const CLOSE = new Set([
  "MapStateSucceeded",
  "MapStateFailed",
  "MapStateAborted",
  "ParallelStateSucceeded",
  "ParallelStateFailed",
  "ParallelStateAborted",
  "ParallelStateExited",
]);

/** Canonical form of an event-type sequence: Map/Parallel blocks' contents as sorted multisets. */
export function canonicalEvents(types: string[], dropParallelNested = false): string[] {
  const out: string[] = [];
  let depth = 0;
  let block: string[] = [];
  let parallel = false;
  for (const t of types) {
    if (depth === 0) {
      out.push(t);
      if (OPEN.has(t)) {
        depth = 1;
        block = [];
        parallel = t === "ParallelStateStarted";
      }
      continue;
    }
    if (OPEN.has(t)) depth++;
    if (CLOSE.has(t)) depth--;
    if (depth === 0) {
      out.push(...(dropParallelNested && parallel ? [] : block.sort()), t);
    } else block.push(t);
  }
  if (depth > 0) out.push(...block.sort());
  return out;
}

/** Run one case against `client`; `index` makes names unique. */
export async function runCase(
  client: SFNClient,
  c: ConformanceCase,
  index: number,
  timeoutMs = 60_000,
): Promise<CaseResult> {
  const jsonata = (c.features ?? []).includes("JSONata");
  const names = {
    sm: `sm${index}x${Date.now().toString(36)}`,
    exec: `ex${index}y${Math.random().toString(36).slice(2, 10)}`,
    role: "arn:aws:iam::111111111111:role/snf_role",
  };
  const fail = (detail: string): CaseResult => ({
    id: c.id,
    jsonata,
    outputPass: false,
    historyPass: c.expectedEventTypes ? false : undefined,
    detail,
  });
  let smArn: string;
  try {
    const r = await client.send(
      new CreateStateMachineCommand({
        name: names.sm,
        roleArn: names.role,
        definition: c.definitionJson ?? JSON.stringify(c.definition),
      }),
    );
    smArn = r.stateMachineArn as string;
  } catch (e) {
    return fail(`create: ${(e as Error).name}: ${(e as Error).message}`);
  }
  const start = await client.send(
    new StartExecutionCommand({
      stateMachineArn: smArn,
      name: names.exec,
      input: c.inputJson ?? JSON.stringify(c.input ?? {}),
    }),
  );
  const arn = start.executionArn as string;
  const deadline = Date.now() + timeoutMs;
  let d = await client.send(new DescribeExecutionCommand({ executionArn: arn }));
  while (d.status === "RUNNING" && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    d = await client.send(new DescribeExecutionCommand({ executionArn: arn }));
  }
  const exp = c.expected;
  let outputPass = d.status === exp.status;
  let detail: string | undefined;
  if (outputPass) {
    if (exp.status === "SUCCEEDED") {
      const got = normalize(JSON.parse(d.output ?? "null"), names, c);
      outputPass = sameJson(got, normalize(exp.output, names, c));
      if (!outputPass)
        detail = `output ${JSON.stringify(got).slice(0, 400)} != ${JSON.stringify(exp.output).slice(0, 400)}`;
    } else if (exp.status === "FAILED") {
      const ge = normalize(d.error ?? null, names, c);
      const gc = normalize(d.cause ?? null, names, c);
      outputPass =
        sameJson(ge, normalize(exp.error ?? null, names, c)) &&
        sameJson(gc, normalize(exp.cause ?? null, names, c));
      if (!outputPass)
        detail = `error ${String(d.error)} | ${String(d.cause).slice(0, 300)} != ${String(exp.error)} | ${String(exp.cause).slice(0, 300)}`;
    }
  } else detail = `status ${d.status} (${d.error ?? ""}: ${(d.cause ?? "").slice(0, 300)}) != ${exp.status}`;
  let historyPass: boolean | undefined;
  if (c.expectedEventTypes) {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const h = await client.send(
        new GetExecutionHistoryCommand({ executionArn: arn, maxResults: 1000, nextToken }),
      );
      events.push(...(h.events ?? []));
      nextToken = h.nextToken;
    } while (nextToken);
    const drop = c.eventTypesTransform === "SfnNoneRecursiveParallelTransformer";
    const got = canonicalEvents(
      events.map((e) => e.type as string),
      drop,
    );
    const want = canonicalEvents(c.expectedEventTypes, drop);
    historyPass = sameJson(got, want);
    if (!historyPass) detail = `${detail ?? ""} history ${got.join(",")} != ${want.join(",")}`.trim();
  }
  const out: CaseResult = { id: c.id, jsonata, outputPass, historyPass };
  if (detail !== undefined) out.detail = detail;
  return out;
}

/** Counts for a set of results. */
export interface ConformanceSummary {
  jsonpath: { cases: number; output: number; withHistory: number; history: number };
  jsonata: { cases: number; output: number; withHistory: number; history: number };
}

/** Run every case with `concurrency` at once. */
export async function runConformance(
  client: SFNClient,
  cases: ConformanceCase[],
  concurrency = 24,
): Promise<{ results: CaseResult[]; summary: ConformanceSummary }> {
  const results: CaseResult[] = new Array(cases.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        const c = cases[i];
        if (!c) return;
        try {
          results[i] = await runCase(client, c, i);
        } catch (e) {
          results[i] = { id: c.id, jsonata: false, outputPass: false, historyPass: false, detail: String(e) };
        }
      }
    }),
  );
  const tally = (rs: CaseResult[]) => ({
    cases: rs.length,
    output: rs.filter((r) => r.outputPass).length,
    withHistory: rs.filter((r) => r.historyPass !== undefined).length,
    history: rs.filter((r) => r.historyPass === true).length,
  });
  return {
    results,
    summary: {
      jsonpath: tally(results.filter((r) => !r.jsonata)),
      jsonata: tally(results.filter((r) => r.jsonata)),
    },
  };
}
