import type { JobStatus } from "../core/job-status.js";
import { createHistoryFeed } from "./client/history-feed.js";
import { transientPollFailures } from "./client/poll-failures.js";
import type { SubmittedJob, Transport } from "./client/transport.js";
import { createProgressReader, type JobProgress, jobEnded } from "./progress.js";

/** Where {@link followJob} reports, how often it looks, and when it stops. */
export interface FollowOptions {
  /** A progress line (attempt, slices, hosts, states). */
  line: (text: string) => void;
  /** The one-line summary of where the job stands, after each look (a terminal's status line). */
  status?: ((text: string) => void) | undefined;
  /** Called after each look, with the progress so far (`gangway run` injects its preemption here). */
  onPoll?: ((progress: JobProgress) => Promise<void> | void) | undefined;
  signal: AbortSignal;
  pollMs?: number | undefined;
}

/**
 * Follow a submitted job to its end — through every execution it continues in — printing its
 * progress, and return its JobStatus; `undefined` when `signal` fired first. Used by
 * `gangway submit --wait` (through the API) and `gangway run` (through the SFN client).
 */
export async function followJob(
  transport: Pick<Transport, "history" | "result">,
  job: SubmittedJob,
  out: FollowOptions,
): Promise<JobStatus | undefined> {
  const reader = createProgressReader();
  const feed = createHistoryFeed();
  const t0 = Date.now();
  const { look } = transientPollFailures(); // a look that fails for a busy service is tried at the next poll
  for (;;) {
    if (out.signal.aborted) return undefined;
    const events = await look(() => transport.history(job));
    if (events) {
      for (const e of feed(events)) for (const line of reader.onEvent(e)) out.line(line);
      const p = reader.progress;
      out.status?.(
        `attempt ${p.attempt} · ${p.slices.join(", ") || "no slices yet"} · ${p.hosts} hosts · ${p.continuedAs ? "continuing" : p.phase} · ${((Date.now() - t0) / 1000).toFixed(0)}s`,
      );
      await out.onPoll?.(p);
      // The job's status is asked for once its last execution has ended, so that every line of it
      // is out; an execution that continued the job is not its end.
      if (jobEnded(p)) {
        const status = await look(() => transport.result(job));
        if (status) return status;
      }
    }
    await new Promise((r) => setTimeout(r, out.pollMs ?? 250));
  }
}
