import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { ClusterSlice } from "../../../core/cluster-spec.js";
import { toValidationIssues } from "../../../core/validation.js";
import type { SliceProvider } from "../../../functions/ports.js";
import { InvalidInventory } from "./errors.js";
import type { ClusterProvider } from "./provider.js";

const HostSchema = z.strictObject({
  address: z.string().min(1),
  workerId: z.number().int().min(0),
  agent: z.string().regex(/^.+:\d{1,5}$/, "host:port"),
});

const SliceSchema = z.strictObject({
  name: z.string().min(1),
  kind: z.enum(["tpu", "gpu", "cpu"]).default("tpu"),
  type: z.string().min(1),
  zone: z.string().optional(),
  gpuType: z.string().optional(),
  gpusPerHost: z.number().int().min(1).optional(),
  hosts: z.array(HostSchema).min(1),
});

/** An inventory of real machines: slices, their hosts and where each host's agent listens. */
export const InventorySchema = z.strictObject({ slices: z.array(SliceSchema) });

/**
 * Parse an inventory (JSON or YAML text) into cluster slices. Throws {@link InvalidInventory}
 * naming every problem, including duplicate slice names and duplicate agents.
 *
 * @example
 * parseInventory('{"slices":[{"name":"pod-a","type":"v4-16","hosts":[{"address":"10.0.0.2","workerId":0,"agent":"10.0.0.2:7070"}]}]}')
 */
export function parseInventory(text: string, source = "inventory"): ClusterSlice[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new InvalidInventory(`${source}: not JSON or YAML: ${(e as Error).message}`);
  }
  const parsed = InventorySchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    const issues = toValidationIssues(parsed.error.issues).map((i) => i.message);
    throw new InvalidInventory(`${source}: ${issues.join("; ")}`, { issues });
  }
  const names = new Set<string>();
  const agents = new Set<string>();
  for (const s of parsed.data.slices) {
    if (names.has(s.name)) throw new InvalidInventory(`${source}: slice name ${s.name} appears twice`);
    names.add(s.name);
    for (const h of s.hosts) {
      if (agents.has(h.agent)) throw new InvalidInventory(`${source}: agent ${h.agent} appears twice`);
      agents.add(h.agent);
    }
  }
  return parsed.data.slices as ClusterSlice[];
}

/**
 * A provider over a fixed inventory file of agent addresses (real machines). It cannot scale:
 * `requestSlices` adds nothing; `releaseSlices` keeps the machines (they are not ours to delete).
 */
export async function createStaticProvider(options: { inventoryFile: string }): Promise<ClusterProvider> {
  const slices = parseInventory(await readFile(options.inventoryFile, "utf8"), options.inventoryFile);
  return {
    listSlices: () => slices.map((s) => ({ ...s, hosts: s.hosts.map((h) => ({ ...h })) })),
    requestSlices: async () => [],
    releaseSlices: async () => [],
    close: async () => {},
  };
}

/**
 * A static inventory as the control plane's port: every slice is always there; asking for more
 * cannot be answered (the scale step waits, then fails with InsufficientSlices); preempted
 * machines are not deleted — they come back when their agents answer again.
 */
export function staticProviderPort(provider: ClusterProvider, log: (line: string) => void): SliceProvider {
  // ScaleSlices asks on every attempt of a flexible job for what its largest count lacks: said
  // once per type until the count wanted changes, not once per attempt.
  const told = new Map<string, number>();
  return {
    listSlices: async () => provider.listSlices(),
    async requestSlices(type, count) {
      if (told.get(type) === count) return;
      told.set(type, count);
      log(`static inventory: ${count} more ${type} slice(s) wanted; an inventory cannot grow`);
    },
    async releaseSlices(slices, reason) {
      if (reason === "preempted") log(`static inventory: ${slices.map((s) => s.name).join(", ")} preempted`);
    },
  };
}
