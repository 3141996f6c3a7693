/**
 * The engine's durable log: one JSON record a line, appended with group commit. A record is
 * durable (survives `kill -9`) once `flush()` returns: it is in the kernel, written by one
 * `write` call per batch, so a transition's records land together or not at all. At open the log
 * is replayed and rewritten compacted.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { History } from "./history.js";
import { type HistoryEvent, type JournalRecord, plainStateEvent } from "./model.js";

const FILE = "journal.log";

/** An event in the journal: `[branch, event]`, or the compact tuple of a plain StateEntered/Exited. */
export type EncodedEvent =
  | [string, HistoryEvent]
  | [string, 0 | 1, number, string, number, number, string, string];

interface StateDetails {
  name: string;
  input?: string;
  output?: string;
  inputDetails?: unknown;
  outputDetails?: unknown;
}

// Most events enter or leave a state; as tuples they serialize several times faster than as objects.
function encodeEvent(b: string, e: HistoryEvent): EncodedEvent {
  const entered = e.stateEnteredEventDetails as StateDetails | undefined;
  const d = entered ?? (e.stateExitedEventDetails as StateDetails | undefined);
  const text = entered ? d?.input : d?.output;
  if (d && text !== undefined && Object.keys(e).length === 5 && Object.keys(d).length === 3)
    return [b, entered ? 0 : 1, e.timestamp, e.type, e.id, e.previousEventId, d.name, text];
  return [b, e];
}

/** The inverse of the journal's event encoding. */
export function decodeEvent(x: EncodedEvent): [string, HistoryEvent] {
  if (x.length === 2) return x;
  const [b, kind, timestamp, type, id, previousEventId, name, text] = x;
  return [b, plainStateEvent(kind, timestamp, type, id, previousEventId, name, text)];
}

/**
 * Plain StateEntered/StateExited events of one branch with consecutive ids, queued by reference to
 * the execution's history (nothing is copied per event) and serialized only at flush.
 */
export interface StateRun {
  k: "run";
  x: number;
  b: string;
  history: History;
  /** Ids of the first and last event of the run. */
  from: number;
  to: number;
}

/** What the journal queues between flushes. */
export type QueuedRecord = JournalRecord | StateRun;

/**
 * A state run as written: `{k:"sr", x, b, i: first id, p: its previousEventId, t: its timestamp,
 * l: tokens}`. Every event after the first follows the one before it (previousEventId = id − 1)
 * and is written as what differs from a prediction made from the event before it — same name,
 * same text (a state's input is the output of the state before it), no time elapsed, and Entered
 * after Exited of the same state type or the reverse: a bit mask (1 type, 2 name, 4 text, 8 time)
 * followed by those fields. A string token alone stands for the commonest pair, a state entered
 * under that new name and then left, with everything else as predicted. A Pass chain thus costs
 * one token a transition: serialization time grows with the count of tokens, so this is several
 * times cheaper than writing every field of every event.
 */
function encodeRun(r: StateRun): string {
  const { time: times, prev, types, names, texts } = r.history.columns();
  const l: Array<string | number> = [];
  const start = times[r.from - 1] as number;
  let type = "";
  let name = "";
  let text = "";
  let time = start;
  let from1 = "";
  let to1 = predictType("");
  let from2 = "";
  let to2 = to1;
  // An event whose only difference is its name waits here to see whether the next one differs in nothing.
  let held: string | undefined;
  for (let id = r.from; id <= r.to; id++) {
    const ty = types[id - 1] as string;
    const n = names[id - 1] as string;
    const t = texts[id - 1] as string;
    const at = times[id - 1] as number;
    // The types alternate between two (a state type's entry and exit): remember both predictions.
    if (type !== from1) {
      const f = from1;
      const p = to1;
      from1 = type;
      to1 = type === from2 ? to2 : predictType(type);
      from2 = f;
      to2 = p;
    }
    const mask = (ty === to1 ? 0 : 1) | (n === name ? 0 : 2) | (t === text ? 0 : 4) | (at === time ? 0 : 8);
    if (held !== undefined && mask === 0) l.push(held);
    else {
      if (held !== undefined) l.push(2, held);
      if (mask === 2) held = n;
      else {
        l.push(mask);
        if (mask & 1) l.push(ty);
        if (mask & 2) l.push(n);
        if (mask & 4) l.push(t);
        if (mask & 8) l.push(at - time);
      }
    }
    if (mask !== 2) held = undefined;
    type = ty;
    name = n;
    text = t;
    time = at;
  }
  if (held !== undefined) l.push(2, held);
  return JSON.stringify({ k: "sr", x: r.x, b: r.b, i: r.from, p: prev[r.from - 1], t: start, l });
}

const predicted = new Map<string, string>();
/** The type expected after `type`: a state's exit after its entry, the same type's entry after an exit. */
function predictType(type: string): string {
  let p = predicted.get(type);
  if (p === undefined) {
    if (type.endsWith("StateEntered")) p = `${type.slice(0, -"StateEntered".length)}StateExited`;
    else if (type.endsWith("StateExited")) p = `${type.slice(0, -"StateExited".length)}StateEntered`;
    else p = "";
    if (predicted.size < 1000) predicted.set(type, p);
  }
  return p;
}

/** What `readRun` hands each event of a state run to. */
export type StateEventVisitor = (
  timestamp: number,
  type: string,
  id: number,
  previousEventId: number,
  kind: 0 | 1,
  name: string,
  text: string,
) => void;

/** Hand each event of an `sr` record to `visit`, in order; throws on a malformed record. */
export function readRun(r: Extract<JournalRecord, { k: "sr" }>, visit: StateEventVisitor): void {
  let type = "";
  let name = "";
  let text = "";
  let timestamp = r.t;
  let id = r.i;
  const l = r.l;
  const field = <T>(j: number, kind: "string" | "number"): T => {
    const v = l[j];
    if (typeof v !== kind) throw new Error(`journal: malformed state run of execution ${r.x} at token ${j}`);
    return v as T;
  };
  const push = () => {
    visit(timestamp, type, id, id === r.i ? r.p : id - 1, type.endsWith("StateEntered") ? 0 : 1, name, text);
    id++;
  };
  for (let j = 0; j < l.length; ) {
    const token = l[j++];
    if (typeof token === "string") {
      // An entry under a new name and its exit.
      name = token;
      type = predictType(type);
      push();
      type = predictType(type);
      push();
      continue;
    }
    const mask = field<number>(j - 1, "number");
    type = mask & 1 ? field<string>(j++, "string") : predictType(type);
    if (mask & 2) name = field<string>(j++, "string");
    if (mask & 4) text = field<string>(j++, "string");
    if (mask & 8) timestamp += field<number>(j++, "number");
    push();
  }
}

/** The events of an `sr` record in AWS's shape, as `[branch, event]` pairs. */
export function decodeRun(r: Extract<JournalRecord, { k: "sr" }>): Array<[string, HistoryEvent]> {
  const out: Array<[string, HistoryEvent]> = [];
  readRun(r, (timestamp, type, id, previousEventId, kind, name, text) => {
    out.push([r.b, plainStateEvent(kind, timestamp, type, id, previousEventId, name, text)]);
  });
  return out;
}

/**
 * Serialize a batch: a branch checkpoint superseded later in the same batch is dropped (only the
 * last one matters), runs of events of one execution are written as one record, and state runs as
 * `sr` records.
 */
export function encodeBatch(batch: QueuedRecord[]): string {
  const lastCp = new Map<string, number>();
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i] as QueuedRecord;
    if (r.k === "cp") lastCp.set(`${r.x}|${r.b}`, i);
  }
  const lines: string[] = [];
  let run: { x: number; l: EncodedEvent[] } | undefined;
  const endRun = () => {
    if (run) lines.push(JSON.stringify({ k: "evs", x: run.x, l: run.l }));
    run = undefined;
  };
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i] as QueuedRecord;
    if (r.k === "ev") {
      if (run && run.x !== r.x) endRun();
      run ??= { x: r.x, l: [] };
      run.l.push(encodeEvent(r.b, r.e));
      continue;
    }
    if (r.k === "cp" && lastCp.get(`${r.x}|${r.b}`) !== i) continue;
    endRun();
    lines.push(r.k === "run" ? encodeRun(r) : JSON.stringify(r));
  }
  endRun();
  return `${lines.join("\n")}\n`;
}

/** The journal. `stateDir` undefined keeps nothing (an in-memory engine). */
export class Journal {
  private fd: number | undefined;
  private buffer: QueuedRecord[] = [];
  private scheduled = false;
  private bytes = 0;

  constructor(
    private readonly stateDir: string | undefined,
    private readonly options: { fsync?: boolean } = {},
  ) {}

  /** Read every record in the log (a torn last line from a crash is ignored). */
  read(): JournalRecord[] {
    if (!this.stateDir) return [];
    const path = join(this.stateDir, FILE);
    if (!existsSync(path)) return [];
    const text = readFileSync(path, "utf8");
    const out: JournalRecord[] = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line.length === 0) continue;
      try {
        out.push(JSON.parse(line) as JournalRecord);
      } catch (e) {
        // Only the last line can be torn by a crash; anything else is corruption worth reporting.
        if (i < lines.length - 2)
          throw new Error(`corrupt journal ${path} at line ${i + 1}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  /** Replace the log with `records` (compaction) and open it for appending. */
  rewrite(records: Iterable<JournalRecord>): void {
    if (!this.stateDir) return;
    mkdirSync(this.stateDir, { recursive: true });
    // The records still queued are part of the state being written out.
    this.buffer = [];
    this.scheduled = false;
    const path = join(this.stateDir, FILE);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, "w");
    let chunk: string[] = [];
    let size = 0;
    for (const r of records) {
      const line = `${JSON.stringify(r)}\n`;
      chunk.push(line);
      size += line.length;
      if (size > 1 << 20) {
        writeSync(fd, chunk.join(""));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length) writeSync(fd, chunk.join(""));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    this.open();
  }

  private open(): void {
    if (!this.stateDir) return;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = openSync(join(this.stateDir, FILE), "a");
    this.bytes = 0;
  }

  /** Queue a record; it becomes durable at the next flush (at the latest on the next macrotask). */
  append(r: QueuedRecord): void {
    if (!this.stateDir) return;
    this.buffer.push(r);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Queue event `id` of execution `x`'s `history`, a plain StateEntered/StateExited of branch `b`:
   * it extends the run queued last when it follows that run's last event.
   */
  appendStateEvent(x: number, b: string, history: History, id: number): void {
    if (!this.stateDir) return;
    if (!history.isState(id)) {
      this.append({ k: "ev", x, b, e: history.get(id) as HistoryEvent });
      return;
    }
    const tail = this.buffer[this.buffer.length - 1];
    if (
      tail?.k === "run" &&
      tail.x === x &&
      tail.b === b &&
      tail.history === history &&
      tail.to === id - 1 &&
      history.previousOf(id) === id - 1
    ) {
      tail.to = id;
      return;
    }
    this.append({ k: "run", x, b, history, from: id, to: id });
  }

  /** Write everything queued, in one write. */
  flush(): void {
    this.scheduled = false;
    if (this.fd === undefined || this.buffer.length === 0) return;
    let text: string;
    try {
      text = encodeBatch(this.buffer);
    } catch {
      // A record that cannot be serialized (too deep) must not take the engine down with it:
      // keep every other record of the batch.
      text = this.buffer
        .map((r) => {
          try {
            return `${encodeBatch([r])}`;
          } catch (e) {
            process.stderr.write(
              `sfn journal: dropped an unserializable ${r.k} record: ${(e as Error).message}\n`,
            );
            return "";
          }
        })
        .join("");
    }
    this.buffer = [];
    writeSync(this.fd, text);
    this.bytes += text.length;
    if (this.options.fsync) fsyncSync(this.fd);
  }

  /** Bytes appended since the last compaction. */
  get appendedBytes(): number {
    return this.bytes;
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
