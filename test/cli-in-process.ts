import type { CliContext } from "../cli/command.js";
import { main } from "../cli/main.js";

/**
 * Run `gangway <argv>` in this process as `bin/gangway.mjs` would, collecting what it prints.
 *
 * @example
 * const { code, stdout } = await gangwayInProcess(["plan", "job.yaml"], { cwd: repo });
 */
export async function gangwayInProcess(
  argv: string[],
  context: Partial<Pick<CliContext, "cwd" | "env">> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    signal: new AbortController().signal,
    ...context,
  });
  return { code, stdout, stderr };
}
