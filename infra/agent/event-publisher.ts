import type { EventSink, EventTopic, HostEvent } from "./events.js";

/**
 * Hands events to a sink in the background: a caller never waits for (or fails because of) the
 * transport. Each event is tried 3 times with backoff, then logged. `drain()` waits for all.
 */
export class EventPublisher {
  private readonly pending = new Set<Promise<void>>();
  /** Once muted (a dead host), nothing more is published. */
  muted = false;

  constructor(
    private readonly sink: EventSink,
    private readonly log: (line: string) => void,
  ) {}

  publish(topic: EventTopic, event: HostEvent): void {
    if (this.muted) return;
    const attempt = async () => {
      for (let i = 0; ; i++) {
        try {
          await this.sink.publish(topic, event);
          return;
        } catch (e) {
          if (i >= 2) {
            this.log(`could not publish ${event.kind} event to ${topic}: ${String(e)}`);
            return;
          }
          await new Promise((r) => setTimeout(r, 200 * 2 ** i));
        }
      }
    };
    const p = attempt();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Resolves when every event handed over so far was published (or given up on). */
  async drain(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
