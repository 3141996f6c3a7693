import { createHash } from "node:crypto";
import { z } from "zod";
import { type SerializedError, SerializedErrorSchema } from "../core/serialized-error.js";
import type { ResultsStore } from "./ports.js";

/**
 * The results store's layout for attempts. The store is what lets stateless functions agree:
 * events written by ingest, the attempt's task token written by await, and the attempt's
 * outcome, decided once (first writer wins) and sent by whoever holds the token.
 *
 *   jobs/{jobId}/current.json                 which attempt is current (stale events are ignored)
 *   jobs/{jobId}/attempts/{n}/record.json     the attempt's hosts
 *   jobs/{jobId}/attempts/{n}/token           the attempt's task token
 *   jobs/{jobId}/attempts/{n}/outcome.json    how the attempt ended (created once)
 *   jobs/{jobId}/attempts/{n}/delivered       the outcome reached the token (until then, it is sent again)
 *   jobs/{jobId}/attempts/{n}/teardown-started  when teardown first found a process it could not end
 *   jobs/{jobId}/attempts/{n}/hosts/{s}-{h}.json   each host's end; succeeded/{s}-{h} when it exited 0
 *   index/slices/{name}.json, index/hosts/{address}.json   where notices are routed
 */

/** How a noticed slice or host is named among a job's notes (`noteNoticed`). */
export const noticeUnit = {
  slice: (name: string) => `slice:${name}`,
  host: (address: string) => `host:${address}`,
  /** A slice and each of its hosts: every way a notice can name it. */
  all: (slice: { name: string; hosts: ReadonlyArray<{ address: string }> }) => [
    noticeUnit.slice(slice.name),
    ...slice.hosts.map((h) => noticeUnit.host(h.address)),
  ],
};

// A file name holds 255 bytes, and the directory store adds a suffix to a key's last segment.
const SEGMENT_MAX = 200;
/**
 * A name (job, slice, host) as one key segment: URI-encoded, or, when that is too long for a file
 * name, a readable head and a hash of the whole (names the store could not hold would fail every
 * event that carries them, and Pub/Sub would bring those back again and again).
 */
const enc = (part: string) => {
  const encoded = encodeURIComponent(part);
  if (encoded.length <= SEGMENT_MAX) return encoded;
  const head = part.replace(/[^A-Za-z0-9._-]/g, "").slice(0, 100);
  return `${head}~${createHash("sha256").update(part).digest("hex")}`;
};
export const keys = {
  current: (jobId: string) => `jobs/${enc(jobId)}/current.json`,
  attempt: (jobId: string, n: number) => `jobs/${enc(jobId)}/attempts/${n}`,
  record: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/record.json`,
  token: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/token`,
  outcome: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/outcome.json`,
  delivered: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/delivered`,
  /** When the attempt's teardown first found a process it could not end (its time limit runs from there). */
  teardownStarted: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/teardown-started`,
  /** How many times teardown found such a process (each a retried task in the history). */
  teardownTries: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/teardown-tries`,
  hosts: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/hosts/`,
  host: (jobId: string, n: number, s: number, h: number) => `${keys.attempt(jobId, n)}/hosts/${s}-${h}.json`,
  /** A marker per host that exited 0: counting them needs a listing, not a read per host. */
  succeeded: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/succeeded/`,
  succeededHost: (jobId: string, n: number, s: number, h: number) =>
    `${keys.attempt(jobId, n)}/succeeded/${s}-${h}`,
  /** When each host last said it is alive, and when the attempt's task last heard of it. */
  alive: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/alive/`,
  aliveHost: (jobId: string, n: number, s: number, h: number) => `${keys.attempt(jobId, n)}/alive/${s}-${h}`,
  heartbeatSent: (jobId: string, n: number) => `${keys.attempt(jobId, n)}/heartbeat-sent`,
  status: (jobId: string) => `jobs/${enc(jobId)}/status.json`,
  cancel: (jobId: string) => `jobs/${enc(jobId)}/cancel.json`,
  results: (jobId: string) => `jobs/${enc(jobId)}/results.json`,
  sliceIndex: (slice: string) => `index/slices/${enc(slice)}.json`,
  /** Notices for a slice or host of the job that no attempt acted on yet (`slice:<name>`, `host:<address>`). */
  noticed: (jobId: string) => `jobs/${enc(jobId)}/noticed/`,
  noticedUnit: (jobId: string, unit: string) => `jobs/${enc(jobId)}/noticed/${enc(unit)}`,
  hostIndex: (address: string) => `index/hosts/${enc(address)}.json`,
};

/** Where a slice's or host's notices go: the job that last placed a worker there. */
const RouteSchema = z.object({ jobId: z.string() });

export const CurrentAttemptSchema = z.object({
  attempt: z.int().min(0),
  executionArn: z.string().optional(),
  state: z.enum(["scaling", "running", "tearing-down", "done"]),
  updatedAt: z.number(),
});
export type CurrentAttempt = z.infer<typeof CurrentAttemptSchema>;

export const AttemptHostSchema = z.object({
  sliceIndex: z.int(),
  sliceName: z.string(),
  hostIndex: z.int(),
  address: z.string(),
  agent: z.string(),
});
export type AttemptHost = z.infer<typeof AttemptHostSchema>;

export const AttemptRecordSchema = z.object({
  jobId: z.string(),
  attempt: z.int().min(1),
  leaseId: z.string(),
  hosts: z.array(AttemptHostSchema),
  startedAt: z.number(),
  /** The job's heartbeat: hosts silent for longer are lost. */
  heartbeatMs: z.int().min(1).default(60_000),
  /** TTL the hosts' leases are renewed to on each heartbeat. */
  leaseTtlMs: z.int().min(1).default(180_000),
});
export type AttemptRecord = z.infer<typeof AttemptRecordSchema>;

/** How a host's run ended, as the ingest recorded it from the agent's event. */
export const HostEndSchema = z.object({
  kind: z.enum(["exited", "preempted", "lost"]),
  eventId: z.string(),
  at: z.number(),
  exitCode: z.int().nullable().optional(),
  signal: z.string().nullable().optional(),
  cancelled: z.boolean().optional(),
  result: z.unknown().optional(),
  resultRef: z.object({ agent: z.string(), jobId: z.string(), attempt: z.int(), bytes: z.int() }).optional(),
  error: SerializedErrorSchema.optional(),
  metadataPreempted: z.boolean().optional(),
  reason: z.string().optional(),
});
export type HostEnd = z.infer<typeof HostEndSchema>;

/** A user's request to cancel a job. */
const CancelSchema = z.object({ reason: z.string(), at: z.number() });

/** An attempt's outcome: all hosts done, or the first problem that ended it. */
export const OutcomeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("succeeded"), at: z.number() }),
  z.object({ kind: z.literal("failed"), at: z.number(), error: SerializedErrorSchema }),
]);
export type Outcome = z.infer<typeof OutcomeSchema>;

/** `text` as `schema` says, or undefined when it is absent, not JSON or not of that shape. */
function parseJson<T>(text: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function readJson<T>(store: ResultsStore, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
  return parseJson(await store.get(key), schema);
}

/** How many unreadable copies of a once-written record are stepped over (see {@link readOnce}). */
const ONCE_SLOTS = 4;
/** The `i`th place of a once-written record: `outcome.json`, then `outcome.1.json`, … */
const slotKey = (key: string, i: number) => (i === 0 ? key : key.replace(/(\.json)?$/, `.${i}$1`));

/**
 * A record written once (first writer wins): the first readable of its places. A place that holds
 * something unreadable — left empty or torn by a writer killed mid-write before stores wrote whole
 * files — is stepped over: read as absent it would block every later writer and the attempt would
 * wait for an outcome nobody can record.
 */
async function readOnce<T>(store: ResultsStore, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
  for (let i = 0; i < ONCE_SLOTS; i++) {
    const text = await store.get(slotKey(key, i));
    if (text === undefined) return undefined;
    const value = parseJson(text, schema);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** Write a record once (see {@link readOnce}); `true` when this call wrote it. */
async function createOnce<T>(
  store: ResultsStore,
  key: string,
  value: T,
  schema: z.ZodType<T>,
): Promise<boolean> {
  for (let i = 0; i < ONCE_SLOTS; i++) {
    const at = slotKey(key, i);
    if (await store.create(at, JSON.stringify(value))) return true;
    const text = await store.get(at);
    if (text === undefined || parseJson(text, schema) !== undefined) return false;
  }
  return false;
}

/** Typed access to the attempt layout of a results store. */
export function attemptStore(store: ResultsStore) {
  // Every host event of an attempt reads its record (hundreds of hosts): keep the last few
  // parsed, keyed by their exact text, so a record is parsed once however often it is read.
  const parsedRecords = new Map<string, { text: string; record: AttemptRecord }>();
  const readRecord = async (key: string): Promise<AttemptRecord | undefined> => {
    const text = await store.get(key);
    if (text === undefined) return undefined;
    const hit = parsedRecords.get(key);
    if (hit?.text === text) return hit.record;
    let record: AttemptRecord | undefined;
    try {
      const parsed = AttemptRecordSchema.safeParse(JSON.parse(text));
      record = parsed.success ? parsed.data : undefined;
    } catch {
      record = undefined;
    }
    if (record) {
      parsedRecords.delete(key);
      parsedRecords.set(key, { text, record });
      for (const k of parsedRecords.keys()) if (parsedRecords.size > 4) parsedRecords.delete(k);
    }
    return record;
  };
  return {
    store,
    current: (jobId: string) => readJson(store, keys.current(jobId), CurrentAttemptSchema),
    setCurrent: (jobId: string, value: CurrentAttempt) =>
      store.put(keys.current(jobId), JSON.stringify(value)),
    record: (jobId: string, n: number) => readRecord(keys.record(jobId, n)),
    /**
     * Write the attempt's record and the routes (slice/host → job) notices take to it. Routes
     * name the job, not the attempt: a notice goes to the job's current attempt. `routed` names
     * slices and hosts held by this job without a break since their route was written (units
     * kept across an in-place restart): theirs are left as they are.
     */
    async writeRecord(
      record: AttemptRecord,
      routed: { slices?: ReadonlySet<string>; addresses?: ReadonlySet<string> } = {},
    ): Promise<void> {
      await store.put(keys.record(record.jobId, record.attempt), JSON.stringify(record));
      const route = JSON.stringify({ jobId: record.jobId });
      const slices = new Set(record.hosts.map((h) => h.sliceName));
      const fresh = (set: ReadonlySet<string> | undefined, key: string) => !set?.has(key);
      await Promise.all([
        ...[...slices]
          .filter((s) => fresh(routed.slices, s))
          .map((s) => store.put(keys.sliceIndex(s), route)),
        ...record.hosts
          .filter((h) => fresh(routed.addresses, h.address) && fresh(routed.slices, h.sliceName))
          .map((h) => store.put(keys.hostIndex(h.address), route)),
      ]);
    },
    /** A user asked to cancel the job: every step stops it at the next chance. */
    cancelRequested: (jobId: string) => readOnce(store, keys.cancel(jobId), CancelSchema),
    requestCancel: (jobId: string, reason: string, at: number) =>
      createOnce(store, keys.cancel(jobId), { reason, at }, CancelSchema),
    token: (jobId: string, n: number) => store.get(keys.token(jobId, n)),
    setToken: (jobId: string, n: number, token: string) => store.put(keys.token(jobId, n), token),
    outcome: (jobId: string, n: number) => readOnce(store, keys.outcome(jobId, n), OutcomeSchema),
    /** Record the outcome if none is recorded yet; `true` when this call decided it. */
    decide: (jobId: string, n: number, outcome: Outcome) =>
      createOnce(store, keys.outcome(jobId, n), outcome, OutcomeSchema),
    /** Whether the outcome reached the attempt's token (sent, or the task was gone already). */
    delivered: async (jobId: string, n: number) => (await store.get(keys.delivered(jobId, n))) !== undefined,
    markDelivered: (jobId: string, n: number) => store.put(keys.delivered(jobId, n), ""),
    /** Record a host's first end; `false` when it has one already (the first writer wins). */
    createHostEnd: (jobId: string, n: number, s: number, h: number, end: HostEnd) =>
      store.create(keys.host(jobId, n, s, h), JSON.stringify(end)),
    /** Replace a host's end (by the rules of what may replace what, in ingest). */
    writeHostEnd: (jobId: string, n: number, s: number, h: number, end: HostEnd) =>
      store.put(keys.host(jobId, n, s, h), JSON.stringify(end)),
    markSucceeded: (jobId: string, n: number, s: number, h: number) =>
      store.put(keys.succeededHost(jobId, n, s, h), ""),
    /** Hosts (`{slice}-{host}`) that exited 0. */
    async succeededHosts(jobId: string, n: number): Promise<Set<string>> {
      const prefix = keys.succeeded(jobId, n);
      return new Set((await store.list(prefix)).map((k) => k.slice(prefix.length)));
    },
    /** Note that a host was heard from at `at` (the control plane's clock when it heard it). */
    markAlive: (jobId: string, n: number, s: number, h: number, at: number) =>
      store.put(keys.aliveHost(jobId, n, s, h), String(at)),
    /** When each host (`{slice}-{host}`) last said it is alive. */
    async aliveHosts(jobId: string, n: number): Promise<Map<string, number>> {
      const prefix = keys.alive(jobId, n);
      const out = new Map<string, number>();
      for (const key of await store.list(prefix))
        out.set(key.slice(prefix.length), Number(await store.get(key)));
      return out;
    },
    hostEnd: (jobId: string, n: number, s: number, h: number) =>
      readJson(store, keys.host(jobId, n, s, h), HostEndSchema),
    async hostEnds(jobId: string, n: number): Promise<Map<string, HostEnd>> {
      const out = new Map<string, HostEnd>();
      const prefix = keys.hosts(jobId, n);
      for (const key of await store.list(prefix)) {
        const end = await readJson(store, key, HostEndSchema);
        if (end) out.set(key.slice(prefix.length).replace(/\.json$/, ""), end);
      }
      return out;
    },
    /**
     * Note a preemption notice for one of the job's slices (`slice:<name>`) or hosts
     * (`host:<address>`), for the next attempt to heed: one that came between attempts reached
     * no running attempt, and the slice may have been kept for an in-place restart.
     */
    noteNoticed: (jobId: string, unit: string, at: number) =>
      store.put(keys.noticedUnit(jobId, unit), String(at)),
    /** Which of `units` were noted by {@link noteNoticed} at `since` or later, and not cleared since. */
    async noticed(jobId: string, units: readonly string[], since: number): Promise<string[]> {
      const listed = new Set(await store.list(keys.noticed(jobId)));
      const found: string[] = [];
      for (const u of units) {
        if (!listed.has(keys.noticedUnit(jobId, u))) continue;
        if (Number((await store.get(keys.noticedUnit(jobId, u))) ?? 0) >= since) found.push(u);
      }
      return found;
    },
    /** Forget the notices of units given back to the provider (their preemption was acted on). */
    clearNoticed: async (jobId: string, units: readonly string[]) => {
      await Promise.all(units.map((u) => store.delete(keys.noticedUnit(jobId, u))));
    },
    /** The job a slice's notices go to (routes of older versions also named an attempt: ignored). */
    routeSlice: (slice: string) => readJson(store, keys.sliceIndex(slice), RouteSchema),
    /** The job a host's notices go to. */
    routeHost: (address: string) => readJson(store, keys.hostIndex(address), RouteSchema),
  };
}
export type AttemptStore = ReturnType<typeof attemptStore>;

/** A serialized error from a problem the state machine caught (`{Error, Cause}`). */
export function caughtToError(caught: { Error: string; Cause?: string | undefined }): SerializedError {
  const cause = caught.Cause ?? "";
  try {
    const parsed = JSON.parse(cause) as unknown;
    const direct = SerializedErrorSchema.safeParse(parsed);
    if (direct.success) return { ...direct.data, name: direct.data.name || caught.Error };
    // A Lambda function error: {errorType, errorMessage, trace}, maybe with our serialized error inside.
    const lambda = parsed as {
      errorType?: unknown;
      errorMessage?: unknown;
      trace?: unknown;
      error?: unknown;
    };
    const inner = SerializedErrorSchema.safeParse(lambda.error);
    if (inner.success) return inner.data;
    // On AWS Lambda the step's error body travels as the thrown error's message (JSON).
    if (typeof lambda.errorMessage === "string" && lambda.errorMessage.startsWith("{")) {
      const fromMessage = caughtToError({ Error: caught.Error, Cause: lambda.errorMessage });
      if (fromMessage.message !== lambda.errorMessage) return fromMessage;
    }
    if (typeof lambda.errorMessage === "string") {
      return {
        name: typeof lambda.errorType === "string" ? lambda.errorType : caught.Error,
        message: lambda.errorMessage,
        stack: Array.isArray(lambda.trace) ? lambda.trace.join("\n") : undefined,
      };
    }
  } catch {
    // not JSON: the cause is plain text
  }
  return { name: caught.Error, message: cause || caught.Error };
}
