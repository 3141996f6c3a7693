import type { EventSink, EventTopic, HostEvent } from "../../../infra/agent/events.js";

/** An in-memory {@link EventSink} for unit tests: records every event and lets a test await one. */
export class MemoryEventSink implements EventSink {
  readonly events: Array<{ topic: EventTopic; event: HostEvent }> = [];
  private waiters: Array<() => void> = [];

  async publish(topic: EventTopic, event: HostEvent): Promise<void> {
    this.events.push({ topic, event });
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolve with the first recorded event that matches (waiting for it if need be). */
  async waitFor(match: (e: { topic: EventTopic; event: HostEvent }) => boolean): Promise<HostEvent> {
    for (;;) {
      const hit = this.events.find(match);
      if (hit) return hit.event;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}
