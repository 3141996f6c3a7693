import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { jobSpecJsonSchema } from "../../core/job-spec.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";

const USAGE = `usage: gangway schema [--out FILE]

Print the JSON Schema (draft 2020-12) of a job spec, or write it to FILE. The repository keeps it
in schemas/job-spec.schema.json for editors (YAML: # yaml-language-server: $schema=…).`;

/** The job spec's JSON Schema, as text: what `gangway schema` prints and the repository keeps. */
export function jobSpecSchemaText(): string {
  return `${JSON.stringify(jobSpecJsonSchema(), null, 2)}\n`;
}

/** `gangway schema`: print or write the job spec's JSON Schema. */
export const command: CliCommand = {
  name: "schema",
  summary: "print the JSON Schema of a job spec",
  usage: USAGE,
  async run(ctx) {
    let out: string | undefined;
    try {
      out = parseArgs({ args: ctx.argv, options: { out: { type: "string" } } }).values.out;
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
    }
    if (out === undefined) ctx.stdout(jobSpecSchemaText());
    else await writeFile(resolve(ctx.cwd, out), jobSpecSchemaText());
    return EXIT.ok;
  },
};
