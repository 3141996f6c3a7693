import { copyFile, mkdir, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { AGENT_PROTO_PATH } from "../../functions/clients/agent/proto.js";
import type { LambdaCodeDirs } from "./gangway-stack.js";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The Lambda bundles: their entry points, each built into `<outDir>/<name>/index.mjs`. */
export const BUNDLE_ENTRIES: Record<keyof LambdaCodeDirs, string> = {
  step: join(HERE, "lambda", "step.ts"),
  api: join(HERE, "lambda", "api.ts"),
};

// CommonJS packages inside an ES module bundle still reach for these.
const BANNER = [
  'import { createRequire as __gangwayCreateRequire } from "node:module";',
  'import { fileURLToPath as __gangwayFileURLToPath } from "node:url";',
  'import { dirname as __gangwayDirname } from "node:path";',
  "const require = __gangwayCreateRequire(import.meta.url);",
  "const __filename = __gangwayFileURLToPath(import.meta.url);",
  "const __dirname = __gangwayDirname(__filename);",
].join("\n");

/** One bundle as built: its directory and the size of its code. */
export interface BuiltBundle {
  dir: string;
  bytes: number;
}

/**
 * Bundle each Lambda with esbuild (Node 20, ES module, minified, everything inlined — the AWS SDK
 * too, so the code runs against the SDK version it was tested with) into `outDir/<name>/`, with
 * the agent's `.proto` beside it (the gRPC client loads it at run time from its own directory).
 */
export async function buildLambdaBundles(outDir: string): Promise<Record<keyof LambdaCodeDirs, BuiltBundle>> {
  const out = {} as Record<keyof LambdaCodeDirs, BuiltBundle>;
  for (const [name, entry] of Object.entries(BUNDLE_ENTRIES) as Array<[keyof LambdaCodeDirs, string]>) {
    const dir = join(outDir, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const outfile = join(dir, "index.mjs");
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      minify: true,
      sourcemap: "external",
      sourcesContent: false,
      legalComments: "none",
      banner: { js: BANNER },
      logLevel: "silent",
    });
    await copyFile(AGENT_PROTO_PATH, join(dir, "agent.proto"));
    out[name] = { dir, bytes: (await stat(outfile)).size };
  }
  return out;
}
