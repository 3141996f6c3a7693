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
import type { HistoryEvent, JournalRecord } from "./model.js";

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
  const e: HistoryEvent =
    kind === 0
      ? {
          timestamp,
          type,
          id,
          previousEventId,
          stateEnteredEventDetails: { name, input: text, inputDetails: { truncated: false } },
        }
      : {
          timestamp,
          type,
          id,
          previousEventId,
          stateExitedEventDetails: { name, output: text, outputDetails: { truncated: false } },
        };
  return [b, e];
}

/**
 * Serialize a batch: a branch checkpoint superseded later in the same batch is dropped (only the
 * last one matters), and runs of events of one execution are written as one record.
 */
export function encodeBatch(batch: JournalRecord[]): string {
  const lastCp = new Map<string, number>();
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i] as JournalRecord;
    if (r.k === "cp") lastCp.set(`${r.x}|${r.b}`, i);
  }
  const lines: string[] = [];
  let run: { x: number; l: EncodedEvent[] } | undefined;
  const endRun = () => {
    if (run) lines.push(JSON.stringify({ k: "evs", x: run.x, l: run.l }));
    run = undefined;
  };
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i] as JournalRecord;
    if (r.k === "ev" || r.k === "evt") {
      if (run && run.x !== r.x) endRun();
      run ??= { x: r.x, l: [] };
      run.l.push(r.k === "evt" ? r.t : encodeEvent(r.b, r.e));
      continue;
    }
    if (r.k === "cp" && lastCp.get(`${r.x}|${r.b}`) !== i) continue;
    endRun();
    lines.push(JSON.stringify(r));
  }
  endRun();
  return `${lines.join("\n")}\n`;
}

/** The journal. `stateDir` undefined keeps nothing (an in-memory engine). */
export class Journal {
  private fd: number | undefined;
  private buffer: JournalRecord[] = [];
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
  append(r: JournalRecord): void {
    if (!this.stateDir) return;
    this.buffer.push(r);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
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
