import { type CliCommand, type CliContext, EXIT } from "../command.js";
import { CONNECTION_USAGE, jobCommand, reportingApiErrors } from "../connection.js";
import { positiveIntegerOption } from "../options.js";

/** The API's most bytes per stream (1 MiB): more is cut to that. */
const MAX_BYTES = 1 << 20;

const USAGE = `usage: gangway logs <job-id> [--slice S] [--host H] [--max-bytes N] [--json] [connection options]

The kept tails of stdout and stderr of the job's current attempt, host by host.

  --slice S                 only slice S (index or name)
  --host H                  only host H (index within its slice)
  --max-bytes N             the last N bytes of each stream of each host, 1 to ${MAX_BYTES}
                            (default 16384)
  --json                    print the API's answer as JSON
${CONNECTION_USAGE}

exit codes: 0 shown · 1 no such job, no host of the attempt matches --slice/--host, or the API
refused · 2 bad usage`;

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
    // The API reads a malformed or zero maxBytes as its default: said here instead.
    const maxBytes = positiveIntegerOption("--max-bytes", values["max-bytes"], MAX_BYTES);
    if (maxBytes !== undefined) q.set("maxBytes", String(maxBytes));
    return reportingApiErrors("logs", ctx, async () => {
      const logs = await api.request<Logs>("GET", `/v1/jobs/${encodeURIComponent(jobId)}/logs?${q}`);
      if (values.json) ctx.stdout(`${JSON.stringify(logs)}\n`);
      // The API answers no hosts, not an error, when the filters match none of the attempt's.
      if (logs.hosts.length === 0) return noHosts(ctx, jobId, logs.attempt, values);
      if (values.json) return EXIT.ok;
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

/**
 * An attempt with no host to show: none matched --slice/--host (exit 1, as a job that is not
 * there would be), or the job has not placed its hosts yet (nothing to show, exit 0).
 */
function noHosts(
  ctx: CliContext,
  jobId: string,
  attempt: number,
  filters: { slice?: string | undefined; host?: string | undefined },
): number {
  const asked = [
    filters.slice === undefined ? "" : ` --slice ${filters.slice}`,
    filters.host === undefined ? "" : ` --host ${filters.host}`,
  ].join("");
  if (asked === "") {
    ctx.stderr(`gangway logs: ${jobId} has no hosts yet (attempt ${attempt})\n`);
    return EXIT.ok;
  }
  ctx.stderr(`gangway logs: no host of ${jobId}'s attempt ${attempt} matches${asked}\n`);
  return EXIT.failed;
}
