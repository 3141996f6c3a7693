// Example CPU workload: counts the primes below --limit in this host's share (by RANK of
// WORLD_SIZE) and writes {rank, from, to, primes} to GANGWAY_RESULT_FILE. Plain Node, no packages.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { limit: { type: "string", default: "100000" } } });
const limit = Number(values.limit);
const rank = Number(process.env.RANK);
const worldSize = Number(process.env.WORLD_SIZE);
if (!Number.isInteger(rank) || !Number.isInteger(worldSize) || rank < 0 || rank >= worldSize) {
  console.error(`bad distributed environment: RANK=${process.env.RANK} WORLD_SIZE=${process.env.WORLD_SIZE}`);
  process.exit(1);
}
const share = Math.ceil(limit / worldSize);
const from = rank * share;
const to = Math.min(limit, from + share);
let primes = 0;
for (let n = Math.max(2, from); n < to; n++) {
  let prime = true;
  for (let d = 2; d * d <= n; d++) {
    if (n % d === 0) {
      prime = false;
      break;
    }
  }
  if (prime) primes++;
}
writeFileSync(process.env.GANGWAY_RESULT_FILE, JSON.stringify({ rank, from, to, primes }));
