import { describe, expect, it } from "vitest";
import { createMemoryResultsStore } from "../../../functions/clients/results-store.js";
import { createS3ResultsStore } from "../../../functions/clients/s3-results-store.js";
import type { ResultsStore } from "../../../functions/ports.js";
import { awsError, FakeS3 } from "./fake-aws.js";

describe("S3 results store", () => {
  const make = (prefix?: string) => {
    const s3 = new FakeS3("results-bucket");
    return { s3, store: createS3ResultsStore({ client: s3, bucket: "results-bucket", prefix }) };
  };

  it("gets, puts and answers undefined for a missing key", async () => {
    const { s3, store } = make();
    expect(await store.get("jobs/j1/status.json")).toBeUndefined();
    await store.put("jobs/j1/status.json", '{"status":"RUNNING"}');
    expect(await store.get("jobs/j1/status.json")).toBe('{"status":"RUNNING"}');
    await store.put("jobs/j1/status.json", '{"status":"SUCCEEDED"}');
    expect(await store.get("jobs/j1/status.json")).toBe('{"status":"SUCCEEDED"}');
    const put = s3.requests.find((r) => r.command === "PutObjectCommand");
    expect(put?.input).toMatchObject({ Bucket: "results-bucket", Key: "jobs/j1/status.json" });
    expect(put?.input.IfNoneMatch).toBeUndefined();
  });

  it("creates with a conditional write: the first writer wins", async () => {
    const { s3, store } = make();
    expect(await store.create("jobs/j1/outcome.json", "first")).toBe(true);
    expect(await store.create("jobs/j1/outcome.json", "second")).toBe(false);
    expect(await store.get("jobs/j1/outcome.json")).toBe("first");
    const creates = s3.requests.filter((r) => r.command === "PutObjectCommand");
    expect(creates.map((r) => r.input.IfNoneMatch)).toEqual(["*", "*"]);
  });

  it("counts a conflicting concurrent conditional write as not first, and rethrows anything else", async () => {
    const conflict = createS3ResultsStore({
      client: { send: async () => Promise.reject(awsError("ConditionalRequestConflict", 409)) },
      bucket: "b",
    });
    expect(await conflict.create("k", "v")).toBe(false);
    const denied = createS3ResultsStore({
      client: { send: async () => Promise.reject(awsError("AccessDenied", 403)) },
      bucket: "b",
    });
    await expect(denied.create("k", "v")).rejects.toThrow("AccessDenied");
    await expect(denied.get("k")).rejects.toThrow("AccessDenied");
  });

  it("lists a prefix across pages, sorted", async () => {
    const { s3, store } = make();
    for (const k of ["jobs/b/2", "jobs/a/1", "jobs/b/1", "jobs/c", "other/x"]) await store.put(k, k);
    expect(await store.list("jobs/")).toEqual(["jobs/a/1", "jobs/b/1", "jobs/b/2", "jobs/c"]);
    expect(await store.list("jobs/b")).toEqual(["jobs/b/1", "jobs/b/2"]);
    expect(await store.list("")).toHaveLength(5);
    // Four keys in pages of two: the second page was asked for with the first's token.
    const lists = s3.requests.filter((r) => r.command === "ListObjectsV2Command");
    expect(lists.some((r) => r.input.ContinuationToken !== undefined)).toBe(true);
  });

  it("deletes a key and every key under it, not its siblings", async () => {
    const { store } = make();
    for (const k of ["jobs/j1", "jobs/j1/a", "jobs/j1/b/c", "jobs/j10/a", "jobs/j2/a"]) await store.put(k, k);
    await store.delete("jobs/j1");
    expect(await store.list("")).toEqual(["jobs/j10/a", "jobs/j2/a"]);
  });

  it("keeps every key under its prefix and hides the prefix from callers", async () => {
    const { s3, store } = make("stacks/gangway/");
    await store.put("jobs/j1/status.json", "x");
    expect([...s3.objects.keys()]).toEqual(["stacks/gangway/jobs/j1/status.json"]);
    expect(await store.list("jobs/")).toEqual(["jobs/j1/status.json"]);
    await store.delete("jobs");
    expect(s3.objects.size).toBe(0);
    expect(() => createS3ResultsStore({ client: s3, bucket: "b", prefix: "no-slash" })).toThrow(RangeError);
  });

  it("refuses keys the other stores refuse", async () => {
    const { store } = make();
    await expect(store.put("a/../b", "x")).rejects.toThrow(RangeError);
    await expect(store.get("")).rejects.toThrow(RangeError);
    await expect(store.list("a//")).rejects.toThrow(RangeError);
  });

  it("behaves as the memory store over the same sequence of operations", async () => {
    const { store: s3 } = make();
    const memory = createMemoryResultsStore();
    const run = async (store: ResultsStore) => {
      const seen: unknown[] = [];
      seen.push(await store.create("jobs/j/attempts/1/outcome", "a"));
      seen.push(await store.create("jobs/j/attempts/1/outcome", "b"));
      await store.put("jobs/j/attempts/2/outcome", "c");
      await store.put("jobs/k/status", "d");
      seen.push(await store.list("jobs/j/"));
      await store.delete("jobs/j/attempts/1");
      seen.push(await store.list("jobs/"));
      seen.push(await store.get("jobs/j/attempts/1/outcome"));
      seen.push(await store.get("jobs/k/status"));
      return seen;
    };
    expect(await run(s3)).toEqual(await run(memory));
  });
});
