// Example GPU workload: checks the torch/JAX distributed environment gangway gave this host and
// writes a JSON result to GANGWAY_RESULT_FILE. Plain Node, no packages.
import { writeFileSync } from "node:fs";

const need = (name) => {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
};

try {
  const worldSize = Number(need("WORLD_SIZE"));
  const rank = Number(need("RANK"));
  const nodeRank = Number(need("NODE_RANK"));
  const gpus = Number(need("GANGWAY_GPUS_PER_HOST"));
  if (!(rank >= 0 && rank < worldSize)) throw new Error(`RANK ${rank} outside WORLD_SIZE ${worldSize}`);
  if (nodeRank !== rank) throw new Error("one process per host: NODE_RANK must equal RANK");
  if (need("JAX_COORDINATOR_ADDRESS") !== `${need("MASTER_ADDR")}:${need("MASTER_PORT")}`) {
    throw new Error("JAX_COORDINATOR_ADDRESS differs from MASTER_ADDR:MASTER_PORT");
  }
  if (Number(need("NPROC_PER_NODE")) !== gpus) throw new Error("NPROC_PER_NODE differs from GPUs per host");
  const result = {
    rank,
    worldSize,
    gpus,
    gpuType: need("GANGWAY_GPU_TYPE"),
    master: need("MASTER_ADDR"),
    attempt: Number(need("GANGWAY_ATTEMPT")),
  };
  writeFileSync(need("GANGWAY_RESULT_FILE"), JSON.stringify(result));
} catch (error) {
  if (process.env.GANGWAY_ERROR_FILE) {
    writeFileSync(
      process.env.GANGWAY_ERROR_FILE,
      JSON.stringify({ name: error.name, message: error.message, stack: error.stack }),
    );
  }
  console.error(error);
  process.exit(1);
}
