// Child of bench/agent-scale.ts: brings up a local cluster (or nothing, as the baseline) in its own
// process, prints {"ready":…,"slices":…}, then answers each stdin line with its RSS in bytes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createLocalProvider } from "../infra/local/cluster/local-provider.js";

const spec = process.argv[2] ?? "";
const dir = mkdtempSync(join(tmpdir(), "gangway-bench-scale-"));
const provider = await createLocalProvider({
  ...(spec ? { spec } : {}),
  token: "bench-token",
  workDir: dir,
  agentOptions: { graceMs: 5000 },
});
process.stdout.write(`${JSON.stringify({ ready: true, slices: provider.listSlices() })}\n`);
const lines = createInterface({ input: process.stdin });
lines.on("line", () => {
  process.stdout.write(`${JSON.stringify({ rss: process.memoryUsage().rss })}\n`);
});
lines.on("close", () => {
  void provider.close().then(() => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
