import {
  applyUpdateMask,
  MUTABLE_SUBSCRIPTION_FIELDS,
  MUTABLE_TOPIC_FIELDS,
  validateSubscription,
  validateTopic,
} from "./config.js";
import {
  PubSubAlreadyExists,
  PubSubFailedPrecondition,
  PubSubInvalidArgument,
  PubSubNotFound,
} from "./errors.js";
import { fromLogged, type Journal, type JournalRecord, type LoggedMessage, toLogged } from "./journal.js";
import { parseProjectName, parseResourceName } from "./names.js";
import { type Page, page } from "./paging.js";
import { checkPublishRequest } from "./publish-limits.js";
import { SubscriptionQueue } from "./subscription-queue.js";
import type { PubsubMessageIn, StoredMessage, SubscriptionConfig, TopicConfig } from "./types.js";

/** Source of the current time in epoch milliseconds; injected so tests can move time. */
export interface Clock {
  now(): number;
}

/** Where the emulator reports what it does; silent by default. */
export interface PubSubLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Told when a subscription appears, changes (new config) or disappears (undefined). */
export type SubscriptionListener = (name: string, config: SubscriptionConfig | undefined) => void;

/**
 * The emulator's state: topics, subscriptions and their queues. Every change that must survive a
 * restart goes through the journal first (publish is answered only once its record is on disk).
 */
export class PubSubBroker {
  private readonly topics = new Map<string, TopicConfig>();
  private readonly subs = new Map<string, SubscriptionQueue>();
  private readonly topicSubs = new Map<string, Set<string>>();
  private readonly listeners: SubscriptionListener[] = [];
  private readonly toPump = new Set<SubscriptionQueue>();
  private pumpScheduled = false;
  private nextSeq = 1;

  /**
   * @param compactAfterRecords rewrite the log once this many records were appended since the last
   *   rewrite and they outnumber the live messages four to one.
   */
  constructor(
    private readonly clock: Clock,
    private readonly journal: Journal | undefined,
    private readonly logger: PubSubLogger,
    private readonly compactAfterRecords = 50_000,
  ) {}

  /** Watch subscriptions come, change and go (push workers, open streams). */
  onSubscriptionChange(listener: SubscriptionListener): void {
    this.listeners.push(listener);
  }

  // ---- topics ----

  async createTopic(input: Record<string, unknown>): Promise<TopicConfig> {
    const topic = validateTopic(input);
    if (this.topics.has(topic.name)) throw new PubSubAlreadyExists(`Topic already exists: ${topic.name}`);
    this.topics.set(topic.name, topic);
    await this.log({ t: "topic", topic });
    return topic;
  }

  getTopic(name: unknown): TopicConfig {
    parseResourceName(name, "topics", "topic");
    const topic = this.topics.get(name as string);
    if (!topic) throw new PubSubNotFound(`Topic not found: ${String(name)}`);
    return topic;
  }

  async updateTopic(
    patch: Record<string, unknown> | undefined,
    paths: string[] | undefined,
  ): Promise<TopicConfig> {
    if (!patch) throw new PubSubInvalidArgument("topic: required");
    const current = this.getTopic(patch.name);
    const topic = validateTopic(applyUpdateMask(current, patch, paths, MUTABLE_TOPIC_FIELDS) as never);
    this.topics.set(topic.name, topic);
    await this.log({ t: "topic", topic });
    return topic;
  }

  listTopics(
    project: unknown,
    pageSize: number | undefined,
    pageToken: string | undefined,
  ): Page<TopicConfig> {
    const p = parseProjectName(project);
    return page(
      [...this.topics.values()].filter((t) => t.name.startsWith(`projects/${p}/`)),
      pageSize,
      pageToken,
    );
  }

  listTopicSubscriptions(
    topic: unknown,
    pageSize: number | undefined,
    pageToken: string | undefined,
  ): Page<string> {
    this.getTopic(topic);
    const names = [...(this.topicSubs.get(topic as string) ?? [])].map((name) => ({ name }));
    const result = page(names, pageSize, pageToken);
    return { items: result.items.map((n) => n.name), nextPageToken: result.nextPageToken };
  }

  async deleteTopic(name: unknown): Promise<void> {
    this.getTopic(name);
    const topic = name as string;
    this.topics.delete(topic);
    for (const subName of this.topicSubs.get(topic) ?? []) {
      const q = this.subs.get(subName);
      if (q) q.config = { ...q.config, topic: "_deleted-topic_" };
    }
    this.topicSubs.delete(topic);
    await this.log({ t: "topic-", name: topic });
  }

  // ---- publish ----

  /** Publish a batch; answers the message ids once the batch is durable (when journaled). */
  async publish(topicName: unknown, messages: PubsubMessageIn[] | undefined): Promise<string[]> {
    const topic = this.getTopic(topicName);
    checkPublishRequest(messages);
    const now = this.clock.now();
    const stored: StoredMessage[] = (messages ?? []).map((m) => this.store(m, now));
    const targets = [...(this.topicSubs.get(topic.name) ?? [])];
    // A topic without subscriptions keeps nothing: there is nothing to make durable either.
    if (this.journal && targets.length > 0) {
      await this.log({ t: "pubs", ms: stored.map(toLogged), subs: targets });
    }
    for (const name of targets) {
      const q = this.subs.get(name);
      if (q && !q.config.detached) for (const m of stored) q.enqueue(m);
    }
    this.maybeCompact();
    return stored.map((m) => String(m.seq));
  }

  private store(m: PubsubMessageIn, now: number): StoredMessage {
    const data = m.data ?? Buffer.alloc(0);
    const attributes = m.attributes ?? {};
    let size = data.length;
    for (const k in attributes) size += k.length + (attributes[k]?.length ?? 0);
    return {
      seq: this.nextSeq++,
      data,
      attributes,
      orderingKey: m.orderingKey ?? "",
      publishTimeMs: now,
      size,
    };
  }

  // ---- subscriptions ----

  async createSubscription(input: Record<string, unknown>): Promise<SubscriptionConfig> {
    const config = validateSubscription(input);
    if (this.subs.has(config.name))
      throw new PubSubAlreadyExists(`Subscription already exists: ${config.name}`);
    this.getTopic(config.topic);
    this.attach(config);
    await this.log({ t: "sub", sub: config });
    return config;
  }

  getSubscription(name: unknown): SubscriptionConfig {
    return this.queue(name).config;
  }

  /** The queue a consumer pulls from: NOT_FOUND when missing, FAILED_PRECONDITION when detached. */
  pullableQueue(name: unknown): SubscriptionQueue {
    const q = this.queue(name);
    if (q.config.detached) throw new PubSubFailedPrecondition(`Subscription is detached: ${q.config.name}`);
    return q;
  }

  /** The queue of subscription `name`; NOT_FOUND when there is none. */
  queue(name: unknown): SubscriptionQueue {
    parseResourceName(name, "subscriptions", "subscription");
    const q = this.subs.get(name as string);
    if (!q) throw new PubSubNotFound(`Subscription does not exist: ${String(name)}`);
    return q;
  }

  async updateSubscription(
    patch: Record<string, unknown> | undefined,
    paths: string[] | undefined,
  ): Promise<SubscriptionConfig> {
    if (!patch) throw new PubSubInvalidArgument("subscription: required");
    const q = this.queue(patch.name);
    const config = validateSubscription(
      applyUpdateMask(q.config, patch, paths, MUTABLE_SUBSCRIPTION_FIELDS) as never,
    );
    return this.replaceConfig(q, config);
  }

  async modifyPushConfig(name: unknown, pushConfig: Record<string, unknown> | undefined): Promise<void> {
    const q = this.queue(name);
    const config = validateSubscription({ ...q.config, pushConfig: pushConfig as never });
    if (!config.pushConfig) delete config.pushConfig;
    await this.replaceConfig(q, config);
  }

  async detachSubscription(name: unknown): Promise<void> {
    const q = this.queue(name);
    if (q.config.detached) return;
    q.clear();
    await this.replaceConfig(q, { ...q.config, detached: true });
  }

  private async replaceConfig(q: SubscriptionQueue, config: SubscriptionConfig): Promise<SubscriptionConfig> {
    q.config = config;
    for (const l of this.listeners) l(config.name, config);
    await this.log({ t: "sub", sub: config });
    return config;
  }

  listSubscriptions(
    project: unknown,
    pageSize: number | undefined,
    pageToken: string | undefined,
  ): Page<SubscriptionConfig> {
    const p = parseProjectName(project);
    const all = [...this.subs.values()]
      .map((q) => q.config)
      .filter((c) => c.name.startsWith(`projects/${p}/`));
    return page(all, pageSize, pageToken);
  }

  async deleteSubscription(name: unknown): Promise<void> {
    const q = this.queue(name);
    this.detach(q.config.name);
    await this.log({ t: "sub-", name: q.config.name });
  }

  /** Acknowledge; answered once the acks are durable, so an acked message never comes back. */
  async acknowledge(name: unknown, ackIds: string[] | undefined): Promise<void> {
    const q = this.queue(name);
    if (!ackIds || ackIds.length === 0)
      throw new PubSubInvalidArgument("ack_ids: at least one ack id is required");
    const seqs = q.acknowledge(ackIds);
    if (seqs.length > 0) await this.log({ t: "ack", sub: q.config.name, seqs });
  }

  modifyAckDeadline(name: unknown, ackIds: string[] | undefined, seconds: number | undefined): void {
    const q = this.queue(name);
    checkAckDeadline(seconds, "ack_deadline_seconds");
    if (!ackIds || ackIds.length === 0)
      throw new PubSubInvalidArgument("ack_ids: at least one ack id is required");
    q.modifyAckDeadline(ackIds, seconds ?? 0);
  }

  /** Expire leases, release backoffs, drop expired messages: called by the emulator's ticker. */
  tick(): void {
    const now = this.clock.now();
    for (const q of this.subs.values()) q.tick(now);
  }

  /** Every subscription's name. */
  subscriptionNames(): string[] {
    return [...this.subs.keys()];
  }

  // ---- state: attach/detach, journal, replay, snapshot ----

  private attach(config: SubscriptionConfig): SubscriptionQueue {
    const q: SubscriptionQueue = new SubscriptionQueue(config, {
      now: () => this.clock.now(),
      schedulePump: () => this.schedulePump(q),
      deadLetter: (msg, attempts) => this.deadLetter(q, msg, attempts),
    });
    this.subs.set(config.name, q);
    let set = this.topicSubs.get(config.topic);
    if (!set) {
      set = new Set();
      this.topicSubs.set(config.topic, set);
    }
    set.add(config.name);
    for (const l of this.listeners) l(config.name, config);
    return q;
  }

  private detach(name: string): void {
    const q = this.subs.get(name);
    if (!q) return;
    q.clear();
    this.subs.delete(name);
    this.topicSubs.get(q.config.topic)?.delete(name);
    for (const l of this.listeners) l(name, undefined);
  }

  private schedulePump(q: SubscriptionQueue): void {
    this.toPump.add(q);
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      const queues = [...this.toPump];
      this.toPump.clear();
      for (const each of queues) each.pump();
    });
  }

  private deadLetter(q: SubscriptionQueue, msg: StoredMessage, attempts: number): void {
    const dlt = q.config.deadLetterPolicy?.deadLetterTopic ?? "";
    const sourceSub = parseResourceName(q.config.name, "subscriptions", "subscription");
    if (!this.topics.has(dlt)) {
      // Google keeps redelivering when the dead-letter topic is missing.
      this.logger.warn(`dead-letter topic ${dlt} does not exist; ${q.config.name} keeps message ${msg.seq}`);
      q.enqueue(msg);
      return;
    }
    const attributes = {
      ...msg.attributes,
      CloudPubSubDeadLetterSourceDeliveryCount: String(attempts),
      CloudPubSubDeadLetterSourceSubscription: sourceSub.id,
      CloudPubSubDeadLetterSourceSubscriptionProject: sourceSub.project,
      CloudPubSubDeadLetterSourceTopicPublishTime: new Date(msg.publishTimeMs).toISOString(),
    };
    const source = q.config.name;
    void this.publish(dlt, [{ data: msg.data, attributes, orderingKey: msg.orderingKey }])
      .then(() => this.log({ t: "ack", sub: source, seqs: [msg.seq] }))
      .catch((e: Error) => this.logger.warn(`dead-lettering message ${msg.seq} failed: ${e.message}`));
  }

  private async log(record: JournalRecord): Promise<void> {
    if (this.journal) await this.journal.append(record);
  }

  private maybeCompact(): void {
    const j = this.journal;
    if (!j || j.appendedSinceCompaction < this.compactAfterRecords) return;
    let live = 0;
    for (const q of this.subs.values()) live += q.size;
    if (j.appendedSinceCompaction > 4 * live) j.requestCompaction(() => this.snapshot());
  }

  /** Apply one replayed journal record (restart). Idempotent: compaction may repeat a record. */
  replay(r: JournalRecord): void {
    switch (r.t) {
      case "topic":
        this.topics.set(r.topic.name, r.topic);
        return;
      case "topic-":
        this.topics.delete(r.name);
        for (const n of this.topicSubs.get(r.name) ?? []) {
          const q = this.subs.get(n);
          if (q) q.config = { ...q.config, topic: "_deleted-topic_" };
        }
        this.topicSubs.delete(r.name);
        return;
      case "sub": {
        const q = this.subs.get(r.sub.name);
        if (q) q.config = r.sub;
        else this.attach(r.sub);
        return;
      }
      case "sub-":
        this.detach(r.name);
        return;
      case "pub":
        this.replayMessages([r.m], r.subs);
        return;
      case "pubs":
        this.replayMessages(r.ms, r.subs);
        return;
      case "ack": {
        this.subs.get(r.sub)?.drop(r.seqs);
        return;
      }
    }
  }

  private replayMessages(logged: LoggedMessage[], subs: string[]): void {
    for (const l of logged) {
      const m = fromLogged(l);
      this.nextSeq = Math.max(this.nextSeq, m.seq + 1);
      for (const name of subs) this.subs.get(name)?.enqueue(m);
    }
  }

  /** The current state as a minimal list of records (what compaction writes). */
  *snapshot(): Generator<JournalRecord> {
    for (const topic of this.topics.values()) yield { t: "topic", topic };
    const bySeq = new Map<number, { m: StoredMessage; subs: string[] }>();
    for (const q of this.subs.values()) {
      yield { t: "sub", sub: q.config };
      for (const e of q.entries.values()) {
        const item = bySeq.get(e.msg.seq);
        if (item) item.subs.push(q.config.name);
        else bySeq.set(e.msg.seq, { m: e.msg, subs: [q.config.name] });
      }
    }
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    for (const s of seqs) {
      const item = bySeq.get(s);
      if (item) yield { t: "pub", m: toLogged(item.m), subs: item.subs };
    }
  }
}

function checkAckDeadline(seconds: number | undefined, field: string): void {
  const s = seconds ?? 0;
  if (!Number.isInteger(s) || s < 0 || s > 600) {
    throw new PubSubInvalidArgument(`${field}: must be between 0 and 600 seconds, got ${s}`);
  }
}
