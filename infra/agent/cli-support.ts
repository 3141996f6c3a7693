import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { PubSub } from "@google-cloud/pubsub";
import { createJsonLinesEventSink, discardEvents, type EventSink } from "./events.js";
import { createPubSubEventSink } from "./pubsub-event-sink.js";

/** Read a token file: its first line, trimmed. Throws a clear error when missing or empty. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`--token-file ${path}: ${(e as Error).message}`);
  }
  const token = text.split(/\r?\n/)[0]?.trim() ?? "";
  if (token.length === 0) throw new Error(`--token-file ${path}: the file holds no token`);
  return token;
}

/**
 * The event sink chosen on the command line: Pub/Sub (`--pubsub-project`, honouring
 * PUBSUB_EMULATOR_HOST), a JSON-lines file (`--events-file`), or none.
 */
export function eventSinkFromFlags(
  flags: { pubsubProject?: string | undefined; eventsFile?: string | undefined },
  cwd: string,
): { sink: EventSink; close(): Promise<void>; describe: string; pubsub?: PubSub } {
  if (flags.pubsubProject) {
    const pubsub = new PubSub({ projectId: flags.pubsubProject });
    return {
      pubsub,
      sink: createPubSubEventSink(pubsub),
      close: () => pubsub.close(),
      describe: `pubsub:${flags.pubsubProject}`,
    };
  }
  if (flags.eventsFile) {
    const path = resolve(cwd, flags.eventsFile);
    return { sink: createJsonLinesEventSink(path), close: async () => {}, describe: `file:${path}` };
  }
  return { sink: discardEvents, close: async () => {}, describe: "none" };
}
