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
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { PubSubStorageFailed } from "./errors.js";
import type { StoredMessage, SubscriptionConfig, TopicConfig } from "./types.js";

/** A message as written to the log: seq, base64 data, attributes, ordering key, publish time (ms). */
export interface LoggedMessage {
  s: number;
  d: string;
  a: Record<string, string>;
  k: string;
  p: number;
}

/** One line of the write-ahead log. Replaying every line in order rebuilds the broker's state. */
export type JournalRecord =
  | { t: "topic"; topic: TopicConfig }
  | { t: "topic-"; name: string }
  | { t: "sub"; sub: SubscriptionConfig }
  | { t: "sub-"; name: string }
  | { t: "pub"; m: LoggedMessage; subs: string[] }
  | { t: "pubs"; ms: LoggedMessage[]; subs: string[] }
  | { t: "ack"; sub: string; seqs: number[] };

/** Where the broker writes what must survive a restart. */
export interface Journal {
  /** Append a record; resolves once it is on disk (fsync), rejects with PubSubStorageFailed. */
  append(record: JournalRecord): Promise<void>;
  /** Ask for a rewrite of the log from `snapshot()` between two flushes. */
  requestCompaction(snapshot: () => Iterable<JournalRecord>): void;
  /** Records appended since the last compaction (a batch of messages counts each message). */
  readonly appendedSinceCompaction: number;
  close(): Promise<void>;
}

const LOG_FILE = "pubsub.log";

/** Read every complete record of the log in `dir`; a torn last line (crash mid-write) is skipped. */
export function readJournal(dir: string, warn: (msg: string) => void = () => {}): JournalRecord[] {
  const path = join(dir, LOG_FILE);
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const records: JournalRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line) continue;
    try {
      const rec = JSON.parse(line) as JournalRecord;
      if (rec && typeof rec === "object" && typeof rec.t === "string") records.push(rec);
      else warn(`pubsub journal line ${i + 1}: not a record, skipped`);
    } catch {
      warn(
        `pubsub journal line ${i + 1}: unreadable${i === lines.length - 1 ? " (torn tail)" : ""}, skipped`,
      );
    }
  }
  return records;
}

/** Write `records` as a fresh log (temp file, fsync, rename, fsync of the directory). */
export function writeJournalFile(dir: string, records: Iterable<JournalRecord>): void {
  const tmp = join(dir, `${LOG_FILE}.tmp`);
  const fd = openSync(tmp, "w");
  try {
    let chunk: string[] = [];
    for (const r of records) {
      chunk.push(JSON.stringify(r));
      if (chunk.length >= 1000) {
        writeSync(fd, `${chunk.join("\n")}\n`);
        chunk = [];
      }
    }
    if (chunk.length > 0) writeSync(fd, `${chunk.join("\n")}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, LOG_FILE));
  const dirFd = openSync(dir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Append-only log with group commit: records appended while a write+fdatasync is in flight go
 * out together in the next one, so many concurrent Publish calls share one fsync.
 */
export class FileJournal implements Journal {
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private compaction: (() => Iterable<JournalRecord>) | undefined;
  private closed = false;
  /**
   * Bytes of the log that hold whole records. A write that failed part way is cut back to here,
   * so the next batch does not continue the broken line (its first record would be lost).
   */
  private size = 0;
  /** The cut failed too: the next write starts on a fresh line, and the size is read again after. */
  private torn = false;
  appendedSinceCompaction = 0;
  /** The last compaction failure, if any (the log stays valid; it just is not shortened). */
  compactionError: Error | undefined;

  private constructor(
    private readonly dir: string,
    private handle: FileHandle,
  ) {}

  /**
   * Open (creating) the log in `dir` for appending. Replay with `readJournal` first: a torn last
   * line (which replay skipped) is cut off here, so the first record appended starts a line.
   */
  static async open(dir: string): Promise<FileJournal> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, LOG_FILE);
    const handle = await open(path, "a+");
    try {
      const journal = new FileJournal(dir, handle);
      journal.size = await wholeLinesEnd(handle);
      if (journal.size < (await handle.stat()).size) {
        await handle.truncate(journal.size);
        await handle.datasync();
      }
      return journal;
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  append(record: JournalRecord): Promise<void> {
    if (this.closed) return Promise.reject(new PubSubStorageFailed("the emulator is shutting down"));
    this.pending.push(JSON.stringify(record));
    // Counted in messages, so a log of big publish batches is compacted as often as one of singles.
    this.appendedSinceCompaction += record.t === "pubs" ? record.ms.length : 1;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  requestCompaction(snapshot: () => Iterable<JournalRecord>): void {
    if (this.closed) return;
    this.compaction = snapshot;
    if (!this.flushing) this.flushing = this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    // Let every append of this turn of the event loop join the batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.pending.length > 0 || this.compaction) {
      if (this.compaction) {
        // A failed rewrite leaves the old log (renamed over only when complete): keep appending.
        await this.compact().catch((e: Error) => {
          this.compactionError = e;
        });
      }
      if (this.pending.length === 0) continue;
      const lines = this.pending;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      const bytes = Buffer.from(`${this.torn ? "\n" : ""}${lines.join("\n")}\n`);
      try {
        for (let off = 0; off < bytes.length; ) {
          off += (await this.handle.write(bytes, off, bytes.length - off)).bytesWritten;
        }
        await this.handle.datasync();
        this.size = this.torn ? (await this.handle.stat()).size : this.size + bytes.length;
        this.torn = false;
        for (const w of waiters) w.resolve();
      } catch (e) {
        // What did reach the file is not acknowledged: cut it off, or it would be replayed (or
        // glue the next batch onto its broken line).
        await this.handle.truncate(this.size).then(
          () => {
            this.torn = false;
          },
          () => {
            this.torn = true;
          },
        );
        const err = new PubSubStorageFailed(`pubsub journal write failed: ${(e as Error).message}`);
        for (const w of waiters) w.reject(err);
      }
    }
    this.flushing = undefined;
  }

  private async compact(): Promise<void> {
    const snapshot = this.compaction;
    this.compaction = undefined;
    if (!snapshot) return;
    await this.handle.close();
    try {
      writeJournalFile(this.dir, snapshot());
      this.appendedSinceCompaction = 0;
    } finally {
      this.handle = await open(join(this.dir, LOG_FILE), "a+");
      this.size = await wholeLinesEnd(this.handle);
      this.torn = this.size < (await this.handle.stat()).size;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (let f = this.flushing; f !== undefined; f = this.flushing) await f;
    await this.handle.close();
  }
}

/** The offset just past the log's last newline (0 when it has none): where its whole lines end. */
async function wholeLinesEnd(handle: FileHandle): Promise<number> {
  const { size } = await handle.stat();
  const chunk = Buffer.alloc(64 * 1024);
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - chunk.length);
    const { bytesRead } = await handle.read(chunk, 0, end - start, start);
    const at = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (at >= 0) return start + at + 1;
    end = start;
  }
  return 0;
}

/** A stored message as a log record field. */
export function toLogged(m: StoredMessage): LoggedMessage {
  return { s: m.seq, d: m.data.toString("base64"), a: m.attributes, k: m.orderingKey, p: m.publishTimeMs };
}

/** A stored message back from its log record field. */
export function fromLogged(l: LoggedMessage): StoredMessage {
  const data = Buffer.from(l.d, "base64");
  let size = data.length;
  for (const k in l.a) size += k.length + (l.a[k]?.length ?? 0);
  return { seq: l.s, data, attributes: l.a, orderingKey: l.k, publishTimeMs: l.p, size };
}
