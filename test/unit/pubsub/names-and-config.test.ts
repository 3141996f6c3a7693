import { describe, expect, it } from "vitest";
import {
  applyUpdateMask,
  MUTABLE_SUBSCRIPTION_FIELDS,
  validateSubscription,
  validateTopic,
} from "../../../infra/local/pubsub/config.js";
import { PubSubInvalidArgument } from "../../../infra/local/pubsub/errors.js";
import { parseProjectName, parseResourceName } from "../../../infra/local/pubsub/names.js";
import { checkPublishRequest } from "../../../infra/local/pubsub/publish-limits.js";

describe("resource names", () => {
  it("parses valid names", () => {
    expect(parseResourceName("projects/my-proj/topics/jobs.v1~x", "topics", "topic")).toEqual({
      project: "my-proj",
      kind: "topics",
      id: "jobs.v1~x",
    });
    expect(parseProjectName("projects/p1")).toBe("p1");
  });

  it.each([
    ["", "empty"],
    ["projects/p/topics/ab", "too short"],
    ["projects/p/topics/1abc", "starts with a digit"],
    ["projects/p/topics/goog-x", "reserved prefix"],
    ["projects/p/topics/a b c", "space"],
    ["projects/p/subscriptions/abc", "wrong kind"],
    ["projects//topics/abc", "empty project"],
    [`projects/p/topics/${"a".repeat(256)}`, "too long"],
    ["projects/p/topics/abc/extra", "extra segment"],
  ])("refuses %j (%s) with INVALID_ARGUMENT", (name) => {
    expect(() => parseResourceName(name, "topics", "topic")).toThrow(PubSubInvalidArgument);
  });
});

describe("subscription settings", () => {
  const base = { name: "projects/p/subscriptions/sub", topic: "projects/p/topics/top" };

  it("fills Google's defaults", () => {
    const s = validateSubscription(base);
    expect(s.ackDeadlineSeconds).toBe(10);
    expect(s.messageRetentionDuration).toEqual({ seconds: String(7 * 24 * 3600), nanos: 0 });
    expect(s.deadLetterPolicy).toBeUndefined();
    const dl = validateSubscription({
      ...base,
      deadLetterPolicy: { deadLetterTopic: "projects/p/topics/dead" },
    });
    expect(dl.deadLetterPolicy?.maxDeliveryAttempts).toBe(5);
  });

  it.each([
    [{ ackDeadlineSeconds: 9 }],
    [{ ackDeadlineSeconds: 601 }],
    [{ deadLetterPolicy: { deadLetterTopic: "projects/p/topics/dead", maxDeliveryAttempts: 101 } }],
    [{ retryPolicy: { minimumBackoff: { seconds: 20 }, maximumBackoff: { seconds: 10 } } }],
    [{ messageRetentionDuration: { seconds: 60 } }],
    [{ pushConfig: { pushEndpoint: "not a url", attributes: {} } }],
    [{ pushConfig: { pushEndpoint: "https://x", attributes: {}, oidcToken: { serviceAccountEmail: "" } } }],
    [{ filter: 'attributes.kind = "x"' }],
    [{ labels: { "Bad Key": "v" } }],
  ])("refuses %j", (extra) => {
    expect(() => validateSubscription({ ...base, ...extra })).toThrow(PubSubInvalidArgument);
  });

  it("applies update masks and refuses immutable fields", () => {
    const s = validateSubscription(base);
    const patched = applyUpdateMask(
      s,
      { ackDeadlineSeconds: 30 },
      ["ack_deadline_seconds"],
      MUTABLE_SUBSCRIPTION_FIELDS,
    );
    expect(patched.ackDeadlineSeconds).toBe(30);
    expect(() => applyUpdateMask(s, { topic: "x" }, ["topic"], MUTABLE_SUBSCRIPTION_FIELDS)).toThrow(
      PubSubInvalidArgument,
    );
    expect(() => applyUpdateMask(s, {}, [], MUTABLE_SUBSCRIPTION_FIELDS)).toThrow(PubSubInvalidArgument);
  });

  it("validates topics", () => {
    expect(validateTopic({ name: "projects/p/topics/top", labels: { a: "b" } }).labels).toEqual({ a: "b" });
    expect(() => validateTopic({ name: "projects/p/topics/top", schemaSettings: { schema: "s" } })).toThrow(
      PubSubInvalidArgument,
    );
  });
});

describe("publish limits", () => {
  it("accepts data or attributes, refuses empty, oversize and reserved", () => {
    expect(() => checkPublishRequest([{ data: Buffer.from("x"), attributes: {} }])).not.toThrow();
    expect(() => checkPublishRequest([{ attributes: { a: "b" } }])).not.toThrow();
    expect(() => checkPublishRequest([])).toThrow(PubSubInvalidArgument);
    expect(() => checkPublishRequest([{ attributes: {} }])).toThrow(/data or at least one attribute/);
    expect(() => checkPublishRequest([{ data: Buffer.alloc(10 * 1024 * 1024 + 1), attributes: {} }])).toThrow(
      /exceeds the limit/,
    );
    expect(() => checkPublishRequest([{ data: Buffer.from("x"), attributes: { googkey: "v" } }])).toThrow(
      /goog/,
    );
    expect(() =>
      checkPublishRequest([{ data: Buffer.from("x"), attributes: { k: "v".repeat(1025) } }]),
    ).toThrow(/1024/);
    const many = Array.from({ length: 1001 }, () => ({ data: Buffer.from("x"), attributes: {} }));
    expect(() => checkPublishRequest(many)).toThrow(/at most 1000/);
  });
});
