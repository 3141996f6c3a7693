import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { synthesizeGangway } from "../../../infra/aws/app.js";

/**
 * Synthesize the gangway app into `dir/cdk.out` with tiny stand-ins for the bundles (synthesis
 * only hashes and stages code; test/integration/aws/bundles.test.ts builds the real ones).
 */
export function synthesizeWithTinyCode(
  dir: string,
  options: { inventory?: boolean; agentCa?: boolean; pushers?: string[] } = {},
) {
  for (const b of ["step", "api"]) {
    mkdirSync(join(dir, b), { recursive: true });
    writeFileSync(join(dir, b, "index.mjs"), `export const handler = async () => "${b}";\n`);
  }
  let inventoryFile: string | undefined;
  if (options.inventory) {
    inventoryFile = join(dir, "inventory.yaml");
    writeFileSync(
      inventoryFile,
      "slices:\n  - name: pod-a\n    type: v4-8\n    hosts:\n      - {address: 10.0.0.2, workerId: 0, agent: '10.0.0.2:7070'}\n",
    );
  }
  let agentCaFile: string | undefined;
  if (options.agentCa) {
    agentCaFile = join(dir, "agents-ca.pem");
    writeFileSync(
      agentCaFile,
      "-----BEGIN CERTIFICATE-----\nnot checked at synthesis\n-----END CERTIFICATE-----\n",
    );
  }
  const outdir = join(dir, "cdk.out");
  const { stack } = synthesizeGangway({
    stackName: "gangway",
    outdir,
    code: { step: join(dir, "step"), api: join(dir, "api") },
    inventoryFile,
    agentCaFile,
    pushServiceAccounts: options.pushers,
  });
  return { stack, outdir };
}
