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
  try {
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await fetch(url, {
      headers: { "Metadata-Flavor": "Google" },
      signal: abort ? AbortSignal.any([timeout, abort]) : timeout,
      redirect: "error",
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return false;
    }
    const text = await res.text();
    return text.trim() === "TRUE";
  } catch {
    return false;
  }
}

/** Options of {@link startPreemptionProbe}. */
export interface PreemptionProbeOptions {
  url?: string;
  /** Pause between questions (default 5 s). */
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
 * Poll the metadata endpoint until it says TRUE, then report the preemption once and stop.
 * Questions never overlap (the next is asked `intervalMs` after the previous answer).
 */
export function startPreemptionProbe(options: PreemptionProbeOptions): PreemptionProbe {
  const { url = GCE_PREEMPTED_URL, intervalMs = 5000, timeoutMs = PROBE_TIMEOUT_MS } = options;
  let stopped = false;
  let preempted = false;
  let timer: NodeJS.Timeout | undefined;
  const abort = new AbortController();
  const tick = async () => {
    timer = undefined;
    if (stopped) return;
    const yes = await isPreempted(url, timeoutMs, abort.signal);
    if (stopped) return;
    if (yes) {
      preempted = true;
      stopped = true;
      options.onPreempted();
      return;
    }
    timer = setTimeout(() => void tick(), intervalMs);
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
