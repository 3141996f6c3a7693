import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jobSpecSchemaText } from "../../cli/commands/schema.js";
import { CONTRACT_VARIABLES } from "../../core/env-names.js";
import { InvalidJobSpec } from "../../core/errors.js";
import {
  AGENT_RUN_LIMITS,
  acceptableSliceCounts,
  DEFAULT_COORDINATOR_PORT,
  DEFAULT_MAX_FAILURES,
  DEFAULT_MAX_PREEMPTIONS,
  MAX_ARG_CHARS,
  MAX_ARGS,
  MAX_CWD_CHARS,
  MAX_ENV_ENTRIES,
  MAX_ENV_VALUE_CHARS,
  MAX_JOB_HOSTS,
  MAX_JOB_SPEC_BYTES,
  parseJobSpec,
  safeParseJobSpec,
} from "../../core/job-spec.js";

const minimal = (accelerator: unknown = { kind: "tpu", type: "v4-16" }) => ({
  name: "train",
  accelerator,
  workload: { command: ["python3", "train.py"] },
});

function problems(input: unknown): string[] {
  const r = safeParseJobSpec(input);
  if (r.success) throw new Error("expected the spec to be rejected");
  return r.issues.map((i) => i.message);
}

describe("job spec", () => {
  it("fills in the ancestors' defaults", () => {
    const job = parseJobSpec(minimal());
    expect(job.retry).toEqual({
      maxPreemptions: DEFAULT_MAX_PREEMPTIONS,
      maxFailures: DEFAULT_MAX_FAILURES,
      retryOnExitCodes: [],
    });
    expect(DEFAULT_MAX_PREEMPTIONS).toBe(1_000_000);
    expect(DEFAULT_MAX_FAILURES).toBe(10);
    expect(job.coordinatorPort).toBe(8081);
    expect(DEFAULT_COORDINATOR_PORT).toBe(8081);
    expect(job.flatten).toBe(true);
    expect(job.accelerator).toEqual({ kind: "tpu", type: "v4-16", slices: 1, preemptible: false });
    expect(job.workload.env).toEqual({});
    expect(job.timeouts).toEqual({
      heartbeatSeconds: 60,
      cancelGraceSeconds: 30,
      teardownSeconds: 300,
      scaleSeconds: 600,
    });
  });

  it("accepts every accelerator kind", () => {
    expect(parseJobSpec(minimal({ kind: "gpu", type: "a100-80gb", count: 8, hosts: 4 })).accelerator).toEqual(
      {
        kind: "gpu",
        type: "a100-80gb",
        count: 8,
        hosts: 4,
      },
    );
    expect(parseJobSpec(minimal({ kind: "cpu", hosts: 3 })).accelerator).toEqual({ kind: "cpu", hosts: 3 });
    const flexible = parseJobSpec(
      minimal({ kind: "tpu", type: "v5litepod-16", slices: [2, 8, 4], zone: "us-east5-a" }),
    );
    expect(flexible.accelerator.kind === "tpu" && acceptableSliceCounts(flexible.accelerator)).toEqual([
      8, 4, 2,
    ]);
  });

  it("keeps retry budgets as retries and the exit codes to recover on", () => {
    const job = parseJobSpec({
      ...minimal(),
      retry: { maxPreemptions: 0, maxFailures: 0, retryOnExitCodes: [42, 143] },
    });
    expect(job.retry).toEqual({ maxPreemptions: 0, maxFailures: 0, retryOnExitCodes: [42, 143] });
  });

  it.each([
    [
      "a v4-7",
      minimal({ kind: "tpu", type: "v4-7" }),
      ["accelerator.type: expected a valid v4 size: v4-8, v4-16"],
    ],
    [
      "negative slices",
      minimal({ kind: "tpu", type: "v4-8", slices: -2 }),
      ["accelerator.slices: expected a number at least 1, got integer -2"],
    ],
    [
      "a bad entry in a flexible count",
      minimal({ kind: "tpu", type: "v4-8", slices: [4, 0] }),
      ["accelerator.slices[1]: expected a number at least 1, got integer 0"],
    ],
    [
      "repeated flexible counts",
      minimal({ kind: "tpu", type: "v4-8", slices: [2, 2] }),
      ["accelerator.slices: expected distinct slice counts"],
    ],
    [
      "a string slice count",
      minimal({ kind: "tpu", type: "v4-8", slices: "two" }),
      ['accelerator.slices: expected number or array, got string "two"'],
    ],
    [
      "an unknown kind",
      minimal({ kind: "fpga" }),
      ['accelerator.kind: expected one of "tpu", "gpu", "cpu", got string "fpga"'],
    ],
    [
      "an unknown field",
      { ...minimal(), extra: 1 },
      ["extra: expected one of the known fields name, accelerator, workload"],
    ],
    [
      "an unknown nested field",
      minimal({ kind: "gpu", type: "h100", count: 8, hosts: 2, slices: 2 }),
      [
        'accelerator.slices: expected one of the known fields kind, type, count, hosts, got unknown field "slices"',
      ],
    ],
    ["a wrong type", { ...minimal(), flatten: "yes" }, ['flatten: expected boolean, got string "yes"']],
    [
      "a missing name",
      { accelerator: { kind: "cpu" }, workload: { command: ["x"] } },
      ["name: expected string, got nothing"],
    ],
    [
      "an empty command",
      { ...minimal(), workload: { command: [] } },
      ["workload.command: expected at least 1 item, got 0 items"],
    ],
    [
      "an empty program",
      { ...minimal(), workload: { command: ["", "x"] } },
      ["workload.command[0]: expected a program name"],
    ],
    [
      "a contract variable in env",
      { ...minimal(), workload: { command: ["x"], env: { MEGASCALE_PORT: "9" } } },
      ["workload.env.MEGASCALE_PORT: expected a variable gangway does not compute itself"],
    ],
    [
      "a bad variable name",
      { ...minimal(), workload: { command: ["x"], env: { "A-B": "1" } } },
      ['workload.env["A-B"]: expected a variable name'],
    ],
    [
      "a port out of range",
      { ...minimal(), coordinatorPort: 70000 },
      ["coordinatorPort: expected a number at most 65535, got integer 70000"],
    ],
    [
      "a fractional budget",
      { ...minimal(), retry: { maxFailures: 1.5 } },
      ["retry.maxFailures: expected int, got number 1.5"],
    ],
    [
      "exit code 0 to retry on",
      { ...minimal(), retry: { retryOnExitCodes: [0] } },
      ["retry.retryOnExitCodes[0]: expected a number at least 1"],
    ],
    [
      "a name with spaces",
      { ...minimal(), name: "my job" },
      [
        "name: expected letters, digits, '.', '_' and '-', starting with a letter or digit, got string \"my job\"",
      ],
    ],
    [
      "an attempt limit no longer than the heartbeat",
      { ...minimal(), timeouts: { heartbeatSeconds: 60, attemptSeconds: 60 } },
      ["timeouts.attemptSeconds: expected more than heartbeatSeconds (60), got integer 60"],
    ],
    ["not an object", "train", ['(root): expected object, got string "train"']],
  ])("rejects %s with a message naming path, expected and got", (_what, input, expected) => {
    const messages = problems(input);
    for (const e of expected) expect(messages.some((m) => m.startsWith(e))).toBe(true);
  });

  it("lists every problem at once", () => {
    const messages = problems({
      name: "",
      accelerator: { kind: "tpu", type: "v4-7", slices: -1 },
      workload: {},
      x: 1,
    });
    expect(messages).toEqual([
      `name: expected letters, digits, '.', '_' and '-', starting with a letter or digit, got string ""`,
      expect.stringMatching(/^accelerator\.type: expected a valid v4 size/),
      "accelerator.slices: expected a number at least 1, got integer -1",
      "workload.command: expected array, got nothing",
      expect.stringMatching(/^x: expected one of the known fields/),
    ]);
  });

  it("throws InvalidJobSpec carrying the issues", () => {
    try {
      parseJobSpec(minimal({ kind: "tpu", type: "v9-8" }));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidJobSpec);
      expect((e as InvalidJobSpec).issues[0]?.path).toBe("accelerator.type");
      expect((e as Error).message).toContain("expected a known TPU family (v4, v5p, v5litepod, v6e)");
    }
  });

  it("ships the JSON Schema that gangway schema prints", () => {
    const committed = readFileSync(new URL("../../schemas/job-spec.schema.json", import.meta.url), "utf8");
    expect(committed).toBe(jobSpecSchemaText());
    const schema = JSON.parse(committed) as {
      properties: Record<string, unknown>;
      additionalProperties: boolean;
    };
    expect(Object.keys(schema.properties)).toEqual([
      "name",
      "accelerator",
      "workload",
      "retry",
      "flatten",
      "coordinatorPort",
      "timeouts",
      "scaleUp",
    ]);
    expect(schema.additionalProperties).toBe(false);
    expect(committed).toContain('"v5p-12288"');
  });
});

/** UTF-8 bytes of `value` as JSON: how a spec is measured, and how Step Functions measures state. */
const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** A valid spec whose JSON, defaults filled in, is `bytes` long: the variable PAD holds the rest. */
function specOfBytes(bytes: number) {
  const spec = { ...minimal(), workload: { command: ["python3", "train.py"], env: { PAD: "" } } };
  spec.workload.env.PAD = "x".repeat(bytes - jsonBytes(parseJobSpec(spec)));
  return spec;
}

function issuesOf(input: unknown) {
  const r = safeParseJobSpec(input);
  if (r.success) throw new Error("expected the spec to be rejected");
  return r.issues;
}

describe("job spec limits", () => {
  it("accepts 1,024 hosts and refuses more, counting a flexible job's largest count", () => {
    // v4-32: 4 hosts a slice.
    expect(safeParseJobSpec(minimal({ kind: "tpu", type: "v4-32", slices: 256 })).success).toBe(true);
    expect(safeParseJobSpec(minimal({ kind: "cpu", hosts: MAX_JOB_HOSTS })).success).toBe(true);

    expect(problems(minimal({ kind: "tpu", type: "v4-32", slices: [257, 2] }))).toEqual([
      expect.stringMatching(/^accelerator: expected at most 1024 hosts in all .*, got 1028 hosts$/),
    ]);
    expect(problems(minimal({ kind: "tpu", type: "v5p-12288" }))).toEqual([
      expect.stringContaining("got 1536 hosts"),
    ]);
    expect(problems(minimal({ kind: "gpu", type: "h100", count: 8, hosts: 1025 }))).toEqual([
      expect.stringContaining("got 1025 hosts"),
    ]);
  });

  it("accepts a spec of exactly MAX_JOB_SPEC_BYTES and refuses one byte more, naming size and limit", () => {
    const atLimit = specOfBytes(MAX_JOB_SPEC_BYTES);
    const over = specOfBytes(MAX_JOB_SPEC_BYTES + 1);

    const accepted = safeParseJobSpec(atLimit);
    const refused = issuesOf(over);

    expect(accepted.success && jsonBytes(accepted.data)).toBe(MAX_JOB_SPEC_BYTES);
    expect(refused).toEqual([
      {
        path: "(root)",
        expected: expect.stringContaining(`a job spec of at most ${MAX_JOB_SPEC_BYTES} bytes as JSON`),
        got: expect.stringMatching(/^16385 bytes \(workload\.command: 22, workload\.env: \d+\)$/),
        message: expect.stringMatching(
          /^\(root\): expected a job spec of at most 16384 bytes .*, got 16385 bytes/,
        ),
      },
    ]);
  });

  it("measures a spec in UTF-8 bytes, not characters", () => {
    const spec = { ...minimal(), workload: { command: ["python3"], env: { TEXT: "é".repeat(9_000) } } };

    const issues = issuesOf(spec);

    expect(JSON.stringify(spec).length).toBeLessThan(MAX_JOB_SPEC_BYTES);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("(root)");
    expect(Number(issues[0]?.got.split(" ")[0])).toBeGreaterThan(18_000);
  });

  it.each([
    ["an argument", { command: ["python3", "--flag=a\0b"] }, "workload.command[1]", "an argument", 8],
    ["the program", { command: ["python\0"] }, "workload.command[0]", "an argument", 6],
    ["an env value", { command: ["x"], env: { DATA: "\0" } }, "workload.env.DATA", "a value", 0],
    ["the directory", { command: ["x"], cwd: "/srv/run\0" }, "workload.cwd", "a directory", 8],
  ])("refuses a NUL character in %s, naming the path", (_what, workload, path, what, at) => {
    const spec = { ...minimal(), workload };

    const issues = issuesOf(spec);

    expect(issues).toEqual([
      {
        path,
        expected: expect.stringMatching(new RegExp(`^${what} without NUL characters`)),
        got: expect.stringMatching(new RegExp(`^string ".*\\\\u0000.*" with a NUL at character ${at}$`)),
        message: expect.stringContaining(`${path}: expected ${what} without NUL characters`),
      },
    ]);
  });

  it("refuses more variables than an agent takes beside gangway's own, naming the count", () => {
    const env = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, ""]));
    const atLimit = { ...minimal(), workload: { command: ["x"], env: env(MAX_ENV_ENTRIES) } };
    const over = { ...minimal(), workload: { command: ["x"], env: env(MAX_ENV_ENTRIES + 1) } };

    const atLimitIssues = issuesOf(atLimit);
    const overIssues = issuesOf(over);

    // So many variables are over the size limit too; only the count is checked here.
    expect(atLimitIssues.map((i) => i.path)).toEqual(["(root)"]);
    expect(overIssues.find((i) => i.path === "workload.env")).toEqual({
      path: "workload.env",
      expected: `at most ${MAX_ENV_ENTRIES} variables (an agent takes 4096, gangway keeps ${CONTRACT_VARIABLES.length} for its own)`,
      got: `${MAX_ENV_ENTRIES + 1} variables`,
      message: expect.stringMatching(/^workload\.env: expected at most \d+ variables/),
    });
  });

  it("keeps every workload limit within what an agent takes in a Run", () => {
    expect(MAX_ENV_ENTRIES + CONTRACT_VARIABLES.length).toBeLessThanOrEqual(AGENT_RUN_LIMITS.envEntries);
    expect(MAX_ARGS).toBeLessThanOrEqual(AGENT_RUN_LIMITS.args);
    expect(Math.max(MAX_ARG_CHARS, MAX_ENV_VALUE_CHARS)).toBeLessThanOrEqual(AGENT_RUN_LIMITS.stringChars);
    expect(MAX_CWD_CHARS).toBeLessThanOrEqual(AGENT_RUN_LIMITS.cwdChars);
  });

  it("tells editors the limits through the JSON Schema", () => {
    const schema = JSON.parse(jobSpecSchemaText()) as {
      description: string;
      properties: { workload: { properties: Record<string, Record<string, unknown>> } };
    };
    const w = schema.properties.workload.properties;

    expect(schema.description).toContain(`at most ${MAX_JOB_SPEC_BYTES} bytes`);
    expect(w.env?.maxProperties).toBe(MAX_ENV_ENTRIES);
    const noNul = new RegExp(String((w.cwd as { pattern: string }).pattern));
    expect([noNul.test("/srv/run"), noNul.test("/srv\0/run")]).toEqual([true, false]);
  });
});
