/** The GCE metadata endpoint that answers `TRUE` once the VM is being preempted (FACTS.md). */
export const GCE_PREEMPTED_URL = "http://metadata.google.internal/computeMetadata/v1/instance/preempted";

/** How long one question to the metadata endpoint may take before it counts as "not preempted". */
export const PROBE_TIMEOUT_MS = 5000;

/**
 * Ask the metadata endpoint whether this VM is being preempted. Only an answer of `TRUE` (HTTP 200)
 * means yes; anything else — another answer, an HTTP error, no server, a timeout — means no.
 * Never throws.
 *
 * @example
 * if (await isPreempted()) publishNotice();
 */
export async function isPreempted(
  url = GCE_PREEMPTED_URL,
  timeoutMs = PROBE_TIMEOUT_MS,
  abort?: AbortSignal,
): Promise<boolean> {
  return (await askMetadata(url, timeoutMs, abort)).preempted;
}

/** How long the metadata server may hold a `wait_for_change` question before answering as is. */
export const WATCH_TIMEOUT_SECONDS = 60;

/**
 * One question to the metadata endpoint: its answer and ETag. With `lastEtag` the question is
 * GCE's hanging `wait_for_change`: the server answers once the value differs from that version
 * (or after {@link WATCH_TIMEOUT_SECONDS}). Never throws: a failure answers "not preempted".
 */
async function askMetadata(
  url: string,
  timeoutMs: number,
  abort?: AbortSignal,
  lastEtag?: string,
): Promise<{ preempted: boolean; etag?: string; failed?: boolean }> {
  try {
    const target = new URL(url);
    let limit = timeoutMs;
    if (lastEtag !== undefined) {
      target.searchParams.set("wait_for_change", "true");
      target.searchParams.set("last_etag", lastEtag);
      target.searchParams.set("timeout_sec", String(WATCH_TIMEOUT_SECONDS));
      limit += WATCH_TIMEOUT_SECONDS * 1000;
    }
    const timeout = AbortSignal.timeout(limit);
    const res = await fetch(target, {
      headers: { "Metadata-Flavor": "Google" },
      signal: abort ? AbortSignal.any([timeout, abort]) : timeout,
      redirect: "error",
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { preempted: false, failed: true };
    }
    const text = await res.text();
    return { preempted: text.trim() === "TRUE", etag: res.headers.get("etag") ?? undefined };
  } catch {
    return { preempted: false, failed: true };
  }
}

/** Options of {@link startPreemptionProbe}. */
export interface PreemptionProbeOptions {
  url?: string;
  /**
   * Pause between questions (default 5 s) when the endpoint cannot be watched: it gives no ETag
   * (not GCE's metadata server) or a question failed.
   */
  intervalMs?: number;
  timeoutMs?: number;
  /** Called once, the first time the endpoint answers TRUE. */
  onPreempted: () => void;
}

/** A running probe; `stop()` ends the polling. */
export interface PreemptionProbe {
  stop(): void;
  /** Whether a preemption was seen. */
  readonly preempted: boolean;
}

/**
 * Watch the metadata endpoint until it says TRUE, then report the preemption once and stop. On
 * GCE the questions hang (`wait_for_change` on the answer's ETag), so a preemption is known the
 * moment the metadata server knows it, with no polling; an endpoint without ETags is polled
 * every `intervalMs`. Questions never overlap.
 */
export function startPreemptionProbe(options: PreemptionProbeOptions): PreemptionProbe {
  const { url = GCE_PREEMPTED_URL, intervalMs = 5000, timeoutMs = PROBE_TIMEOUT_MS } = options;
  let stopped = false;
  let preempted = false;
  let timer: NodeJS.Timeout | undefined;
  let etag: string | undefined;
  /** Answers in a row that came back at once: a second one means the server does not hold questions. */
  let quick = 0;
  const abort = new AbortController();
  const tick = async () => {
    timer = undefined;
    if (stopped) return;
    const asked = performance.now();
    const answer = await askMetadata(url, timeoutMs, abort.signal, etag);
    if (stopped) return;
    if (answer.preempted) {
      preempted = true;
      stopped = true;
      options.onPreempted();
      return;
    }
    // Watch again at once while the server holds questions (or has answered at once only this
    // one time: the first read); otherwise — no ETag, a failure, a second quick answer in a
    // row — wait the interval first.
    quick = performance.now() - asked >= 1000 ? 0 : quick + 1;
    etag = answer.failed ? undefined : answer.etag;
    const pause = etag !== undefined && quick <= 1 ? 0 : intervalMs;
    timer = setTimeout(() => void tick(), pause);
    timer.unref();
  };
  void tick();
  return {
    stop() {
      stopped = true;
      abort.abort();
      if (timer) clearTimeout(timer);
    },
    get preempted() {
      return preempted;
    },
  };
}
