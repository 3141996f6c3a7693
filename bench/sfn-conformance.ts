/**
 * Prints the embedded Step Functions engine's conformance figures against the AWS-recorded cases.
 * Run: `npm run bench:sfn-conformance` (add `--failures` to list failing cases).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SFNClient } from "@aws-sdk/client-sfn";
import { createSfnEngine } from "../infra/local/sfn/engine.js";
import { startSfnServer } from "../infra/local/sfn/server.js";
import { loadCases, runConformance } from "../test/integration/sfn/conformance.js";

const dir = mkdtempSync(join(tmpdir(), "sfn-conf-"));
const engine = await createSfnEngine({ stateDir: dir, accountId: "111111111111" });
const server = await startSfnServer({ engine });
const client = new SFNClient({
  endpoint: server.url,
  region: "us-east-1",
  credentials: { accessKeyId: "x", secretAccessKey: "x" },
});
const cases = loadCases();
const only = process.argv.find((a) => a.startsWith("--grep="))?.slice(7);
const picked = only ? cases.filter((c) => c.id.includes(only)) : cases;
const { results, summary } = await runConformance(client, picked);
const pct = (n: number, d: number) => (d === 0 ? "-" : `${((100 * n) / d).toFixed(1)}%`);
for (const [lang, s] of Object.entries(summary)) {
  console.log(
    `${lang.padEnd(8)} cases ${s.cases}  status+output ${s.output}/${s.cases} (${pct(s.output, s.cases)})  history ${s.history}/${s.withHistory} (${pct(s.history, s.withHistory)})`,
  );
}
if (process.argv.includes("--failures")) {
  for (const r of results) {
    if (r.outputPass && r.historyPass !== false) continue;
    if (r.jsonata && !process.argv.includes("--jsonata")) continue;
    console.log(`FAIL ${r.id}\n     ${r.detail ?? ""}`);
  }
}
client.destroy();
await server.close();
await engine.close();
rmSync(dir, { recursive: true, force: true });
