import { type CliCommand, EXIT } from "../command.js";
import { CONNECTION_USAGE, jobCommand, reportingApiErrors } from "../connection.js";

const USAGE = `usage: gangway logs <job-id> [--slice S] [--host H] [--max-bytes N] [--json] [connection options]

The kept tails of stdout and stderr of the job's current attempt, host by host.

  --slice S      only slice S (index or name)
  --host H       only host H (index within its slice)
${CONNECTION_USAGE}

exit codes: 0 shown · 1 no such job, or the API refused · 2 bad usage`;

interface Logs {
  attempt: number;
  hosts: Array<{
    sliceName: string;
    hostIndex: number;
    address: string;
    stdout?: string;
    stderr?: string;
    error?: string;
  }>;
}

/** `gangway logs`: stdout/stderr tails of a job's hosts. */
export const command: CliCommand = {
  name: "logs",
  summary: "show the stdout/stderr tails of a job's hosts",
  usage: USAGE,
  async run(ctx) {
    const { values, jobId, api } = await jobCommand(ctx, "logs", USAGE, {
      slice: { type: "string" },
      host: { type: "string" },
      "max-bytes": { type: "string" },
      json: { type: "boolean" },
    });
    const q = new URLSearchParams();
    if (values.slice !== undefined) q.set("slice", values.slice);
    if (values.host !== undefined) q.set("host", values.host);
    if (values["max-bytes"] !== undefined) q.set("maxBytes", values["max-bytes"]);
    return reportingApiErrors("logs", ctx, async () => {
      const logs = await api.request<Logs>("GET", `/v1/jobs/${encodeURIComponent(jobId)}/logs?${q}`);
      if (values.json) {
        ctx.stdout(`${JSON.stringify(logs)}\n`);
        return EXIT.ok;
      }
      for (const h of logs.hosts) {
        ctx.stdout(`==> ${h.sliceName} host ${h.hostIndex} (${h.address}), attempt ${logs.attempt} <==\n`);
        if (h.error) ctx.stdout(`(unavailable: ${h.error})\n`);
        if (h.stdout) ctx.stdout(h.stdout.endsWith("\n") ? h.stdout : `${h.stdout}\n`);
        if (h.stderr) ctx.stdout(`--- stderr ---\n${h.stderr.endsWith("\n") ? h.stderr : `${h.stderr}\n`}`);
      }
      return EXIT.ok;
    });
  },
};
