import type { HistoryEvent } from "@aws-sdk/client-sfn";
import { failureOf, groupByAttempt } from "../../functions/console/history.js";
import { type CliCommand, EXIT } from "../command.js";
import { CONNECTION_USAGE, jobCommand, reportingApiErrors } from "../connection.js";

const USAGE = `usage: gangway history <job-id> [--json] [connection options]

The job's execution history (every continued execution included), grouped by attempt, with
each preemption and failure and its cause.

${CONNECTION_USAGE}

exit codes: 0 shown · 1 no such job, or the API refused · 2 bad usage`;

function describe(e: HistoryEvent): string {
  const name = e.stateEnteredEventDetails?.name ?? e.stateExitedEventDetails?.name;
  const failure = failureOf(e);
  return `${e.type}${name ? ` ${name}` : ""}${failure ? ` — ${failure.error}${failure.message ? `: ${failure.message.slice(0, 300)}` : ""}` : ""}`;
}

/** `gangway history`: the execution's events, attempts grouped. */
export const command: CliCommand = {
  name: "history",
  summary: "show a job's execution history, grouped by attempt",
  usage: USAGE,
  async run(ctx) {
    const { values, jobId, api } = await jobCommand(ctx, "history", USAGE, { json: { type: "boolean" } });
    return reportingApiErrors("history", ctx, async () => {
      const h = await api.request<{ events: HistoryEvent[] }>(
        "GET",
        `/v1/jobs/${encodeURIComponent(jobId)}/history`,
      );
      const groups = groupByAttempt(h.events);
      if (values.json) {
        ctx.stdout(`${JSON.stringify(groups)}\n`);
        return EXIT.ok;
      }
      const t0 = new Date(h.events[0]?.timestamp ?? 0).getTime();
      for (const g of groups) {
        ctx.stdout(g.attempt === 0 ? "setup\n" : `attempt ${g.attempt}\n`);
        for (const e of g.events) {
          const at = ((new Date(e.timestamp ?? 0).getTime() - t0) / 1000).toFixed(2);
          ctx.stdout(`  +${at}s  ${describe(e)}\n`);
        }
      }
      return EXIT.ok;
    });
  },
};
