import { JobCancelled } from "../core/errors.js";
import type { AttemptStore } from "./attempts.js";

/** Throw {@link JobCancelled} when a user asked to cancel the job; steps call it first thing. */
export async function stopIfCancelled(attempts: AttemptStore, jobId: string): Promise<void> {
  const cancel = await attempts.cancelRequested(jobId);
  if (cancel)
    throw new JobCancelled(`job ${jobId} cancelled: ${cancel.reason}`, {
      reason: cancel.reason,
      at: cancel.at,
    });
}
