import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
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

/**
 * The results store as a directory: one file per key, written atomically (temp file + rename),
 * `create` with O_EXCL so the first writer wins across processes. The embedded stack's store.
 * Writes survive a killed process as they are; `fsync: true` makes them survive a power loss too,
 * at a few milliseconds a write.
 */
export function createDirectoryResultsStore(root: string, options: { fsync?: boolean } = {}): ResultsStore {
  const sync = options.fsync === true;
  const pathOf = (key: string) => join(root, ...checkKey(key).split("/"));
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
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
      const fh = await open(tmp, "w");
      try {
        await fh.writeFile(value);
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    },
    async create(key, value) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      let fh: Awaited<ReturnType<typeof open>>;
      try {
        fh = await open(path, "wx");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw e;
      }
      try {
        await fh.writeFile(value);
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      return true;
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
