import { UnknownAcceleratorType } from "./errors.js";

/** TPU generations gangway knows, as named in accelerator types (`v4-32`, `v5litepod-16` …). */
export type TpuFamily = "v4" | "v5p" | "v5litepod" | "v6e";

/** One TPU slice type: how many chips, how many hosts (VMs), how many chips on each host. */
export interface TpuType {
  /** The accelerator type as GCP names it, e.g. `v4-32`. */
  name: string;
  family: TpuFamily;
  /** The number in the name (TensorCores for v4/v5p, chips for v5e/v6e). */
  size: number;
  chips: number;
  hosts: number;
  chipsPerHost: number;
  /** The unique resource worker 0 of each slice carries, e.g. `TPU-v4-32-head`. */
  headResource: string;
}

const powersOfTwo = (from: number, to: number): number[] => {
  const out: number[] = [];
  for (let n = from; n <= to; n *= 2) out.push(n);
  return out;
};

interface FamilyRule {
  sizes: readonly number[];
  describe: string;
  shape(size: number): { chips: number; hosts: number };
}

// Facts from Levanter's TPUConfig (FACTS.md): v4/v5p count TensorCores (2 per chip, 4 chips per
// VM); v5e/v6e count chips, single-host up to 8 chips, 4 chips per VM beyond.
const FAMILIES: Record<TpuFamily, FamilyRule> = {
  v4: {
    sizes: powersOfTwo(8, 4096),
    describe: "v4-8, v4-16, v4-32 … v4-4096 (powers of two)",
    shape: (n) => ({ chips: n / 2, hosts: n / 8 }),
  },
  v5p: {
    sizes: [...powersOfTwo(8, 8192), 12288],
    describe: "v5p-8, v5p-16 … v5p-8192 (powers of two), v5p-12288",
    shape: (n) => ({ chips: n / 2, hosts: n / 8 }),
  },
  v5litepod: {
    sizes: [1, 2, 4, 8, ...powersOfTwo(16, 256)],
    describe: "v5litepod-1, -2, -4, -8 (one host), v5litepod-16 … v5litepod-256 (powers of two)",
    shape: (n) => (n <= 8 ? { chips: n, hosts: 1 } : { chips: n, hosts: n / 4 }),
  },
  v6e: {
    sizes: [1, 4, 8, ...powersOfTwo(16, 256)],
    describe: "v6e-1, v6e-4, v6e-8 (one host), v6e-16 … v6e-256 (powers of two)",
    shape: (n) => (n <= 8 ? { chips: n, hosts: 1 } : { chips: n, hosts: n / 4 }),
  },
};

/** Every family, in catalog order. */
export const TPU_FAMILIES = Object.keys(FAMILIES) as TpuFamily[];

/** A one-paragraph list of every valid type, for error messages and `--help`. */
export function describeTpuCatalog(): string {
  return TPU_FAMILIES.map((f) => FAMILIES[f].describe).join("; ");
}

function isFamily(name: string): name is TpuFamily {
  return Object.hasOwn(FAMILIES, name);
}

/** What is wrong with a TPU type: a full message, and what would have been valid. */
export interface TpuTypeProblem {
  message: string;
  expected: string;
}

/** Why `type` is not a valid TPU type, or `undefined` when it is. */
export function tpuTypeProblem(type: string): TpuTypeProblem | undefined {
  const match = /^([a-z0-9]+)-(\d+)$/.exec(type);
  const everything = `a TPU type FAMILY-SIZE; valid types: ${describeTpuCatalog()}`;
  if (!match) {
    return {
      message: `malformed TPU type ${JSON.stringify(type)}: expected ${everything}`,
      expected: everything,
    };
  }
  const [, family = "", sizeText = ""] = match;
  if (!isFamily(family)) {
    const hint = family === "v5e" ? " (v5e slices are named v5litepod-N)" : "";
    const expected = `a known TPU family (${TPU_FAMILIES.join(", ")})${hint}; valid types: ${describeTpuCatalog()}`;
    return {
      message: `unknown TPU family ${JSON.stringify(family)} in ${JSON.stringify(type)}: expected ${expected}`,
      expected,
    };
  }
  const size = Number(sizeText);
  const rule = FAMILIES[family];
  if (!rule.sizes.includes(size) || sizeText !== String(size)) {
    const expected = `a valid ${family} size: ${rule.describe}`;
    return { message: `unknown TPU type ${JSON.stringify(type)}: expected ${expected}`, expected };
  }
  return undefined;
}

/** Whether `type` names a TPU type of the catalog. */
export function isTpuType(type: string): boolean {
  return tpuTypeProblem(type) === undefined;
}

/**
 * Look up a TPU type. Throws {@link UnknownAcceleratorType} naming the valid families and sizes.
 *
 * @example
 * tpuType("v4-32") // { chips: 16, hosts: 4, chipsPerHost: 4, headResource: "TPU-v4-32-head", … }
 */
export function tpuType(type: string): TpuType {
  const problem = tpuTypeProblem(type);
  if (problem) throw new UnknownAcceleratorType(problem.message, { type });
  const [family, sizeText] = type.split("-") as [TpuFamily, string];
  const size = Number(sizeText);
  const { chips, hosts } = FAMILIES[family].shape(size);
  return {
    name: type,
    family,
    size,
    chips,
    hosts,
    chipsPerHost: chips / hosts,
    headResource: `TPU-${type}-head`,
  };
}

/** Every type of the catalog, family by family, smallest first. */
export function allTpuTypes(): TpuType[] {
  return TPU_FAMILIES.flatMap((f) => FAMILIES[f].sizes.map((n) => tpuType(`${f}-${n}`)));
}
