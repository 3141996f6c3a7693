import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CliCommand, type CliContext, EXIT, repeatedSignalsHeld, UsageError } from "./command.js";

const COMMANDS_DIR = join(dirname(fileURLToPath(import.meta.url)), "commands");

/** Names of the available commands: one file each in `cli/commands/`. */
export function commandNames(): string[] {
  return readdirSync(COMMANDS_DIR)
    .filter((f) => /^[a-z][a-z0-9-]*\.ts$/.test(f))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** Load a command module by name, or `undefined` when there is none. */
export async function loadCommand(name: string): Promise<CliCommand | undefined> {
  if (!commandNames().includes(name)) return undefined;
  const mod = (await import(join(COMMANDS_DIR, `${name}.ts`))) as { command?: CliCommand };
  return mod.command;
}

async function topLevelHelp(): Promise<string> {
  const lines = [
    "usage: gangway <command> [options]   (gangway <command> --help for details)",
    "",
    "commands:",
  ];
  for (const name of commandNames()) {
    const cmd = await loadCommand(name);
    if (cmd) lines.push(`  ${name.padEnd(16)} ${cmd.summary}`);
  }
  lines.push("", "exit codes: 0 success · 1 the operation failed · 2 bad usage or invalid input");
  return `${lines.join("\n")}\n`;
}

/**
 * Make SIGINT and SIGTERM stop a command; returns the function that stops listening. The first
 * signal aborts `controller`, and the command stops what it started. While something holds
 * repeated signals off (a stack is up or closing: killing the process halfway through its
 * clean-up would leave its workloads running, in process groups of their own) the second is held
 * off with a word, and the third ends the process at once all the same — the way out where the
 * clean-up itself hangs. Without a hold the second ends it, as Node's default handling does.
 */
export function stopOnSignals(controller: AbortController, warn: (text: string) => void): () => void {
  let signals = 0;
  const release = () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) controller.abort();
    else if (signals === 2 && repeatedSignalsHeld())
      warn(
        `gangway: ${signal} again: still stopping what was started; a third Ctrl-C ends gangway at once and may leave workloads running\n`,
      );
    else {
      if (repeatedSignalsHeld()) warn(`gangway: ${signal}: ending at once; workloads may be left running\n`);
      release();
      process.kill(process.pid, signal);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return release;
}

/**
 * Run the CLI with `argv` (without node and script) and return the exit code.
 *
 * @example
 * process.exitCode = await main(["plan", "job.yaml", "--json"]);
 */
export async function main(argv: string[], overrides: Partial<CliContext> = {}): Promise<number> {
  const controller = new AbortController();
  const ctx: CliContext = {
    argv: argv.slice(1),
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    cwd: process.cwd(),
    env: process.env,
    signal: controller.signal,
    ...overrides,
  };
  const releaseSignals = overrides.signal === undefined ? stopOnSignals(controller, ctx.stderr) : undefined;
  try {
    const [name] = argv;
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      ctx.stdout(await topLevelHelp());
      return name === undefined ? EXIT.usage : EXIT.ok;
    }
    const command = await loadCommand(name);
    if (!command) {
      ctx.stderr(`gangway: unknown command ${JSON.stringify(name)}\n\n${await topLevelHelp()}`);
      return EXIT.usage;
    }
    if (ctx.argv.includes("--help") || ctx.argv.includes("-h")) {
      ctx.stdout(`${command.usage.trimEnd()}\n`);
      return EXIT.ok;
    }
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      ctx.stderr(`gangway: ${error.message}\n`);
      return EXIT.usage;
    }
    const e = error as Error;
    ctx.stderr(`gangway: ${e.name ?? "Error"}: ${e.message ?? String(error)}\n`);
    if (ctx.env.GANGWAY_DEBUG && e.stack) ctx.stderr(`${e.stack}\n`);
    return EXIT.failed;
  } finally {
    releaseSignals?.();
  }
}
