import { apiTransport } from "../client/transport.js";
import { type CliCommand, EXIT, parseCommandArgs, UsageError } from "../command.js";
import {
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  reportingApiErrors,
  resolveConnection,
} from "../connection.js";
import { positiveIntegerOption } from "../options.js";

const USAGE = `usage: gangway status [<job-id>] [--json] [--limit N] [connection options]

Without a job id: the latest jobs. With one: its status, attempt, counters and every host
(slice, host, address, state, exit).

  --json                    print the API's answer as JSON
  --limit N                 without a job id: list at most N jobs, 1 to 1000 (default 20)
${CONNECTION_USAGE}

exit codes: 0 shown · 1 no such job, or the API refused · 2 bad usage`;

interface View {
  jobId: string;
  status: string;
  attempt: number;
  phase: string;
  counters?: { attempts: number; preemptions: number; failures: number };
  hosts: Array<{
    sliceIndex: number;
    sliceName: string;
    hostIndex: number;
    address: string;
    state?: string;
    exitCode?: number | null;
    signal?: string | null;
  }>;
  error?: { name: string; message: string };
  result?: unknown;
}

/** `gangway status`: one job, or the latest ones. */
export const command: CliCommand = {
  name: "status",
  summary: "show a job (or list the latest jobs)",
  usage: USAGE,
  async run(ctx) {
    const parsed = parseCommandArgs(
      {
        args: ctx.argv,
        allowPositionals: true,
        options: { json: { type: "boolean" }, limit: { type: "string" }, ...CONNECTION_OPTIONS },
      },
      USAGE,
    );
    const { values, positionals } = parsed;
    if (positionals.length > 1) throw new UsageError(`status takes at most one job id\n\n${USAGE}`);
    // The API's own bounds, said here with the flag's name rather than as its 400.
    const limit = positiveIntegerOption("--limit", values.limit, 1000) ?? 20;
    if (values.limit !== undefined && positionals.length > 0)
      throw new UsageError("--limit: lists jobs; it goes without a job id");
    const api = apiTransport(await resolveConnection(values, ctx.env, ctx.cwd));
    return reportingApiErrors("status", ctx, async () => {
      if (positionals.length === 0) {
        const list = await api.request<{
          jobs: Array<{ jobId: string; executionStatus: string; startedAt?: string }>;
        }>("GET", `/v1/jobs?limit=${limit}`);
        if (values.json) ctx.stdout(`${JSON.stringify(list)}\n`);
        else
          for (const j of list.jobs)
            ctx.stdout(`${j.jobId.padEnd(40)} ${j.executionStatus.padEnd(10)} ${j.startedAt ?? ""}\n`);
        return EXIT.ok;
      }
      const view = await api.request<View>("GET", `/v1/jobs/${encodeURIComponent(positionals[0] ?? "")}`);
      if (values.json) {
        ctx.stdout(`${JSON.stringify(view)}\n`);
        return EXIT.ok;
      }
      const c = view.counters;
      ctx.stdout(
        `${view.jobId}: ${view.status} (attempt ${view.attempt}, ${view.phase})${c ? ` — ${c.attempts} attempt(s), ${c.preemptions} preemption(s), ${c.failures} failure(s)` : ""}\n`,
      );
      if (view.error) ctx.stdout(`error: ${view.error.name}: ${view.error.message}\n`);
      ctx.stdout(`${"slice".padEnd(14)} host  ${"address".padEnd(16)} ${"state".padEnd(10)} exit\n`);
      for (const h of view.hosts) {
        ctx.stdout(
          `${h.sliceName.padEnd(14)} ${String(h.hostIndex).padEnd(5)} ${h.address.padEnd(16)} ${(h.state ?? "").padEnd(10)} ${h.signal ?? h.exitCode ?? ""}\n`,
        );
      }
      return EXIT.ok;
    });
  },
};
