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

/**
 * Kill what a previous life of this stack left running: workloads whose result file lies under
 * `runsUnder` (the simulated hosts' work directories). A simulated host dies with the stack, as a
 * VM's processes die with the VM; if the stack was killed with SIGKILL its workloads' process
 * groups outlived it, and must not join — or hold the ports of — the next attempt.
 */
export async function killLeftoverWorkloads(runsUnder: string, log: (line: string) => void): Promise<number> {
  const { readdir, readFile } = await import("node:fs/promises");
  const prefix = `GANGWAY_RESULT_FILE=${runsUnder.replace(/\/+$/, "")}/`;
  const groups = new Set<number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, "latin1");
      if (!environ.split("\0").some((v) => v.startsWith(prefix))) continue;
      // Field 5 of /proc/PID/stat is the process group; the command name (field 2) may hold spaces.
      const stat = await readFile(`/proc/${entry}/stat`, "latin1");
      const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      groups.add(pgid > 1 ? pgid : Number(entry));
    } catch {
      // gone meanwhile, or not ours
    }
  }
  for (const pgid of groups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  if (groups.size > 0)
    log(`recovery: killed ${groups.size} workload process group(s) left by a previous run`);
  return groups.size;
}
