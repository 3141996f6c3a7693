import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileJournal, type JournalRecord, readJournal } from "../../../infra/local/pubsub/journal.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "gangway-pubsub-torn-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const topic = (name: string): JournalRecord => ({ t: "topic", topic: { name, labels: {} } as never });
const names = (dir: string) => readJournal(dir).map((r) => (r.t === "topic" ? r.topic.name : r.t));

/** Make the journal's next write put half its bytes on disk, then fail (a full disk). */
function failNextWriteHalfway(journal: FileJournal): void {
  const handle = (journal as unknown as { handle: FileHandle }).handle;
  const real = handle.write.bind(handle) as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
  let armed = true;
  handle.write = (async (data: string | Buffer, ...rest: unknown[]) => {
    if (!armed) return real(data, ...rest);
    armed = false;
    const offset = typeof rest[0] === "number" ? rest[0] : 0;
    const length = typeof rest[1] === "number" ? rest[1] : undefined;
    const bytes =
      typeof data === "string" ? Buffer.from(data) : data.subarray(offset, length && offset + length);
    await real(bytes.subarray(0, Math.floor(bytes.length / 2)));
    throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  }) as never;
}

describe("a journal write that fails part way", () => {
  it("leaves nothing of itself, and the next batch replays whole", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    await journal.append(topic("projects/p/topics/before"));
    failNextWriteHalfway(journal);
    await expect(journal.append(topic("projects/p/topics/failed"))).rejects.toThrow(/ENOSPC/);
    await journal.append(topic("projects/p/topics/after"));
    await journal.close();
    expect(names(dir)).toEqual(["projects/p/topics/before", "projects/p/topics/after"]);
  });

  it("starts the next batch on a fresh line when the broken part cannot be cut off", async () => {
    const dir = tempDir();
    const journal = await FileJournal.open(dir);
    await journal.append(topic("projects/p/topics/before"));
    failNextWriteHalfway(journal);
    const handle = (journal as unknown as { handle: FileHandle }).handle;
    handle.truncate = async () => {
      throw new Error("EIO: i/o error, ftruncate");
    };
    await expect(journal.append(topic("projects/p/topics/failed"))).rejects.toThrow(/ENOSPC/);
    await journal.append(topic("projects/p/topics/after"));
    await journal.append(topic("projects/p/topics/later"));
    await journal.close();
    expect(names(dir)).toEqual([
      "projects/p/topics/before",
      "projects/p/topics/after",
      "projects/p/topics/later",
    ]);
  });
});

describe("a log that holds only a torn line", () => {
  it("is cut back when opened, so the first record appended starts a line of its own", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "pubsub.log"), '{"t":"topic","topic":{"name":"projects/p/top');
    expect(readJournal(dir)).toEqual([]);
    const journal = await FileJournal.open(dir);
    await journal.append(topic("projects/p/topics/first"));
    await journal.close();
    expect(names(dir)).toEqual(["projects/p/topics/first"]);
    expect(readFileSync(join(dir, "pubsub.log"), "utf8").split("\n")).toHaveLength(2);
  });
});
