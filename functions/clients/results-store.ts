import { randomBytes } from "node:crypto";
import { access, link, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { ResultsStore } from "../ports.js";

/** A key the stores accept: `/`-separated, no empty, `.` or `..` segments. */
export function checkKey(key: string): string {
  const segments = (key.endsWith("/") ? key.slice(0, -1) : key).split("/");
  const bad = segments.some((p) => p === "" || p === "." || p === "..");
  if (key.length === 0 || key.length > 1024 || key.includes("\0") || bad) {
    throw new RangeError(`invalid store key ${JSON.stringify(key)}`);
  }
  return key;
}

/** Whether something is at `path`. */
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The results store as a directory: one file per key, written whole to a temp file first, then
 * renamed into place (`put`) or linked into place (`create`: `link` fails when the key exists, so
 * the first writer wins across processes). A reader never sees half a value, and a process killed
 * mid-write (or a full disk) leaves no key behind, only a temp file that listings skip. The
 * embedded stack's store. `fsync: true` makes writes survive a power loss too, at a few
 * milliseconds a write.
 */
export function createDirectoryResultsStore(root: string, options: { fsync?: boolean } = {}): ResultsStore {
  const sync = options.fsync === true;
  const pathOf = (key: string) => join(root, ...checkKey(key).split("/"));
  /** Write `value` to a fresh temp file beside `path`; answers the temp file's path. */
  const writeTemp = async (path: string, value: string): Promise<string> => {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      const fh = await open(tmp, "wx");
      try {
        await fh.writeFile(value);
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return tmp;
  };
  return {
    async get(key) {
      try {
        return await readFile(pathOf(key), "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
    },
    async put(key, value) {
      const path = pathOf(key);
      const tmp = await writeTemp(path, value);
      try {
        await rename(tmp, path);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    },
    async create(key, value) {
      const path = pathOf(key);
      // Most creates of a key already there are repeats (a host's end, re-sent every beat):
      // answered without writing the value first. `link` still decides a race.
      if (await exists(path)) return false;
      const tmp = await writeTemp(path, value);
      try {
        await link(tmp, path);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw e;
      } finally {
        await rm(tmp, { force: true });
      }
    },
    async list(prefix) {
      if (prefix !== "") checkKey(prefix.endsWith("/") ? prefix : `${prefix}x`);
      const dirKey = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix.split("/").slice(0, -1).join("/");
      const base = dirKey ? join(root, ...dirKey.split("/")) : root;
      const out: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        let entries: import("node:fs").Dirent[];
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
          throw e;
        }
        for (const entry of entries) {
          const full = join(dir, entry.name);
          if (entry.isDirectory()) await walk(full);
          else if (!entry.name.endsWith(".tmp")) {
            const key = relative(root, full).split(sep).join("/");
            if (key.startsWith(prefix)) out.push(key);
          }
        }
      };
      await walk(base);
      return out.sort();
    },
    async delete(key) {
      await rm(pathOf(key), { force: true, recursive: true });
    },
  };
}

/** The results store in memory: for unit tests and single-process tools. */
export function createMemoryResultsStore(): ResultsStore & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  return {
    entries,
    get: async (key) => entries.get(checkKey(key)),
    put: async (key, value) => {
      entries.set(checkKey(key), value);
    },
    create: async (key, value) => {
      if (entries.has(checkKey(key))) return false;
      entries.set(key, value);
      return true;
    },
    list: async (prefix) => [...entries.keys()].filter((k) => k.startsWith(prefix)).sort(),
    delete: async (key) => {
      for (const k of [...entries.keys()]) if (k === key || k.startsWith(`${key}/`)) entries.delete(k);
    },
  };
}
