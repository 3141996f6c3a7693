import { type CliCommand, EXIT } from "../command.js";
import { CONNECTION_USAGE, jobCommand, reportingApiErrors } from "../connection.js";

const USAGE = `usage: gangway cancel <job-id> [--reason TEXT] [--wait] [--json] [connection options]

Cancel a job: its attempt is torn down (every process cancelled, leases released) and the job
ends CANCELLED. With --wait, return once it has.

${CONNECTION_USAGE}

exit codes: 0 cancelling (with --wait: it ended CANCELLED) · 1 no such job, or it already ended
(with --wait also: it ended otherwise — the cancel came too late —, or the wait was interrupted)
· 2 bad usage`;

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
      while (values.wait) {
        if (ctx.signal.aborted) {
          ctx.stderr(`gangway cancel: interrupted; ${jobId} is still being cancelled\n`);
          return EXIT.failed;
        }
        status = (await api.request<{ status: string }>("GET", `/v1/jobs/${encodeURIComponent(jobId)}`))
          .status;
        if (status !== "RUNNING" && status !== "PENDING") break;
        await new Promise((r) => setTimeout(r, 200));
      }
      ctx.stdout(values.json ? `${JSON.stringify({ jobId, status })}\n` : `${jobId}: ${status}\n`);
      if (!values.wait || status === "CANCELLED") return EXIT.ok;
      ctx.stderr(
        `gangway cancel: ${jobId} ended ${status}, not CANCELLED: it ended before the cancel took effect\n`,
      );
      return EXIT.failed;
    });
  },
};
