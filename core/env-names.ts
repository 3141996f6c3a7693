/**
 * Names of the environment contract. gangway computes every one of them afresh for each attempt;
 * a job may not set them itself, and values inherited by an agent are stripped before a run
 * (stale MEGASCALE_* values after a preemption hang `jax.distributed.initialize`).
 */
export const CONTRACT_VARIABLES = [
  // gangway's own
  "GANGWAY_JOB_ID",
  "GANGWAY_JOB_NAME",
  "GANGWAY_ATTEMPT",
  "GANGWAY_RESULT_FILE",
  "GANGWAY_ERROR_FILE",
  "GANGWAY_ACCELERATOR",
  "GANGWAY_SLICE_INDEX",
  "GANGWAY_SLICE_NAME",
  "GANGWAY_HOST_INDEX",
  "GANGWAY_WORKER_INDEX",
  "GANGWAY_NUM_SLICES",
  "GANGWAY_HOSTS_PER_SLICE",
  "GANGWAY_NUM_HOSTS",
  "GANGWAY_COORDINATOR_ADDRESS",
  "GANGWAY_HOST_ADDRESS",
  "GANGWAY_GPU_TYPE",
  "GANGWAY_GPUS_PER_HOST",
  // eformer / Levanter, TPU
  "EXECUTOR_CALL_INDEX",
  "EXECUTOR_CALL_SLICE",
  "MEGASCALE_COORDINATOR_ADDRESS",
  "MEGASCALE_NUM_SLICES",
  "MEGASCALE_PORT",
  "MEGASCALE_SLICE_ID",
  "TPU_SLICE_NAME",
  "TPU_NAME",
  "TPU_VERSION",
  "TPU_ACCELERATOR_TYPE",
  "TPU_ZONE",
  "TPU_POD_COUNT",
  "TPU_HOST_ID",
  "TPU_NUM_DEVICES",
  // torch / JAX distributed, GPU and CPU
  "MASTER_ADDR",
  "MASTER_PORT",
  "WORLD_SIZE",
  "RANK",
  "LOCAL_RANK",
  "LOCAL_WORLD_SIZE",
  "NODE_RANK",
  "NNODES",
  "NPROC_PER_NODE",
  "JAX_COORDINATOR_ADDRESS",
  "JAX_NUM_PROCESSES",
  "JAX_PROCESS_ID",
] as const;

/** A variable name of the contract. */
export type ContractVariable = (typeof CONTRACT_VARIABLES)[number];

const CONTRACT_SET: ReadonlySet<string> = new Set(CONTRACT_VARIABLES);

/** Prefixes reserved whole: gangway's own and MegaScale's. */
export const RESERVED_PREFIXES = ["GANGWAY_", "MEGASCALE_"] as const;

/** Prefixes never inherited from an agent's environment (Ray's too, stripped as NeMo-RL does). */
export const STRIPPED_INHERITED_PREFIXES = [...RESERVED_PREFIXES, "RAY_"] as const;

/** Whether a job may not set `name` itself: it belongs to the contract or a reserved prefix. */
export function isReservedVariable(name: string): boolean {
  return CONTRACT_SET.has(name) || RESERVED_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * The part of an inherited environment (an agent's own `process.env`) that may reach a workload:
 * everything but contract variables and reserved prefixes, so nothing stale is carried over.
 */
export function inheritableEnvironment(
  base: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined || CONTRACT_SET.has(k)) continue;
    if (STRIPPED_INHERITED_PREFIXES.some((p) => k.startsWith(p))) continue;
    out[k] = v;
  }
  return out;
}
