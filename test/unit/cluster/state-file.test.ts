import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  readClusterState,
  removeClusterState,
  writeClusterState,
} from "../../../infra/local/cluster/state-file.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gangway-state-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("local cluster state file", () => {
  it("round-trips, is private to its owner, and is removed only by the cluster that wrote it", () => {
    const file = join(dir, "state.json");
    const state = { admin: "http://127.0.0.1:4000", tokenFile: "/tmp/t", pid: 4242 };
    writeClusterState(file, state);
    expect(readClusterState(file)).toEqual(state);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    removeClusterState(file, 1);
    expect(existsSync(file)).toBe(true);
    removeClusterState(file, 4242);
    expect(existsSync(file)).toBe(false);
  });

  it("explains a missing or foreign file", () => {
    expect(() => readClusterState(join(dir, "none.json"))).toThrow(/no running local cluster/);
    writeFileSync(join(dir, "other.json"), '{"x":1}');
    expect(() => readClusterState(join(dir, "other.json"))).toThrow(/not a local cluster state file/);
  });
});
