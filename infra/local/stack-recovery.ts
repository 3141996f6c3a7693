import type { PubSub } from "@google-cloud/pubsub";
import { PREEMPTION_NOTICES_TOPIC, type PreemptionNotice } from "../../core/host-event.js";
import { attemptStore } from "../../functions/attempts.js";
import type { ResultsStore } from "../../functions/ports.js";

/**
 * After the embedded stack restarts, the simulated hosts of its previous life are gone, as a VM
 * is after a preemption. Publish a notice for every slice of every attempt that was running, so
 * those jobs go round again at once instead of waiting for their heartbeat to lapse.
 */
export async function announceLostHosts(
  store: ResultsStore,
  pubsub: PubSub,
  log: (line: string) => void,
): Promise<number> {
  const attempts = attemptStore(store);
  const currents = (await store.list("jobs/")).filter((k) => k.endsWith("/current.json"));
  let published = 0;
  for (const key of currents) {
    const jobId = decodeURIComponent(key.split("/")[1] ?? "");
    const current = await attempts.current(jobId);
    if (current?.state !== "running") continue;
    const record = await attempts.record(jobId, current.attempt);
    for (const slice of new Set(record?.hosts.map((h) => h.sliceName) ?? [])) {
      const notice: PreemptionNotice = {
        slice,
        jobId,
        attempt: current.attempt,
        reason: "the embedded stack restarted: its hosts are gone",
      };
      await pubsub.topic(PREEMPTION_NOTICES_TOPIC).publishMessage({ json: notice });
      published++;
    }
  }
  if (published > 0) log(`recovery: ${published} preemption notice(s) for hosts lost in the restart`);
  return published;
}
