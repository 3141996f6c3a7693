import { parseArgs } from "node:util";
import { layoutLocalCluster, parseClusterSpec } from "../../core/cluster-spec.js";
import { GangwayError, InvalidJobSpec } from "../../core/errors.js";
import { type JobPlan, planJob } from "../../core/plan.js";
import { serializeError } from "../../core/serialized-error.js";
import { type CliCommand, EXIT, UsageError } from "../command.js";
import { loadJobFile } from "../load-job.js";

const USAGE = `usage: gangway plan <job.yaml|job.json> [--cluster SPEC] [--json] [--job-id ID] [--attempt N]

Validate a job spec and print, without launching anything, the slices it would take, every host
of each and the full environment each host would get.

  --cluster SPEC   plan on the layout of a local cluster, e.g. v4-16x2,v4-8x1 (TPU slices),
                   cpux4 (four CPU hosts), gpu-h100-8x2 (two hosts with 8 H100s each);
                   without it, on placeholder hosts (*.invalid)
  --json           print the plan (or the error) as JSON
  --job-id ID      job id to plan with (default: <name>-plan)
  --attempt N      attempt number (default 1)

exit codes: 0 planned · 1 the job does not fit (InsufficientSlices) · 2 invalid job file or usage`;

function renderPlan(plan: JobPlan, cluster: string | undefined): string {
  const { job } = plan;
  const lines: string[] = [];
  const where = cluster ? `cluster ${cluster}` : "placeholder hosts";
  const shape =
    plan.kind === "tpu"
      ? `tpu ${plan.type} × ${plan.slices.length} slice${plan.slices.length === 1 ? "" : "s"} (wanted ${plan.sliceCount.wanted.join(" or ")}, ${plan.sliceCount.available} available on ${where}), ${plan.hostsPerSlice} hosts per slice, ${plan.devicesPerHost} chips per host`
      : `${plan.kind}${plan.kind === "gpu" ? ` ${plan.type} × ${plan.devicesPerHost} per host` : ""}, ${plan.hostsPerSlice} hosts (${plan.sliceCount.available} available on ${where})`;
  lines.push(`plan for job ${JSON.stringify(job.name)} (job id ${plan.jobId}, attempt ${plan.attempt})`);
  lines.push(`  accelerator  ${shape}`);
  lines.push(
    `  coordinator  ${plan.coordinator} (slice 0, host 0)${plan.multislice ? " — multi-slice: MEGASCALE_* set" : ""}`,
  );
  lines.push(
    `  workload     ${job.workload.command.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ")}`,
  );
  if (job.workload.cwd) lines.push(`  cwd          ${job.workload.cwd}`);
  lines.push(
    `  retry        maxPreemptions ${job.retry.maxPreemptions}, maxFailures ${job.retry.maxFailures}${job.retry.retryOnExitCodes.length ? `, retryOnExitCodes ${job.retry.retryOnExitCodes.join(",")}` : ""}`,
  );
  lines.push(`  results      ${job.flatten ? "flat list" : "nested by slice"}, slice order then host order`);
  for (const slice of plan.slices) {
    lines.push("", `slice ${slice.index}  ${slice.name}  (${slice.type}, ${slice.hosts.length} hosts)`);
    for (const host of slice.hosts) {
      lines.push(`  host ${host.hostIndex}  ${host.address}  worker ${host.workerIndex}`);
      for (const [k, v] of Object.entries(host.env).sort(([a], [b]) => a.localeCompare(b)))
        lines.push(`    ${k}=${v}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** `gangway plan`: validate a job and show what one attempt would launch where. */
export const command: CliCommand = {
  name: "plan",
  summary: "validate a job spec and show the slices, hosts and environment it would get",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = (() => {
      try {
        return parseArgs({
          args: ctx.argv,
          allowPositionals: true,
          options: {
            cluster: { type: "string" },
            json: { type: "boolean", default: false },
            "job-id": { type: "string" },
            attempt: { type: "string", default: "1" },
          },
        });
      } catch (e) {
        throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
      }
    })();
    if (positionals.length !== 1) throw new UsageError(`plan takes exactly one job file\n\n${USAGE}`);
    const attempt = Number(values.attempt);
    if (!Number.isInteger(attempt) || attempt < 1)
      throw new UsageError(`--attempt: expected a whole number ≥ 1, got ${values.attempt}`);
    const fail = (error: unknown, code: number) => {
      if (values.json)
        ctx.stdout(`${JSON.stringify({ error: { ...serializeError(error), stack: undefined } }, null, 2)}\n`);
      if (error instanceof InvalidJobSpec) {
        ctx.stderr(
          `gangway plan: ${error.issues.length} problem${error.issues.length === 1 ? "" : "s"} in ${positionals[0]}:\n`,
        );
        for (const issue of error.issues) ctx.stderr(`  ${issue.message}\n`);
      } else {
        ctx.stderr(`gangway plan: ${(error as Error).name}: ${(error as Error).message}\n`);
      }
      return code;
    };
    let job: Awaited<ReturnType<typeof loadJobFile>>;
    try {
      job = await loadJobFile(positionals[0] ?? "", ctx.cwd);
    } catch (e) {
      return fail(e, EXIT.usage);
    }
    try {
      const cluster =
        values.cluster === undefined ? undefined : layoutLocalCluster(parseClusterSpec(values.cluster));
      const plan = planJob(job, cluster, { jobId: values["job-id"] ?? `${job.name}-plan`, attempt });
      ctx.stdout(values.json ? `${JSON.stringify(plan, null, 2)}\n` : renderPlan(plan, values.cluster));
      return EXIT.ok;
    } catch (e) {
      if (e instanceof GangwayError && e.name === "UnknownAcceleratorType") return fail(e, EXIT.usage);
      if (e instanceof GangwayError) return fail(e, EXIT.failed);
      throw e;
    }
  },
};
