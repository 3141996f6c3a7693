import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { PubSub } from "@google-cloud/pubsub";
import type { ClusterSlice } from "../../core/cluster-spec.js";
import { HOST_EVENTS_TOPIC, LAUNCH_REQUESTS_TOPIC, PREEMPTION_NOTICES_TOPIC } from "../../core/host-event.js";
import type { SliceProvider } from "../../functions/ports.js";
import type { LocalProvider } from "./cluster/local-provider.js";

/** A secret kept in a file of the state dir (made on first start, owner-only), so restarts keep it. */
export async function persistentSecret(path: string): Promise<string> {
  try {
    const existing = (await readFile(path, "utf8")).trim();
    if (existing.length >= 16) return existing;
  } catch {
    // first start: make one
  }
  const secret = randomBytes(24).toString("base64url");
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/** The local provider as the control plane's port: asks for slices without waiting for them. */
export function providerPort(provider: LocalProvider, log: (line: string) => void): SliceProvider {
  return {
    listSlices: async () => provider.listSlices(),
    async requestSlices(type, count) {
      const pending = provider.pendingSlices().filter((p) => p.type === type).length;
      const missing = count - pending;
      if (missing <= 0) return;
      provider.requestSlices(type, missing).then(
        (added: ClusterSlice[]) => log(`autoscaler: ${added.length} ${type} slice(s) up`),
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

/** Create the topics and push subscriptions (with OIDC tokens) if missing; point pushes at `api`. */
export async function ensureTopicsAndPushes(pubsub: PubSub, api: string): Promise<void> {
  for (const name of [LAUNCH_REQUESTS_TOPIC, PREEMPTION_NOTICES_TOPIC, HOST_EVENTS_TOPIC]) {
    const topic = pubsub.topic(name);
    const [exists] = await topic.exists();
    if (!exists) await topic.create();
  }
  const pushes = [
    {
      subscription: `${LAUNCH_REQUESTS_TOPIC}-push`,
      topic: LAUNCH_REQUESTS_TOPIC,
      endpoint: `${api}/push/launch-requests`,
    },
    {
      subscription: `${HOST_EVENTS_TOPIC}-push`,
      topic: HOST_EVENTS_TOPIC,
      endpoint: `${api}/push/host-events`,
    },
    {
      subscription: `${PREEMPTION_NOTICES_TOPIC}-push`,
      topic: PREEMPTION_NOTICES_TOPIC,
      endpoint: `${api}/push/preemption-notices`,
    },
  ];
  for (const p of pushes) {
    const sub = pubsub.subscription(p.subscription);
    const [exists] = await sub.exists();
    // Every push carries an OIDC token the API checks: who pushed, to whom.
    const pushConfig = {
      pushEndpoint: p.endpoint,
      oidcToken: { serviceAccountEmail: PUSH_SERVICE_ACCOUNT, audience: api },
    };
    if (!exists) {
      await pubsub.topic(p.topic).createSubscription(p.subscription, {
        pushConfig,
        ackDeadlineSeconds: 30,
        retryPolicy: { minimumBackoff: { seconds: 0, nanos: 100_000_000 }, maximumBackoff: { seconds: 10 } },
      });
    } else {
      // After a restart the API listens elsewhere: point the pushes at it.
      await sub.modifyPushConfig(pushConfig);
    }
  }
}
