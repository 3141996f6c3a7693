import { z } from "zod";
import { CONTRACT_VARIABLES, isReservedVariable } from "./env-names.js";
import { InvalidJobSpec } from "./errors.js";
import { jsonBytes } from "./serialized-error.js";
import { allTpuTypes, isTpuType, tpuType, tpuTypeProblem } from "./tpu-catalog.js";
import { describeValue, toValidationIssues, type ValidationIssue } from "./validation.js";

/** Defaults of the ancestors: retries, not attempts (N retries = N+1 attempts). */
export const DEFAULT_MAX_PREEMPTIONS = 1_000_000;
export const DEFAULT_MAX_FAILURES = 10;
/** MegaScale coordinator port: the ancestors' code uses 8081 (one docstring's 8192 is wrong). */
export const DEFAULT_COORDINATOR_PORT = 8081;
/** The most slices one job may ask for; far beyond any real pod, it bounds hostile input. */
export const MAX_SLICES = 1024;
/** The most hosts of one GPU/CPU job. */
export const MAX_HOSTS = 4096;

const posInt = (max: number) => z.int().min(1).max(max);

const SliceCountSchema = z
  .union([posInt(MAX_SLICES), z.array(posInt(MAX_SLICES)).min(1).max(64)])
  .describe(
    "Number of slices: an exact count, or a list of acceptable counts (the largest feasible is taken).",
  )
  .superRefine((value, ctx) => {
    if (Array.isArray(value) && new Set(value).size !== value.length) {
      ctx.addIssue({
        code: "custom",
        message: "distinct slice counts",
        params: { expected: "distinct slice counts", got: `[${value.join(", ")}]` },
        input: value,
      });
    }
  });

const TpuTypeSchema = z
  .string()
  .describe("TPU accelerator type, e.g. v4-32, v5p-128, v5litepod-16, v6e-8.")
  // Validated by the catalog below (for its clear messages); the enum is for editors' completion.
  .meta({ enum: allTpuTypes().map((t) => t.name) })
  .superRefine((type, ctx) => {
    const problem = tpuTypeProblem(type);
    if (problem) {
      ctx.addIssue({
        code: "custom",
        message: problem.message,
        params: { expected: problem.expected, got: describeValue(type) },
        input: type,
      });
    }
  });

/** A TPU accelerator: `slices` slices of one type. */
export const TpuAcceleratorSchema = z
  .strictObject({
    kind: z.literal("tpu"),
    type: TpuTypeSchema,
    slices: SliceCountSchema.default(1),
    preemptible: z.boolean().default(false).describe("Run on preemptible (spot) capacity."),
    zone: z.string().min(1).max(63).optional().describe("GCP zone, passed as TPU_ZONE (else EMPTY)."),
  })
  .describe("TPU slices (multi-slice when more than one).");

/** A GPU cluster: `hosts` hosts with `count` GPUs of `type` each. */
export const GpuAcceleratorSchema = z
  .strictObject({
    kind: z.literal("gpu"),
    type: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]*$/, "lower-case GPU model such as h100 or a100-80gb")
      .max(40)
      .describe("GPU model, e.g. h100, a100-80gb."),
    count: posInt(16).describe("GPUs per host."),
    hosts: posInt(MAX_HOSTS).default(1).describe("Number of hosts."),
  })
  .describe("Multi-host GPU cluster: one process per host, torch/JAX distributed environment.");

/** A CPU cluster of `hosts` hosts. */
export const CpuAcceleratorSchema = z
  .strictObject({
    kind: z.literal("cpu"),
    hosts: posInt(MAX_HOSTS).default(1).describe("Number of hosts."),
  })
  .describe("Multi-host CPU cluster.");

export const AcceleratorSchema = z.discriminatedUnion("kind", [
  TpuAcceleratorSchema,
  GpuAcceleratorSchema,
  CpuAcceleratorSchema,
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * What a host agent takes in one Run request (RunSchema in functions/clients/agent/messages.ts
 * reads them from here). Whatever a valid job asks of an agent must pass there: the
 * workload limits below are derived from these, and a job beyond them would fail every launch.
 */
export const AGENT_RUN_LIMITS = {
  /** Words of argv. */
  args: 4096,
  /** Characters of one argv word or env value: Linux's MAX_ARG_STRLEN is 128 KiB. */
  stringChars: 128 * 1024,
  /** Variables of a run's env: the job's own plus every contract variable gangway sets. */
  envEntries: 4096,
  /** Characters of the working directory (PATH_MAX). */
  cwdChars: 4096,
} as const;

/** Words of a job's argv. */
export const MAX_ARGS = 1024;
/** Characters of one argv word. */
export const MAX_ARG_CHARS = 4096;
/** Characters of one env value. */
export const MAX_ENV_VALUE_CHARS = 32_768;
/** Characters of the working directory. */
export const MAX_CWD_CHARS = AGENT_RUN_LIMITS.cwdChars;
/**
 * Variables of a job's `workload.env`: an agent takes 4096 per run, and every host's env is the
 * job's plus gangway's own (core/env-contract.ts), none of which a job may set itself: room is
 * left for every one of {@link CONTRACT_VARIABLES} (4096 - 43 = 4053 today).
 */
export const MAX_ENV_ENTRIES = AGENT_RUN_LIMITS.envEntries - CONTRACT_VARIABLES.length;

/**
 * Bytes of a submitted job spec: UTF-8 of its JSON, defaults filled in (the execution input the
 * API starts). The whole spec rides in every state of the execution beside the attempt's host
 * tables, and Step Functions fails an execution whose state passes 256 KiB (262,144 bytes)
 * with States.DataLimitExceeded, which nothing can catch: no teardown, no JobStatus. At 1,024
 * hosts (256 × v4-32) the largest state a job reaches without its spec — CheckResults ending a
 * job after a preemption and a failure: placement and scale.slices, and the problem, the final
 * status and the retry counters' two errors of up to 8 KiB each — is 199.5 KB with the local
 * provider's names (127.0.x.y, slice v4-32-N) and 243.2 KB with cloud-length ones (10.x.y.z,
 * agents on port 50051, 30-character slice names, a zone): 62.6 KB and 18.9 KB left. 16 KiB
 * fits both; 32 KiB only the first; 64 KiB neither. Raising it later breaks no one.
 */
export const MAX_JOB_SPEC_BYTES = 16 * 1024;

/** JSON Schema of a string without NUL (for editors; the rule itself is checked on submission). */
const NO_NUL = { pattern: "^[^\\u0000]*$" };

/** What runs on every host: a command (argv, no shell), its extra environment and directory. */
export const WorkloadSchema = z.strictObject({
  command: z
    .array(z.string().max(MAX_ARG_CHARS).meta(NO_NUL))
    .min(1)
    .max(MAX_ARGS)
    .describe("argv of the process started on every host; no shell is involved.")
    .superRefine((argv, ctx) => {
      if (argv[0] === "") {
        ctx.addIssue({
          code: "custom",
          message: "a program name",
          path: [0],
          params: { expected: "a program name", got: "an empty string" },
          input: argv[0],
        });
      }
    }),
  env: z
    .record(z.string(), z.string().max(MAX_ENV_VALUE_CHARS).meta(NO_NUL))
    .default({})
    .describe(
      "Extra environment variables; contract variables (GANGWAY_*, MEGASCALE_*, TPU_* …) are set by gangway.",
    )
    .meta({ maxProperties: MAX_ENV_ENTRIES })
    .superRefine((env, ctx) => {
      for (const name of Object.keys(env)) {
        if (!ENV_NAME.test(name)) {
          ctx.addIssue({
            code: "custom",
            message: "an environment variable name",
            path: [name],
            params: { expected: "a variable name matching [A-Za-z_][A-Za-z0-9_]*", got: describeValue(name) },
            input: name,
          });
        } else if (isReservedVariable(name)) {
          ctx.addIssue({
            code: "custom",
            message: "a variable gangway does not set itself",
            path: [name],
            params: {
              expected: "a variable gangway does not compute itself (it sets this one afresh every attempt)",
              got: describeValue(name),
            },
            input: name,
          });
        }
      }
    }),
  cwd: z
    .string()
    .min(1)
    .max(MAX_CWD_CHARS)
    .meta(NO_NUL)
    .optional()
    .describe("Working directory on the host; the agent's own if unset."),
});

/** Retry budgets, counted as retries as the ancestors count them: N retries = N+1 attempts. */
export const RetrySchema = z.strictObject({
  maxPreemptions: z.int().min(0).max(DEFAULT_MAX_PREEMPTIONS).default(DEFAULT_MAX_PREEMPTIONS),
  maxFailures: z.int().min(0).max(DEFAULT_MAX_PREEMPTIONS).default(DEFAULT_MAX_FAILURES),
  retryOnExitCodes: z
    .array(z.int().min(1).max(255))
    .max(255)
    .default([])
    .describe(
      "Exit codes that mean 'recover me': an attempt ending with one of them is retried as a preemption, not counted as a failure.",
    ),
});

/** Longest `heartbeatSeconds` a job may give. The agents' request limits follow from it. */
export const MAX_HEARTBEAT_SECONDS = 86_400;
/** Longest `cancelGraceSeconds` a job may give. The agents' request limits follow from it. */
export const MAX_CANCEL_GRACE_SECONDS = 3600;

/** Time limits of a job's steps, in seconds (Levanter's: health 60 s, cancel 4 min, teardown 5 min). */
export const TimeoutsSchema = z.strictObject({
  heartbeatSeconds: posInt(MAX_HEARTBEAT_SECONDS)
    .default(60)
    .describe("A silent attempt is declared lost after this long."),
  cancelGraceSeconds: z
    .int()
    .min(0)
    .max(MAX_CANCEL_GRACE_SECONDS)
    .default(30)
    .describe("SIGTERM → SIGKILL grace period."),
  teardownSeconds: posInt(3600)
    .default(300)
    .describe(
      "How long teardown keeps trying to end a process of the attempt that will not die before the job stops with TeardownTimedOut.",
    ),
  scaleSeconds: posInt(86_400)
    .default(600)
    .describe("How long to wait for slices before InsufficientSlices."),
  attemptSeconds: posInt(30 * 86_400)
    .optional()
    .describe(
      "Optional limit of one attempt's run time: an attempt still running after it is stopped and retried, counted as a preemption (a timeout, as in the ancestors). More than heartbeatSeconds.",
    ),
});

/**
 * Growing a flexible job while it runs (Levanter's flex multislice): an attempt on fewer slices
 * than the largest acceptable count is restarted on more once it has run `afterSeconds` and more
 * slices can be leased, looking again every `checkSeconds`. The restart raises no counter
 * (Levanter counts it as a preemption, which a job with `maxPreemptions: 0` could not survive).
 */
export const ScaleUpSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe("Grow a job running on fewer slices than the largest of its `slices` list when more appear."),
  afterSeconds: posInt(30 * 86_400)
    .default(43_200)
    .describe(
      "How long an attempt runs before it may be restarted on more slices (each restart costs the work since the last checkpoint). Levanter: 12 h.",
    ),
  checkSeconds: z
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(10_800)
    .describe("How often to look for more slices after that. Levanter: 3 h."),
});

/**
 * How long a host's lease lasts unrenewed: three heartbeat periods (at least a minute), so one
 * or two lost heartbeats never free a healthy host.
 */
export const leaseTtlSeconds = (heartbeatSeconds: number): number => Math.max(heartbeatSeconds * 3, 60);

/** How often a host's agent sends heartbeat events: a few per period, at least once a second. */
export const agentHeartbeatMs = (heartbeatSeconds: number): number =>
  Math.max(1000, Math.floor((heartbeatSeconds * 1000) / 4));

/** The job spec: what a user submits. Unknown fields are rejected everywhere. */
export const JobSpecSchema = z
  .strictObject({
    name: z
      .string()
      .max(63)
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
        "letters, digits, '.', '_' and '-', starting with a letter or digit",
      )
      .describe("Job name; becomes part of execution names (80 characters at most)."),
    accelerator: AcceleratorSchema,
    workload: WorkloadSchema,
    retry: RetrySchema.prefault({}),
    flatten: z
      .boolean()
      .default(true)
      .describe("Results as one flat list (true) or nested by slice (false)."),
    coordinatorPort: z.int().min(1).max(65_535).default(DEFAULT_COORDINATOR_PORT),
    timeouts: TimeoutsSchema.prefault({}),
    scaleUp: ScaleUpSchema.prefault({}).describe(
      "Growing a running job whose accelerator.slices is a list (ignored otherwise).",
    ),
  })
  .describe(
    `A gangway job spec: at most ${MAX_JOB_SPEC_BYTES} bytes as JSON with defaults filled in (it travels in every state of its execution).`,
  );

/**
 * What a job must also satisfy when it is submitted. Kept out of {@link JobSpecSchema}, which
 * also reads the state of jobs already running: a rule added later must not stop those.
 */
const SubmittedJobSpecSchema = JobSpecSchema.superRefine((job, ctx) => {
  const t = job.timeouts;
  // Step Functions refuses a heartbeat as long as the task's timeout.
  if (t.attemptSeconds !== undefined && t.attemptSeconds <= t.heartbeatSeconds)
    ctx.addIssue({
      code: "custom",
      path: ["timeouts", "attemptSeconds"],
      message: `more than heartbeatSeconds (${t.heartbeatSeconds})`,
      input: t.attemptSeconds,
    });
  workloadProblems(job.workload, ctx);
  // Refinements run on a spec with other problems too: an unknown type was reported already.
  const acc = job.accelerator;
  const hosts = acc.kind === "tpu" && !isTpuType(acc.type) ? 0 : largestHostCount(acc);
  if (hosts > MAX_JOB_HOSTS)
    ctx.addIssue({
      code: "custom",
      path: ["accelerator"],
      message: `at most ${MAX_JOB_HOSTS} hosts`,
      params: {
        expected: `at most ${MAX_JOB_HOSTS} hosts in all (the placement of every host travels in the execution's state, which Step Functions holds to 256 KiB)`,
        got: `${hosts} hosts`,
      },
      input: job.accelerator,
    });
  const bytes = jsonBytes(job);
  if (bytes > MAX_JOB_SPEC_BYTES) {
    const parts = (["command", "env"] as const).map((k) => `workload.${k}: ${jsonBytes(job.workload[k])}`);
    ctx.addIssue({
      code: "custom",
      path: [],
      message: `at most ${MAX_JOB_SPEC_BYTES} bytes`,
      params: {
        expected: `a job spec of at most ${MAX_JOB_SPEC_BYTES} bytes as JSON (UTF-8, defaults filled in): it rides in every state of the execution, which Step Functions limits to 256 KiB; put large configuration in a file`,
        got: `${bytes} bytes (${parts.join(", ")})`,
      },
      input: job,
    });
  }
});

/**
 * What the agents would refuse in every Run request (see {@link AGENT_RUN_LIMITS}): a NUL, too
 * many variables. Checked on submission only, as the size: the state of a job already running
 * must still parse, or its Teardown could not run.
 */
function workloadProblems(workload: JobSpec["workload"], ctx: z.RefinementCtx): void {
  const nul = (value: string | undefined, path: PropertyKey[], what: string) => {
    const at = value?.indexOf("\0") ?? -1;
    if (at < 0) return;
    ctx.addIssue({
      code: "custom",
      path: ["workload", ...path],
      message: `${what} without NUL characters`,
      params: {
        expected: `${what} without NUL characters (no process can be given one)`,
        got: `${describeValue(value)} with a NUL at character ${at}`,
      },
      input: value,
    });
  };
  for (const [i, arg] of workload.command.entries()) nul(arg, ["command", i], "an argument");
  for (const [name, value] of Object.entries(workload.env)) nul(value, ["env", name], "a value");
  nul(workload.cwd, ["cwd"], "a directory");
  const entries = Object.keys(workload.env).length;
  if (entries > MAX_ENV_ENTRIES) {
    ctx.addIssue({
      code: "custom",
      path: ["workload", "env"],
      message: `at most ${MAX_ENV_ENTRIES} variables`,
      params: {
        expected: `at most ${MAX_ENV_ENTRIES} variables (an agent takes ${AGENT_RUN_LIMITS.envEntries}, gangway keeps ${CONTRACT_VARIABLES.length} for its own)`,
        got: `${entries} variables`,
      },
      input: workload.env,
    });
  }
}

/**
 * Most hosts one job may run on: every host's placement travels in each state of its execution,
 * and at 1,024 hosts (with a spec of {@link MAX_JOB_SPEC_BYTES}) the state is near 256 KiB.
 */
export const MAX_JOB_HOSTS = 1024;

/** Hosts of the largest attempt a job can make (a flexible TPU job on its largest count). */
export function largestHostCount(accelerator: Accelerator): number {
  if (accelerator.kind !== "tpu") return accelerator.hosts;
  return tpuType(accelerator.type).hosts * Math.max(...acceptableSliceCounts(accelerator));
}

/** A parsed job spec, defaults filled in. */
export type JobSpec = z.output<typeof JobSpecSchema>;
/** A job spec as users write it (defaults optional). */
export type JobSpecInput = z.input<typeof JobSpecSchema>;
export type Accelerator = JobSpec["accelerator"];
export type TpuAccelerator = z.output<typeof TpuAcceleratorSchema>;
export type GpuAccelerator = z.output<typeof GpuAcceleratorSchema>;
export type CpuAccelerator = z.output<typeof CpuAcceleratorSchema>;

/** Outcome of {@link safeParseJobSpec}: the spec, or every problem found. */
export type JobSpecParseResult =
  | { success: true; data: JobSpec }
  | { success: false; issues: ValidationIssue[] };

/**
 * Validate a job spec and fill in defaults, reporting every problem as `path: expected …, got …`.
 *
 * @example
 * const r = safeParseJobSpec(YAML.parse(text));
 * if (!r.success) r.issues.forEach((i) => console.error(i.message));
 */
export function safeParseJobSpec(input: unknown): JobSpecParseResult {
  const result = SubmittedJobSpecSchema.safeParse(input, { reportInput: true });
  if (result.success) return { success: true, data: result.data };
  return {
    success: false,
    issues: toValidationIssues(result.error.issues, [], { schema: JobSpecSchema, input }),
  };
}

/** Like {@link safeParseJobSpec}, but throws {@link InvalidJobSpec}. */
export function parseJobSpec(input: unknown): JobSpec {
  const result = safeParseJobSpec(input);
  if (!result.success) throw new InvalidJobSpec(result.issues);
  return result.data;
}

/** The acceptable slice counts of a TPU job, largest first (a single count gives one entry). */
export function acceptableSliceCounts(accelerator: TpuAccelerator): number[] {
  const counts = Array.isArray(accelerator.slices) ? [...accelerator.slices] : [accelerator.slices];
  return counts.sort((a, b) => b - a);
}

/** The JSON Schema (draft 2020-12) of a job spec as users write it, for editors and other tools. */
export function jobSpecJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(JobSpecSchema, { io: "input", target: "draft-2020-12" }) as Record<
    string,
    unknown
  >;
  return {
    $schema: schema.$schema,
    title: "gangway job spec",
    ...schema,
  };
}
