import { readFile, stat } from "node:fs/promises";
import { extname, resolve } from "node:path";
import YAML from "yaml";
import { InvalidJobSpec } from "../core/errors.js";
import { type JobSpec, safeParseJobSpec } from "../core/job-spec.js";
import type { ValidationIssue } from "../core/validation.js";

/** Job files larger than this are refused before parsing (a spec is a few KiB). */
export const MAX_JOB_FILE_BYTES = 1024 * 1024;

const syntaxIssue = (where: string, message: string): ValidationIssue => ({
  path: where,
  expected: "valid syntax",
  got: message,
  message: `${where}: ${message}`,
});

function jsonPosition(text: string, error: SyntaxError): string {
  const m = /position (\d+)/.exec(error.message);
  if (!m) return "(file)";
  const offset = Number(m[1]);
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const col = offset - before.lastIndexOf("\n");
  return `line ${line}, column ${col}`;
}

/**
 * Parse job file text (YAML or JSON) into a raw value, or the syntax problems found.
 * Aliases are bounded (no "billion laughs"), duplicate keys are errors.
 */
export function parseJobText(
  text: string,
  format: "yaml" | "json",
): { value: unknown } | { issues: ValidationIssue[] } {
  if (format === "json") {
    try {
      return { value: JSON.parse(text) as unknown };
    } catch (e) {
      const err = e as SyntaxError;
      return { issues: [syntaxIssue(jsonPosition(text, err), `JSON syntax error: ${err.message}`)] };
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : "(file)";
        return syntaxIssue(
          where,
          `YAML syntax error: ${e.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "")}`,
        );
      }),
    };
  }
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) as unknown };
  } catch (e) {
    return { issues: [syntaxIssue("(file)", `YAML error: ${(e as Error).message}`)] };
  }
}

/**
 * Read and validate a job file (`.yaml`, `.yml` or `.json`; other names are tried as YAML,
 * which also reads JSON). Throws {@link InvalidJobSpec} listing every problem.
 */
export async function loadJobFile(path: string, cwd = process.cwd()): Promise<JobSpec> {
  const full = resolve(cwd, path);
  let size: number;
  try {
    size = (await stat(full)).size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidJobSpec(
      [syntaxIssue(path, code === "ENOENT" ? "no such file" : `cannot read (${code})`)],
      "job file",
    );
  }
  if (size > MAX_JOB_FILE_BYTES) {
    throw new InvalidJobSpec(
      [syntaxIssue(path, `file of ${size} bytes exceeds ${MAX_JOB_FILE_BYTES}`)],
      "job file",
    );
  }
  const text = await readFile(full, "utf8");
  const format = extname(full).toLowerCase() === ".json" ? "json" : "yaml";
  const parsed = parseJobText(text, format);
  if ("issues" in parsed) throw new InvalidJobSpec(parsed.issues, `job file ${path}`);
  const spec = safeParseJobSpec(parsed.value);
  if (!spec.success) throw new InvalidJobSpec(spec.issues, `job spec in ${path}`);
  return spec.data;
}
