import type { PubSubBroker, PubSubLogger } from "./broker.js";
import type { PushTokenSigner } from "./oidc.js";
import type { Consumer, Lease, SubscriptionQueue } from "./subscription-queue.js";
import type { SubscriptionConfig } from "./types.js";

/** HTTP statuses a push endpoint acknowledges with (Google's list). */
export const PUSH_ACK_STATUSES: ReadonlySet<number> = new Set([102, 200, 201, 202, 204]);

// Google backs push off per subscription after failures: from 100 ms doubling up to 60 s, one step
// per episode of failures (not one per message that failed in it).
const PUSH_BACKOFF_MIN_MS = 100;
const PUSH_BACKOFF_MAX_MS = 60_000;

/** The JSON body Google POSTs for a wrapped push message. */
export function pushBody(lease: Lease, subscription: string, withAttempt: boolean): string {
  const m = lease.entry.msg;
  const publishTime = new Date(m.publishTimeMs).toISOString();
  const message: Record<string, unknown> = {
    attributes: m.attributes,
    data: m.data.toString("base64"),
    messageId: String(m.seq),
    message_id: String(m.seq),
    publishTime,
    publish_time: publishTime,
  };
  if (m.orderingKey) message.orderingKey = m.orderingKey;
  const body: Record<string, unknown> = { message, subscription };
  if (withAttempt) body.deliveryAttempt = lease.entry.attempts;
  return JSON.stringify(body);
}

// Header names are HTTP tokens; values may not carry line breaks or non-Latin-1 text.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const RESERVED_HEADERS = new Set(["authorization", "content-type", "content-length", "host", "connection"]);

/**
 * Headers of an unwrapped push with `write_metadata`, as Google sends them: metadata as
 * `x-goog-pubsub-<key>`, attributes as `<key>: <value>` (those that cannot be headers are left out).
 */
export function metadataHeaders(lease: Lease, subscription: string): Record<string, string> {
  const m = lease.entry.msg;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.attributes)) {
    if (HEADER_NAME.test(k) && HEADER_VALUE.test(v) && !RESERVED_HEADERS.has(k.toLowerCase())) headers[k] = v;
  }
  headers["x-goog-pubsub-subscription-name"] = subscription;
  headers["x-goog-pubsub-message-id"] = String(m.seq);
  headers["x-goog-pubsub-publish-time"] = new Date(m.publishTimeMs).toISOString();
  if (m.orderingKey && HEADER_VALUE.test(m.orderingKey))
    headers["x-goog-pubsub-ordering-key"] = m.orderingKey;
  return headers;
}

/** Pushes one subscription's messages to its endpoint; attached as a consumer of its queue. */
export class PushWorker implements Consumer {
  outstanding = 0;
  outstandingBytes = 0;
  private pausedUntil = 0;
  private backoffMs = 0;
  /**
   * Counts pauses begun (and endpoint changes): a push remembers the episode it was sent in, and
   * only a failure of a push sent in the current one escalates the backoff. The other pushes of a
   * burst that were in flight when the first failed are part of the same episode.
   */
  private episode = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<AbortController>();
  private stopped = false;

  constructor(
    private config: SubscriptionConfig,
    private readonly queue: SubscriptionQueue,
    private readonly broker: PubSubBroker,
    private readonly signer: PushTokenSigner,
    private readonly logger: PubSubLogger,
    private readonly maxInFlight: number,
    private readonly now: () => number,
  ) {}

  get ackDeadlineSeconds(): number {
    return this.config.ackDeadlineSeconds;
  }

  /** Take a changed config (endpoint, token, deadline). */
  update(config: SubscriptionConfig): void {
    const before = this.config.pushConfig?.pushEndpoint;
    this.config = config;
    // A re-pointed endpoint is a new one: the failures of the old one say nothing of it.
    if (config.pushConfig?.pushEndpoint !== before) this.clearPause();
  }

  /** End the backoff (and its episode), and let the queue deliver again. */
  private clearPause(): void {
    const paused = this.backoffMs > 0 || this.pausedUntil > 0;
    this.backoffMs = 0;
    this.pausedUntil = 0;
    this.episode++;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    if (paused && !this.stopped) this.queue.wake();
  }

  room() {
    if (this.stopped || this.now() < this.pausedUntil) return { messages: 0, bytes: 0 };
    return { messages: this.maxInFlight - this.outstanding, bytes: Number.POSITIVE_INFINITY };
  }

  deliver(leases: Lease[]): void {
    if (!this.config.enableMessageOrdering) {
      for (const lease of leases) void this.push(lease);
      return;
    }
    // Ordered: one key's messages go one after another; a failed one revokes the rest (the queue
    // redelivers them in order), so a revoked lease is not pushed.
    const byKey = new Map<string, Lease[]>();
    for (const lease of leases) {
      const key = lease.entry.msg.orderingKey;
      if (!key) void this.push(lease);
      else byKey.set(key, [...(byKey.get(key) ?? []), lease]);
    }
    for (const run of byKey.values()) void this.pushInOrder(run);
  }

  private async pushInOrder(leases: Lease[]): Promise<void> {
    for (const lease of leases) {
      if (this.stopped || this.queue.leases.get(lease.ackId) !== lease) continue;
      await this.push(lease);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    for (const c of this.inflight) c.abort();
  }

  private async push(lease: Lease): Promise<void> {
    const config = this.config;
    const push = config.pushConfig;
    const endpoint = push?.pushEndpoint;
    if (!push || !endpoint) return;
    const episode = this.episode;
    const abort = new AbortController();
    this.inflight.add(abort);
    const timer = setTimeout(() => abort.abort(), config.ackDeadlineSeconds * 1000);
    let ok = false;
    let outcome = "";
    try {
      const headers: Record<string, string> = {};
      let body: string | Buffer;
      if (push.noWrapper) {
        body = lease.entry.msg.data;
        headers["content-type"] = "application/octet-stream";
        if (push.noWrapper.writeMetadata) Object.assign(headers, metadataHeaders(lease, config.name));
      } else {
        body = pushBody(lease, config.name, config.deadLetterPolicy !== undefined);
        headers["content-type"] = "application/json";
      }
      if (push.oidcToken?.serviceAccountEmail) {
        await this.signer.prepare();
        const audience = push.oidcToken.audience || endpoint;
        headers.authorization = `Bearer ${this.signer.token(push.oidcToken.serviceAccountEmail, audience)}`;
      }
      const res = await fetch(endpoint, { method: "POST", headers, body, signal: abort.signal });
      await res.arrayBuffer().catch(() => undefined);
      ok = PUSH_ACK_STATUSES.has(res.status);
      outcome = `HTTP ${res.status}`;
    } catch (e) {
      outcome = (e as Error).message;
    } finally {
      clearTimeout(timer);
      this.inflight.delete(abort);
    }
    if (this.stopped) return;
    if (ok) {
      // The endpoint answers again: the next failure starts the backoff over (a pause already
      // begun runs out, so one message that always fails cannot be pushed in a tight loop).
      this.backoffMs = 0;
      await this.broker
        .acknowledge(config.name, [lease.ackId])
        .catch((e: Error) => this.logger.warn(`push ack on ${config.name} failed: ${e.message}`));
      return;
    }
    this.logger.info(`push of message ${lease.entry.msg.seq} to ${endpoint} failed (${outcome}); will retry`);
    this.queue.nack(lease);
    // Sent before the current pause began: its failure is part of the episode that began it.
    if (episode !== this.episode) return;
    this.episode++;
    this.backoffMs = Math.min(PUSH_BACKOFF_MAX_MS, this.backoffMs ? this.backoffMs * 2 : PUSH_BACKOFF_MIN_MS);
    this.pausedUntil = this.now() + this.backoffMs;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => this.queue.wake(), this.backoffMs);
    this.resumeTimer.unref();
  }
}
