import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { PubSub } from "@google-cloud/pubsub";
import type { ClusterSlice } from "../../core/cluster-spec.js";
import type { SliceProvider } from "../../functions/ports.js";
import { deployPubSub } from "../gcp/pubsub-deploy.js";
import type { LocalProvider } from "./cluster/local-provider.js";

/** A secret kept in a file of the state dir (made on first start, owner-only), so restarts keep it. */
export async function persistentSecret(path: string): Promise<string> {
  try {
    const existing = (await readFile(path, "utf8")).trim();
    if (existing.length >= 16) return existing;
  } catch {
    // first start: make one
  }
  // Hex: a secret passed as `--webhook-secret SECRET` must never look like a flag (base64url may start with "-").
  const secret = randomBytes(24).toString("hex");
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * How much of `type` is on its way, in the unit `requestSlices` counts: slices for a TPU type,
 * hosts for `cpu` / `gpu-MODEL-N` (each pending entry there is a group of hosts).
 */
function pendingAmount(provider: Pick<LocalProvider, "pendingSlices">, type: string): number {
  const pending = provider.pendingSlices().filter((p) => p.type === type);
  const inHosts = type === "cpu" || type.startsWith("gpu-");
  return inHosts ? pending.reduce((n, p) => n + p.hosts, 0) : pending.length;
}

/**
 * The local provider as the control plane's port: asks for slices without waiting for them.
 * ScaleSlices asks on every poll for all it still lacks; what is already on its way (being
 * provisioned or starting) is not asked for again.
 */
export function providerPort(provider: LocalProvider, log: (line: string) => void): SliceProvider {
  return {
    listSlices: async () => provider.listSlices(),
    pendingSlices: async (type) => pendingAmount(provider, type),
    async requestSlices(type, count) {
      const missing = count - pendingAmount(provider, type);
      if (missing <= 0) return;
      // Said when something came up or failed: under quota every poll's request adds nothing.
      provider.requestSlices(type, missing).then(
        (added: ClusterSlice[]) => {
          if (added.length > 0) log(`autoscaler: ${added.length} ${type} slice(s) up`);
        },
        (e: unknown) => log(`autoscaler: ${(e as Error).message}`),
      );
    },
    async releaseSlices(slices) {
      // Only slices still made of the same agents: a name may since stand for a replacement.
      const live = new Map(provider.listSlices().map((s) => [s.name, s]));
      const agentsOf = (s: ClusterSlice) => s.hosts.map((h) => h.agent ?? "").join(",");
      const names = slices
        .filter((s) => {
          const now = live.get(s.name);
          return now !== undefined && agentsOf(now) === agentsOf(s);
        })
        .map((s) => s.name);
      if (names.length === 0) return;
      // Deleting a slice takes its agents down; nothing waits for that, so neither do we.
      provider.releaseSlices(names).then(
        (released: string[]) => log(`provider: released ${released.join(", ") || "nothing"}`),
        (e: unknown) => log(`provider: release failed: ${(e as Error).message}`),
      );
    },
  };
}

/** The service account the embedded Pub/Sub pushes as (its OIDC tokens name it). */
export const PUSH_SERVICE_ACCOUNT = "gangway-push@gangway-local.iam.gserviceaccount.com";

/**
 * Create the topics, dead-letter topics and push subscriptions (with OIDC tokens) if missing, and
 * point the pushes at `api` — the same layout `deployPubSub` makes on Google Cloud.
 */
export async function ensureTopicsAndPushes(pubsub: PubSub, api: string): Promise<void> {
  await deployPubSub(pubsub, {
    apiUrl: api,
    pushServiceAccount: PUSH_SERVICE_ACCOUNT,
    audience: api,
    ackDeadlineSeconds: 30,
    minBackoffSeconds: 0.1,
    maxBackoffSeconds: 10,
    // After a restart the pushes fail until they point at the new API port: allow many attempts
    // (a quarter of an hour or more at the 10 s backoff) before a message is dead-lettered.
    maxDeliveryAttempts: 100,
    // `gangway up --host` may listen on a private address, over plain http.
    allowHttp: true,
  });
}
