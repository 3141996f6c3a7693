import { createHash } from "node:crypto";
import { mkdir, readFile, realpath, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { GangwayError } from "../core/errors.js";

/** A state directory (a stack's, an engine's journal, an emulator's log) another process holds. */
export class StateDirInUse extends GangwayError {
  override readonly name = "StateDirInUse";
}

/**
 * Hold a durable component's state dir, or throw StateDirInUse naming it, its holder and `hint`:
 * two processes appending to one journal would corrupt it (and a second stack would kill the
 * first one's workloads as leftovers).
 */
export function lockStateDir(dir: string, what: string, hint: string): Promise<DirLock> {
  return lockDir(dir, `gangway-${what.replaceAll(" ", "-")}-statedir`, "owner.json", (real, owner) => {
    const pid = owner?.pid ? ` (pid ${owner.pid})` : "";
    return new StateDirInUse(`state dir ${real} is in use by another ${what}${pid}; ${hint}`, {
      stateDir: real,
      ...(owner ?? {}),
    });
  });
}

/** A directory held by this process until {@link DirLock.release}. */
export interface DirLock {
  /** The directory's real path. */
  dir: string;
  /** Rewrite the owner file with more about this holder (best effort: only an aid to errors). */
  noteOwner(extra: Record<string, unknown>): Promise<void>;
  release(): Promise<void>;
}

/** What the owner file of a held directory says of its holder (`pid` and whatever it noted). */
export type DirOwner = { pid?: number } & Record<string, unknown>;

/**
 * Hold `dir` for this process alone, or call `inUse` (and throw what it returns) when another
 * process of this machine holds it under the same `namespace`. The lock is a Linux abstract Unix
 * socket named after the namespace and the dir's real path: binding it is atomic and the kernel
 * frees it when its holder dies, so a crashed holder leaves no stale lock to judge. `ownerFile`
 * (in `dir`) names the holder for the error the next one gets.
 *
 * @example
 * const lock = await lockDir(".gangway", "gangway-stack-statedir", "stack-owner.json", (dir, owner) =>
 *   new Error(`${dir} is in use by pid ${owner?.pid}`));
 * // … await lock.release();
 */
export async function lockDir(
  dir: string,
  namespace: string,
  ownerFile: string,
  inUse: (dir: string, owner: DirOwner | undefined) => Error,
): Promise<DirLock> {
  await mkdir(dir, { recursive: true });
  const real = await realpath(dir);
  const name = `\0${namespace}/${createHash("sha256").update(real).digest("hex")}`;
  const server: Server = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ path: name }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
    const owner = await readFile(join(real, ownerFile), "utf8")
      .then((t) => JSON.parse(t) as DirOwner)
      .catch(() => undefined);
    throw inUse(real, owner);
  }
  // The lock must never keep the process alive on its own.
  server.unref();
  const note = (extra: Record<string, unknown>) =>
    writeFile(join(real, ownerFile), `${JSON.stringify({ pid: process.pid, ...extra })}\n`).catch(() => {
      // only an aid to the error message
    });
  await note({});
  let released: Promise<void> | undefined;
  return {
    dir: real,
    noteOwner: note,
    release() {
      released ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return released;
    },
  };
}

/**
 * Start a durable component holding its state dir (none: nothing to hold): the lock is taken
 * first, given to `start` (whose component releases it when it closes), and released if `start`
 * fails.
 */
export function startHoldingStateDir<T>(
  dir: string,
  what: string,
  hint: string,
  start: (lock: DirLock) => Promise<T>,
): Promise<T>;
export function startHoldingStateDir<T>(
  dir: string | undefined,
  what: string,
  hint: string,
  start: (lock: DirLock | undefined) => Promise<T>,
): Promise<T>;
export async function startHoldingStateDir<T>(
  dir: string | undefined,
  what: string,
  hint: string,
  start: (lock: DirLock) => Promise<T>,
): Promise<T> {
  const lock = dir === undefined ? undefined : await lockStateDir(dir, what, hint);
  try {
    return await start(lock as DirLock);
  } catch (e) {
    await lock?.release();
    throw e;
  }
}
