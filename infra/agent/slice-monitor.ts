import type { HostStatus } from "../../functions/clients/agent/messages.js";

/** What a slice head needs of a peer's agent: its status (a typed client fits). */
export interface PeerClient {
  status(): Promise<HostStatus>;
  close(): void;
}

/** Makes a client for a peer agent `host:port` (injected: token, TLS and deadline are the caller's). */
export type PeerClientFactory = (agent: string) => PeerClient;

/** What the head knows of one peer. */
export interface PeerState {
  agent: string;
  hostIndex: number;
  reachable: boolean;
  status: HostStatus | null;
  error: string;
}

/** Options of {@link SliceMonitor}. */
export interface SliceMonitorOptions {
  /** Pause between rounds of Status calls (default 2 s). */
  intervalMs?: number;
  /** Consecutive failed rounds after which a peer is reported lost (default 3). */
  failuresToLost?: number;
  /** Called once per peer that stops answering. */
  onLost: (peer: PeerState) => void;
}

const codeOf = (e: unknown) => (e as { code?: number }).code;
// UNAVAILABLE (14) and DEADLINE_EXCEEDED (4): the peer does not answer. Other refusals
// (a wrong token …) are configuration problems, reported in `error` but never as a lost host.
const NOT_ANSWERING = new Set([4, 14]);

/**
 * The slice head's view of its slice (the ancestors' SliceActor): it asks every other host's agent
 * for its status, round after round, and reports a host that stops answering as lost — a VM that
 * vanished says nothing itself.
 */
export class SliceMonitor {
  private readonly peers: Array<PeerState & { client: PeerClient; failures: number; reported: boolean }>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    agents: readonly string[],
    factory: PeerClientFactory,
    private readonly options: SliceMonitorOptions,
  ) {
    this.peers = agents.map((agent, i) => ({
      agent,
      hostIndex: i + 1,
      reachable: true,
      status: null,
      error: "",
      client: factory(agent),
      failures: 0,
      reported: false,
    }));
  }

  /**
   * Start polling. The first round comes after one interval: at a launch every head of a job
   * starts at once, and its peers have only just been asked to run.
   */
  start(): this {
    this.timer = setTimeout(() => void this.round(), this.options.intervalMs ?? 2000);
    this.timer.unref();
    return this;
  }

  private async round(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    await Promise.all(
      this.peers.map(async (p) => {
        try {
          p.status = await p.client.status();
          p.reachable = true;
          p.error = "";
          p.failures = 0;
        } catch (e) {
          p.error = (e as Error).message ?? String(e);
          if (!NOT_ANSWERING.has(codeOf(e) ?? -1)) return;
          p.failures++;
          if (p.failures >= (this.options.failuresToLost ?? 3)) {
            p.reachable = false;
            if (!p.reported && !this.stopped) {
              p.reported = true;
              this.options.onLost(this.view(p));
            }
          }
        }
      }),
    );
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.round(), this.options.intervalMs ?? 2000);
    this.timer.unref();
  }

  private view(p: PeerState): PeerState {
    return {
      agent: p.agent,
      hostIndex: p.hostIndex,
      reachable: p.reachable,
      status: p.status,
      error: p.error,
    };
  }

  /** The last known state of every peer, in host order. */
  snapshot(): PeerState[] {
    return this.peers.map((p) => this.view(p));
  }

  /** Stop polling and close the peers' clients (see {@link sharedPeerClients}); the last snapshot stays readable. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const p of this.peers) p.client.close();
  }
}

/**
 * A factory whose clients are made once per peer and kept across runs (a slice head watches the
 * same peers attempt after attempt; a new channel per run costs a connection each). Closing a
 * client it gave out does nothing; `closeAll` closes them.
 */
export function sharedPeerClients(factory: PeerClientFactory): PeerClientFactory & { closeAll(): void } {
  const clients = new Map<string, PeerClient>();
  const shared = (agent: string): PeerClient => {
    let client = clients.get(agent);
    if (!client) {
      client = factory(agent);
      clients.set(agent, client);
    }
    const c = client;
    return { status: () => c.status(), close: () => {} };
  };
  return Object.assign(shared, {
    closeAll() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  });
}
