import { InvalidJobSpec } from "../../core/errors.js";
import { apiTransport, GangwayApiError } from "../client/transport.js";
import { type CliCommand, EXIT, parseCommandArgs, UsageError } from "../command.js";
import { CONNECTION_OPTIONS, CONNECTION_USAGE, resolveConnection } from "../connection.js";
import { followJob } from "../follow.js";
import { loadJobFile } from "../load-job.js";

const USAGE = `usage: gangway submit <job.yaml|job.json> [--wait] [--idempotency-key K] [--json] [connection options]

Submit a job to a running control plane (POST /v1/jobs, signed). With --wait, follow it: live
progress (attempt, slices, hosts) on a terminal, plain lines otherwise, then its final status.

  --wait                    follow the job to its end
  --idempotency-key K       the same key and job never start a second job
  --json                    print {jobId, executionArn} (with --wait: the final JobStatus) as JSON
${CONNECTION_USAGE}

exit codes: 0 submitted (with --wait: succeeded) · 1 refused, or the job did not succeed · 2 bad usage or job file`;

/** `gangway submit`: submit (and follow) a job. */
export const command: CliCommand = {
  name: "submit",
  summary: "submit a job to a running control plane (--wait to follow it)",
  usage: USAGE,
  async run(ctx) {
    const parsed = parseCommandArgs(
      {
        args: ctx.argv,
        allowPositionals: true,
        options: {
          wait: { type: "boolean" },
          "idempotency-key": { type: "string" },
          json: { type: "boolean" },
          ...CONNECTION_OPTIONS,
        },
      },
      USAGE,
    );
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(`submit takes exactly one job file\n\n${USAGE}`);
    let spec: Awaited<ReturnType<typeof loadJobFile>>;
    try {
      spec = await loadJobFile(positionals[0] ?? "", ctx.cwd);
    } catch (e) {
      if (!(e instanceof InvalidJobSpec)) throw e;
      ctx.stderr(
        `gangway submit: ${e.issues.length} problem(s) in ${positionals[0]}:\n${e.issues.map((i) => `  ${i.message}\n`).join("")}`,
      );
      return EXIT.usage;
    }
    const transport = apiTransport(await resolveConnection(values, ctx.env, ctx.cwd));
    let job: Awaited<ReturnType<typeof transport.submit>>;
    try {
      job = await transport.submit(spec, { idempotencyKey: values["idempotency-key"] });
    } catch (e) {
      if (!(e instanceof GangwayApiError)) throw e;
      ctx.stderr(
        `gangway submit: ${e.status} ${e.code}: ${e.message}\n${e.issues.map((i) => `  ${i.message}\n`).join("")}`,
      );
      return EXIT.failed;
    }
    if (!values.wait) {
      ctx.stdout(
        values.json ? `${JSON.stringify(job)}\n` : `submitted ${job.jobId}\n  ${job.executionArn}\n`,
      );
      return EXIT.ok;
    }
    const tty = Boolean((process.stdout as { isTTY?: boolean }).isTTY) && !values.json;
    if (!values.json) ctx.stdout(`submitted ${job.jobId}\n`);
    const status = await followJob(transport, job, {
      line: (text) => {
        if (!values.json) ctx.stdout(`${tty ? "\r\x1b[K" : ""}${text}\n`);
      },
      status: tty ? (text) => ctx.stdout(`\r\x1b[K${text}`) : undefined,
      signal: ctx.signal,
    });
    if (tty) ctx.stdout("\r\x1b[K");
    if (!status) {
      ctx.stderr(`gangway submit: interrupted; job ${job.jobId} goes on (gangway status ${job.jobId})\n`);
      return EXIT.failed;
    }
    if (values.json) ctx.stdout(`${JSON.stringify(status)}\n`);
    else if (status.status === "SUCCEEDED")
      ctx.stdout(
        `SUCCEEDED after ${status.counters.attempts} attempt(s)\nresult: ${JSON.stringify(status.result)}\n`,
      );
    else ctx.stdout(`${status.status}: ${status.error?.name}: ${status.error?.message}\n`);
    return status.status === "SUCCEEDED" ? EXIT.ok : EXIT.failed;
  },
};
