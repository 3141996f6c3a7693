import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
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
 * `gangway agent`'s default work dir: `$TMPDIR/gangway-agent-<host>-<port>`, one per listen
 * address, so agents of one machine never share one (nor take each other's runs for leftovers).
 * A restarted agent on the same address finds its predecessor's. Port 0 gives `…-0`: two such
 * agents would share it, and the second refuses to start (WorkDirInUse).
 */
export function defaultWorkDir(listen: string, tmp: string = tmpdir()): string {
  const cut = listen.lastIndexOf(":");
  const host = listen.slice(0, cut).replace(/^\[|\]$/g, "");
  const port = listen.slice(cut + 1);
  // IPv6 colons and anything else odd in a file name become `_`.
  return join(tmp, `gangway-agent-${host.replace(/[^A-Za-z0-9._-]/g, "_")}-${port}`);
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
