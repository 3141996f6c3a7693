import { constants, type Stats } from "node:fs";
import { open, readdir, rm, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { agentRunFiles } from "../../core/env-contract.js";
import { ResultTooLarge } from "../../core/errors.js";
import { type SerializedError, SerializedErrorSchema, serializeError } from "../../core/serialized-error.js";

/** What a workload left in its result file. */
export type ResultRead =
  | { kind: "absent" }
  | { kind: "ok"; json: string; bytes: number }
  | { kind: "invalid"; error: SerializedError; bytes: number }
  | { kind: "too-large"; error: SerializedError; bytes: number };

/** What {@link readCapped} found at a path. */
export type CappedRead =
  | undefined
  | { tooLarge: false; text: string; bytes: number }
  | { tooLarge: true; bytes: number }
  /** Not a readable regular file (a directory, FIFO, symlink, socket …, or a read error): `found` says what. */
  | { tooLarge: false; unreadable: true; found: string };

// The workload controls these paths: never follow a symlink (it could point anywhere the agent
// may read), and never block in open (a FIFO with no writer would hang the run's end).
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

function describeNonFile(s: Stats): string {
  if (s.isDirectory()) return "a directory";
  if (s.isFIFO()) return "a FIFO";
  if (s.isSocket()) return "a socket";
  if (s.isCharacterDevice()) return "a character device";
  if (s.isBlockDevice()) return "a block device";
  return "not a regular file";
}

/**
 * Read at most `limit` bytes of a regular file. Returns `undefined` when there is no file,
 * `{ tooLarge: true, bytes }` (never a truncated text) when it is larger than `limit`, and
 * `{ unreadable: true, found }` when something else is there or it cannot be read. Never throws,
 * never blocks on what the workload put at `path`.
 */
export async function readCapped(path: string, limit: number): Promise<CappedRead> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    // O_NOFOLLOW refuses a symlink with ELOOP; a socket cannot be opened at all (ENXIO).
    if (code === "ELOOP") return { tooLarge: false, unreadable: true, found: "a symbolic link" };
    if (code === "ENXIO") return { tooLarge: false, unreadable: true, found: "a socket or device" };
    return {
      tooLarge: false,
      unreadable: true,
      found: `cannot be opened (${code ?? (e as Error).message})`,
    };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { tooLarge: false, unreadable: true, found: describeNonFile(stat) };
    const { size } = stat;
    if (size > limit) return { tooLarge: true, bytes: size };
    // Read one byte past the cap: the file may have grown since stat.
    const buf = Buffer.alloc(Math.min(limit + 1, size + 1));
    let off = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
      if (off >= buf.length) break;
    }
    if (off > limit) return { tooLarge: true, bytes: off };
    return { tooLarge: false, text: buf.subarray(0, off).toString("utf8"), bytes: off };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      tooLarge: false,
      unreadable: true,
      found: `cannot be read (${code ?? (e as Error).message})`,
    };
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * Clear a run file's path before a run: whatever a previous workload left there (a file, a
 * symlink, a FIFO, a whole directory) goes, so it cannot poison later runs. Best effort: a path
 * we cannot clear is not worth a failed run (the read after the run reports what is there).
 */
export async function clearRunFile(path: string): Promise<void> {
  try {
    // A bare unlink first: the usual case (a file or nothing), and cheaper than rm's walk.
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    await rm(path, { recursive: true, force: true }).catch(() => {
      // no permission, or busy: leave it
    });
  }
}

/** Read and check the JSON result a workload wrote to `GANGWAY_RESULT_FILE`. */
export async function readResultFile(path: string, limit: number): Promise<ResultRead> {
  const read = await readCapped(path, limit);
  if (!read) return { kind: "absent" };
  if ("unreadable" in read) {
    return {
      kind: "invalid",
      bytes: 0,
      error: {
        name: "InvalidResult",
        message: `result file ${path} is not a readable regular file: ${read.found}`,
        details: { path, found: read.found },
      },
    };
  }
  if (read.tooLarge) {
    const error = new ResultTooLarge(`result file is ${read.bytes} bytes, more than the limit of ${limit}`, {
      bytes: read.bytes,
      limit,
    });
    return { kind: "too-large", error: serializeError(error), bytes: read.bytes };
  }
  try {
    JSON.parse(read.text);
    return { kind: "ok", json: read.text.trim(), bytes: read.bytes };
  } catch (e) {
    return {
      kind: "invalid",
      bytes: read.bytes,
      error: {
        name: "InvalidResult",
        message: `result file is not JSON: ${(e as Error).message}`,
        details: { bytes: read.bytes },
      },
    };
  }
}

/**
 * Read the serialized error a failing workload may write to `GANGWAY_ERROR_FILE`. A file that is
 * not a serialized error is reported as such (with its start), never passed on as if it were one.
 */
export async function readErrorFile(path: string, limit: number): Promise<SerializedError | undefined> {
  const read = await readCapped(path, limit);
  if (!read) return undefined;
  if ("unreadable" in read) {
    return {
      name: "InvalidErrorFile",
      message: `error file ${path} is not a readable regular file: ${read.found}`,
      details: { path, found: read.found },
    };
  }
  if (read.tooLarge) {
    return {
      name: "InvalidErrorFile",
      message: `error file is ${read.bytes} bytes, more than the limit of ${limit}`,
      details: { bytes: read.bytes, limit },
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(read.text);
  } catch {
    return {
      name: "InvalidErrorFile",
      message: "error file is not JSON",
      details: { start: read.text.slice(0, 200) },
    };
  }
  const parsed = SerializedErrorSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  return {
    name: "InvalidErrorFile",
    message: "error file is not a serialized error {name, message, stack?, cause?}",
    details: { start: read.text.slice(0, 200) },
  };
}

/**
 * The result a finished run of `jobId`'s `attempt` left on disk under `workDir` (a host runs one
 * run per attempt), or `undefined` when there is none to give.
 */
export async function readLeftResult(
  workDir: string,
  jobId: string,
  attempt: number,
  limit: number,
): Promise<{ json: string; bytes: number } | undefined> {
  const attemptDir = dirname(agentRunFiles(workDir, { jobId, attempt }, 0, 0).dir);
  const runs = await readdir(attemptDir).catch(() => [] as string[]);
  const [only, ...more] = runs.filter((name) => /^slice-\d+-host-\d+$/.test(name));
  if (only === undefined || more.length > 0) return undefined;
  const read = await readResultFile(`${attemptDir}/${only}/result.json`, limit);
  return read.kind === "ok" ? { json: read.json, bytes: read.bytes } : undefined;
}
