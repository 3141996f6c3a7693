import { type CliCommand, EXIT } from "../command.js";
import { CONNECTION_USAGE, jobCommand, reportingApiErrors } from "../connection.js";

const USAGE = `usage: gangway cancel <job-id> [--reason TEXT] [--wait] [--json] [connection options]

Cancel a job: its attempt is torn down (every process cancelled, leases released) and the job
ends CANCELLED. With --wait, return once it has.

${CONNECTION_USAGE}

exit codes: 0 cancelling (with --wait: cancelled) · 1 no such job, or it already ended · 2 bad usage`;

/** `gangway cancel`: cancel a job through teardown. */
export const command: CliCommand = {
  name: "cancel",
  summary: "cancel a job (teardown runs, status CANCELLED)",
  usage: USAGE,
  async run(ctx) {
    const { values, jobId, api } = await jobCommand(ctx, "cancel", USAGE, {
      reason: { type: "string" },
      wait: { type: "boolean" },
      json: { type: "boolean" },
    });
    return reportingApiErrors("cancel", ctx, async () => {
      const reason = values.reason ? `?reason=${encodeURIComponent(values.reason)}` : "";
      await api.request("DELETE", `/v1/jobs/${encodeURIComponent(jobId)}${reason}`);
      let status = "CANCELLING";
      while (values.wait && !ctx.signal.aborted) {
        status = (await api.request<{ status: string }>("GET", `/v1/jobs/${encodeURIComponent(jobId)}`))
          .status;
        if (status !== "RUNNING") break;
        await new Promise((r) => setTimeout(r, 200));
      }
      ctx.stdout(values.json ? `${JSON.stringify({ jobId, status })}\n` : `${jobId}: ${status}\n`);
      return EXIT.ok;
    });
  },
};
