import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { type DirLock, startHoldingStateDir } from "../../dir-lock.js";
import { type Clock, PubSubBroker, type PubSubLogger } from "./broker.js";
import { FileJournal, readJournal, writeJournalFile } from "./journal.js";
import { type JsonWebKeySet, PUSH_TOKEN_ISSUER, PushTokenSigner } from "./oidc.js";
import { loadPubSubServices } from "./protos.js";
import { publisherService } from "./publisher-service.js";
import { PushWorker } from "./push-delivery.js";
import { StreamingPullHandler } from "./streaming-pull.js";
import { DEFAULT_PULL_WAIT_MS, subscriberService } from "./subscriber-service.js";

/** Options of `startPubSubEmulator`. */
export interface PubSubEmulatorOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** gRPC port; 0 (default) picks a free one. */
  port?: number;
  /** Directory of the write-ahead log; without it the emulator keeps everything in memory. */
  stateDir?: string;
  clock?: Clock;
  logger?: PubSubLogger;
  /** How often leases, backoffs and retention are checked (ms); default 50. */
  tickIntervalMs?: number;
  /** How long a unary Pull with nothing to deliver waits (ms); default 5000. */
  pullWaitMs?: number;
  /** Concurrent HTTP pushes per push subscription; default 32. */
  pushConcurrency?: number;
  /** Rewrite the state directory's log after this many appended records (default 50,000). */
  compactAfterRecords?: number;
  /** Serve the push-token JWKS over HTTP on an ephemeral port (default true). */
  serveJwks?: boolean;
}

/** A running emulator. */
export interface PubSubEmulator {
  /** `host:port` to put in PUBSUB_EMULATOR_HOST. */
  host: string;
  port: number;
  /** Public keys that verify the push tokens this emulator signs. */
  jwks(): JsonWebKeySet;
  /** `http://127.0.0.1:PORT/jwks.json` serving `jwks()`, when `serveJwks` is on. */
  jwksUri: string | undefined;
  /** `iss` claim of push tokens. */
  tokenIssuer: string;
  /** The state behind the API (test hook: inspect queues, force a tick). */
  broker: PubSubBroker;
  /** Stop serving, stop pushing, flush the log. */
  close(): Promise<void>;
}

const silent: PubSubLogger = { info: () => {}, warn: () => {} };
const MAX_MESSAGE_BYTES = 20 * 1024 * 1024;

/**
 * Start the Pub/Sub emulator: Publisher and Subscriber gRPC services, push delivery, durable state.
 *
 * @example
 * const emu = await startPubSubEmulator({ port: 0, stateDir: ".gangway/pubsub" });
 * const pubsub = new PubSub({ projectId: "local", apiEndpoint: emu.host, emulatorMode: true });
 * await emu.close();
 */
export async function startPubSubEmulator(options: PubSubEmulatorOptions = {}): Promise<PubSubEmulator> {
  // One emulator per log: two appending to it would interleave and corrupt it.
  return startHoldingStateDir(
    options.stateDir,
    "pubsub emulator",
    "give each emulator its own --state-dir",
    (lock) => startHolding(options, lock),
  );
}

async function startHolding(
  options: PubSubEmulatorOptions,
  lock: DirLock | undefined,
): Promise<PubSubEmulator> {
  const clock = options.clock ?? { now: Date.now };
  const logger = options.logger ?? silent;
  const bindHost = options.host ?? "127.0.0.1";
  let journal: FileJournal | undefined;
  let broker: PubSubBroker;
  if (options.stateDir) {
    const records = readJournal(options.stateDir, (m) => logger.warn(m));
    const replayed = new PubSubBroker(clock, undefined, logger);
    for (const r of records) replayed.replay(r);
    // Compact at start: the new log holds only what is still alive.
    if (records.length > 0) writeJournalFile(options.stateDir, replayed.snapshot());
    journal = await FileJournal.open(options.stateDir);
    broker = new PubSubBroker(clock, journal, logger, options.compactAfterRecords);
    for (const r of replayed.snapshot()) broker.replay(r);
    logger.info(`pubsub emulator: replayed ${records.length} log records from ${options.stateDir}`);
  } else {
    broker = new PubSubBroker(clock, undefined, logger);
  }

  const signer = new PushTokenSigner(() => clock.now());
  const pushWorkers = new Map<string, PushWorker>();
  const syncPush = (name: string) => {
    const existing = pushWorkers.get(name);
    let q: ReturnType<PubSubBroker["queue"]> | undefined;
    try {
      q = broker.queue(name);
    } catch {
      q = undefined;
    }
    const config = q?.config;
    const wantsPush = !!config?.pushConfig?.pushEndpoint && !config.detached;
    if (existing && (!wantsPush || !q)) {
      existing.stop();
      q?.removeConsumer(existing);
      pushWorkers.delete(name);
      return;
    }
    if (config?.pushConfig?.oidcToken?.serviceAccountEmail && wantsPush) void signer.prepare();
    if (existing && config) existing.update(config);
    if (!existing && wantsPush && q && config) {
      const worker = new PushWorker(config, q, broker, signer, logger, options.pushConcurrency ?? 32, () =>
        clock.now(),
      );
      pushWorkers.set(name, worker);
      q.addConsumer(worker);
    }
  };
  // Listener order matters: queues exist before push workers look them up.
  broker.onSubscriptionChange((name) => queueMicrotask(() => syncPush(name)));
  for (const name of broker.subscriptionNames()) syncPush(name);

  const services = loadPubSubServices();
  const streaming = new StreamingPullHandler(broker, logger);
  const server = new Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });
  server.addService(services.publisher, publisherService(broker, logger));
  server.addService(
    services.subscriber,
    subscriberService(broker, logger, streaming, options.pullWaitMs ?? DEFAULT_PULL_WAIT_MS),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${options.port ?? 0}`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });

  const ticker = setInterval(() => broker.tick(), options.tickIntervalMs ?? 50);
  ticker.unref();

  let jwksServer: HttpServer | undefined;
  let jwksUri: string | undefined;
  if (options.serveJwks !== false) {
    const srv = createServer((req, res) => {
      if (req.method === "GET" && (req.url === "/jwks.json" || req.url === "/.well-known/jwks.json")) {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(signer.jwks()));
      } else res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    });
    jwksServer = srv;
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    jwksUri = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/jwks.json`;
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(ticker);
      for (const w of pushWorkers.values()) w.stop();
      server.forceShutdown();
      if (jwksServer) {
        const srv = jwksServer;
        srv.closeAllConnections();
        await new Promise<void>((resolve) => srv.close(() => resolve()));
      }
      await journal?.close();
      await lock?.release();
    })();
    return closing;
  };

  const hostPort = bindHost.includes(":") ? `[${bindHost}]:${port}` : `${bindHost}:${port}`;
  logger.info(`pubsub emulator: listening on ${hostPort}`);
  return {
    host: hostPort,
    port,
    jwks: () => signer.jwks(),
    jwksUri,
    tokenIssuer: PUSH_TOKEN_ISSUER,
    broker,
    close,
  };
}
