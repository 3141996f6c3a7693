import { open } from "node:fs/promises";
import { ResultTooLarge } from "../../core/errors.js";
import { type SerializedError, SerializedErrorSchema, serializeError } from "../../core/serialized-error.js";

/** What a workload left in its result file. */
export type ResultRead =
  | { kind: "absent" }
  | { kind: "ok"; json: string; bytes: number }
  | { kind: "invalid"; error: SerializedError; bytes: number }
  | { kind: "too-large"; error: SerializedError; bytes: number };

/**
 * Read at most `limit` bytes of a file. Returns `undefined` when there is no file and
 * `{ tooLarge: true, bytes }` (never a truncated text) when it is larger than `limit`.
 */
export async function readCapped(
  path: string,
  limit: number,
): Promise<undefined | { tooLarge: false; text: string; bytes: number } | { tooLarge: true; bytes: number }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch {
    return undefined;
  }
  try {
    const { size } = await handle.stat();
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
  } finally {
    await handle.close();
  }
}

/** Read and check the JSON result a workload wrote to `GANGWAY_RESULT_FILE`. */
export async function readResultFile(path: string, limit: number): Promise<ResultRead> {
  const read = await readCapped(path, limit);
  if (!read) return { kind: "absent" };
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
