import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import { JOB_STATUSES } from "../../core/job-status.js";
import { ApiProblem, apiError, errorAnswer, issue, jsonOnError, parseParams } from "../api/errors.js";
import { type JobRow, jobHistory, listJobs } from "../api/job-executions.js";
import { type JobsApiDeps, jobIdParam, jobView } from "../api/jobs.js";
import { attemptStore } from "../attempts.js";
import { mapLimit } from "../deps.js";
import { type AslDefinition, esc, renderGraph } from "./graph.js";
import { failureOf, groupByAttempt, type HistoryEventLike, visitedStates } from "./history.js";

/** How many rows of the jobs list are read at once. */
const LIST_ROWS_AT_ONCE = 16;
/** Executions read per ListExecutions call: one call is a page of the unfiltered list. */
const EXECUTIONS_PER_READ = 100;
/**
 * With a filter on, a page reads on until this many jobs match, or this many calls have been
 * made: a filter searches past the newest page, but each status match costs a job's view, so the
 * search is bounded and the page says how far it went ("older" searches on from there).
 */
const FILTERED_ROWS = 50;
const FILTERED_READS = 5;

/** What the console needs: the jobs API's sources, the definition it draws, an optional token. */
export interface ConsoleDeps extends Pick<JobsApiDeps, "executions" | "store" | "stateMachineArn"> {
  definition: string;
  /** When set, every page needs it (`?token=…` once, then a cookie, or `Authorization: Bearer …`). */
  token?: string | undefined;
  /** Seconds between refreshes of a page that shows something still running. */
  refreshSeconds?: number;
  /** Where internal errors go (one line each); stderr by default. */
  log?: ((line: string) => void) | undefined;
}

/**
 * Every status the list's column can show (see {@link jobView}): a job's final status once it is
 * written; before that RUNNING, or how its execution ended without one (TIMED_OUT, ABORTED …);
 * PENDING when it has none yet. The filter is on these, not on Step Functions' execution
 * statuses: a PREEMPTED, ERROR or CANCELLED job's execution ended FAILED.
 */
export const LIST_STATUSES = [
  "RUNNING",
  "PENDING",
  ...JOB_STATUSES,
  "TIMED_OUT",
  "ABORTED",
  "PENDING_REDRIVE",
] as const;

/** An empty query parameter (the form's "any") is an absent one. */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === "" ? undefined : v), schema.optional());

/** The list's query: its filters, and where in Step Functions' list the page starts (`next`). */
const ListQuerySchema = z.object({
  status: optional(z.enum(LIST_STATUSES)),
  q: optional(z.string().max(200)),
  // Step Functions' nextToken: opaque, 1 to 1024 characters.
  next: optional(z.string().max(1024)),
});
type ListQuery = z.infer<typeof ListQuerySchema>;

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#14324a;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 20px;max-width:1400px}table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;vertical-align:top}th{background:#eef1f4}
.status{font-weight:600}.SUCCEEDED{color:#1a7f37}.FAILED,.PREEMPTED,.ERROR,.ABORTED,.TIMED_OUT{color:#b42318}.RUNNING{color:#175cd3}.CANCELLED{color:#6b7280}
.cols{display:flex;gap:20px;flex-wrap:wrap}.panel{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px;margin-bottom:16px;overflow:auto}
.graph rect{fill:#fff;stroke:#9aa4ae}.graph .visited rect{fill:#dbeafe;stroke:#3b82f6}.graph .current rect{stroke:#f59e0b;stroke-width:3}
.graph .failed rect{stroke:#dc2626;stroke-width:2}.graph text{font-size:12px}.graph line,.graph path{stroke:#9aa4ae}.graph .edge-catch{stroke-dasharray:4 3}
.attempt h3{margin:10px 0 4px}.problem{color:#b42318}.muted{color:#6b7280}form.filters{margin-bottom:12px}
`;

function page(title: string, body: string, refresh?: number): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · gangway</title>${
    refresh ? `<meta http-equiv="refresh" content="${refresh}">` : ""
  }<style>${STYLE}</style></head><body><header><a href="/console">gangway console</a></header><main>${body}</main></body></html>`;
}

const age = (since: Date | string | undefined, now: number) => {
  if (!since) return "";
  const s = Math.max(0, Math.round((now - new Date(since).getTime()) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

/** The list's address with query `query` (empty parameters left out). */
function listHref(query: ListQuery): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) params.set(k, v);
  const text = params.toString();
  return text ? `/console?${text}` : "/console";
}

/** A row of the list as shown: the status is the job's (its view's), not its execution's. */
interface ListedJob {
  jobId: string;
  status: string;
  html: string;
}

/** Job `j`'s row: its view (records and executions) read for its status, attempts and phase. */
async function listedJob(deps: ConsoleDeps, j: JobRow, now: number): Promise<ListedJob> {
  const view = await jobView(deps, j.jobId).catch(() => undefined);
  const status = view?.status ?? j.executionStatus;
  const count = view?.counters
    ? `${view.counters.attempts} (${view.counters.preemptions} preempted, ${view.counters.failures} failed)`
    : `${view?.attempt ?? 0}`;
  const html = `<tr data-job="${esc(j.jobId)}"><td><a href="/console/jobs/${encodeURIComponent(j.jobId)}">${esc(j.jobId)}</a></td><td class="status ${esc(status)}">${esc(status)}</td><td>${esc(count)}</td><td>${esc(view?.phase ?? "")}</td><td>${esc(age(j.startedAt, now))}</td></tr>`;
  return { jobId: j.jobId, status, html };
}

/** One ListExecutions call's jobs; a `next` the caller gave that Step Functions refuses is a 400. */
async function readJobs(deps: ConsoleDeps, next: string | undefined, given: boolean) {
  try {
    // No status to Step Functions: the filter is on job statuses, which it does not know.
    return await listJobs(deps, { maxResults: EXECUTIONS_PER_READ, nextToken: next });
  } catch (e) {
    if (!given || (e as { name?: string }).name !== "InvalidToken") throw e;
    throw new ApiProblem(
      400,
      apiError("InvalidQuery", "next: not a token this list gave", [
        issue("next", "the `next` of an earlier page of this list", "a token it did not give"),
      ]),
    );
  }
}

/**
 * The jobs of one page of the list, from `query.next` on (newest first), that match its filters,
 * with how many jobs were looked at and where the page after starts. Unfiltered, a page is one
 * ListExecutions call; filtered, up to {@link FILTERED_READS} calls, until
 * {@link FILTERED_ROWS} jobs match. The name filter is applied before the job's view is read
 * (it needs none); the status filter on the status the row shows.
 */
async function listPage(deps: ConsoleDeps, query: ListQuery, now: number) {
  const filtered = query.q !== undefined || query.status !== undefined;
  const q = (query.q ?? "").toLowerCase();
  const rows: ListedJob[] = [];
  const seen = new Set<string>();
  let next = query.next;
  for (let read = 0; read < (filtered ? FILTERED_READS : 1); read++) {
    const page = await readJobs(deps, next, read === 0);
    next = page.nextToken;
    const named = page.jobs.filter((j) => !seen.has(j.jobId) && j.jobId.toLowerCase().includes(q));
    for (const j of page.jobs) seen.add(j.jobId);
    // A few rows at once: each reads its job's records and executions.
    const listed = await mapLimit(named, LIST_ROWS_AT_ONCE, (j) => listedJob(deps, j, now));
    rows.push(...listed.filter((r) => query.status === undefined || r.status === query.status));
    // A page token only resumes at a call's end: the call under way is always finished.
    if (next === undefined || rows.length >= FILTERED_ROWS) break;
  }
  return { rows, looked: seen.size, next };
}

function authorized(c: Context, token: string | undefined): boolean {
  if (!token) return true;
  const given =
    c.req.query("token") ??
    getCookie(c, "gangway_console") ??
    c.req.header("authorization")?.replace(/^Bearer /, "");
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  const ok = a.length === b.length && timingSafeEqual(a, b);
  if (ok && c.req.query("token"))
    setCookie(c, "gangway_console", given, { httpOnly: true, sameSite: "Strict", path: "/console" });
  return ok;
}

/**
 * The console at `/console`: the jobs list (status, job, attempts, age; filters on name and job
 * status; paged, newest first), and a page per job (its JSON at `/console/jobs/:id/json`) with the state machine drawn from its ASL (visited and current states marked),
 * the history as a timeline grouped by attempt with each preemption and failure and its cause,
 * and the hosts table. Read-only; server-rendered, refreshing itself while a job runs.
 */
export function createConsoleApp(deps: ConsoleDeps): Hono {
  const app = new Hono();
  const definition = JSON.parse(deps.definition) as AslDefinition;
  const refresh = deps.refreshSeconds ?? 2;
  const attempts = attemptStore(deps.store);
  // A browser gets a page; anything else the `{code, message, issues}` the API answers.
  app.onError((e, c) => {
    const { status, body } = errorAnswer(e, deps.log);
    if (!(c.req.header("accept") ?? "").includes("text/html")) return c.json(body, status);
    const issues = body.issues.map((i) => `<li>${esc(i.message)}</li>`).join("");
    const html = `<h2 class="problem" data-code="${esc(body.code)}">${esc(body.code)}</h2><p>${esc(body.message)}</p>${issues ? `<ul>${issues}</ul>` : ""}`;
    return c.html(page(body.code, html), status);
  });

  app.use("/console/*", async (c, next) => {
    if (!authorized(c, deps.token))
      return c.html(page("unauthorized", "<h2>A token is needed to see this console.</h2>"), 401);
    return next();
  });
  app.use("/console", async (c, next) => {
    if (!authorized(c, deps.token))
      return c.html(page("unauthorized", "<h2>A token is needed to see this console.</h2>"), 401);
    return next();
  });

  app.get("/console", async (c) => {
    const query = parseParams(ListQuerySchema, c.req.query(), "InvalidQuery");
    const { rows, looked, next } = await listPage(deps, query, Date.now());
    const filtered = query.q !== undefined || query.status !== undefined;
    const options = ["", ...LIST_STATUSES]
      .map(
        (s) =>
          `<option value="${s}"${s === (query.status ?? "") ? " selected" : ""}>${s || "any status"}</option>`,
      )
      .join("");
    // Say how far a filter looked: a job it did not find may be older than what it read.
    const scope = filtered
      ? `<p class="muted" id="list-scope">The filters looked at ${looked} job(s)${query.next ? " from where the page before stopped" : ", newest first"}${next ? `; older jobs were not searched: <a href="${esc(listHref({ ...query, next }))}">search older</a>` : "; there are no older ones"}.</p>`
      : "";
    const paging = [
      query.next ? `<a id="newest" href="${esc(listHref({ ...query, next: undefined }))}">newest</a>` : "",
      next && !filtered ? `<a id="older" href="${esc(listHref({ ...query, next }))}">older jobs →</a>` : "",
    ]
      .filter(Boolean)
      .join(" · ");
    const none = filtered ? "no matching jobs among those looked at" : "no jobs";
    const body = `<h2>Jobs</h2>
<form class="filters" method="get"><input name="q" placeholder="job name" value="${esc(query.q ?? "")}"> <select name="status">${options}</select> <button>filter</button></form>
${scope}<table class="executions"><thead><tr><th>job</th><th>status</th><th>attempts</th><th>phase</th><th>age</th></tr></thead><tbody>${rows.map((r) => r.html).join("") || `<tr><td colspan="5" class="muted">${none}</td></tr>`}</tbody></table>
${paging ? `<p class="paging">${paging}</p>` : ""}`;
    return c.html(page("jobs", body, rows.length > 0 ? refresh * 2 : undefined));
  });

  // The job as `GET /v1/jobs/:id` answers it, behind the console's own token: that route takes
  // only the API's bearer token (the console's cookie is scoped to /console, and the console's
  // token need not be the API's), so a link there from a page answers 401 when a token is set.
  app.get("/console/jobs/:id/json", async (c) => {
    try {
      const jobId = await jobIdParam(deps, c);
      const view = await jobView(deps, jobId);
      if (!view) return c.json(apiError("JobNotFound", `no job ${jobId}`), 404);
      return c.json(view);
    } catch (e) {
      // JSON whoever asks: this is the page's JSON, a browser's errors included.
      return jsonOnError(deps.log)(e as Error, c);
    }
  });

  app.get("/console/jobs/:id", async (c) => {
    const jobId = await jobIdParam(deps, c);
    const view = await jobView(deps, jobId);
    if (!view) return c.html(page("not found", `<h2>No job ${esc(jobId)}</h2>`), 404);
    const current = await attempts.current(jobId);
    const events = (await jobHistory(deps, jobId, current?.executionArn)).events as HistoryEventLike[];
    const lastRun = events.slice(events.findLastIndex((e) => e.type === "ExecutionStarted"));
    const marks = visitedStates(lastRun);
    const t0 = new Date(events[0]?.timestamp ?? Date.now()).getTime();
    const timeline = groupByAttempt(events)
      .map((g) => {
        const problems = g.events.flatMap((e) => {
          const f = failureOf(e);
          return f
            ? [
                `<li class="problem" data-error="${esc(f.error)}"><b>${esc(f.error)}</b>: ${esc(f.message)}</li>`,
              ]
            : [];
        });
        const steps = g.events
          .filter((e) => e.stateEnteredEventDetails?.name)
          .map(
            (e) =>
              `<span title="+${((new Date(e.timestamp ?? 0).getTime() - t0) / 1000).toFixed(2)}s">${esc(e.stateEnteredEventDetails?.name ?? "")}</span>`,
          )
          .join(" → ");
        const title = g.attempt === 0 ? "setup" : `attempt ${g.attempt}`;
        return `<div class="attempt" data-attempt="${g.attempt}"><h3>${title}</h3><div class="muted">${steps}</div>${problems.length ? `<ul>${problems.join("")}</ul>` : ""}</div>`;
      })
      .join("");
    const hosts = (view.hosts as Array<Record<string, unknown>>)
      .map(
        (h) =>
          `<tr><td>${esc(String(h.sliceName ?? ""))}</td><td>${esc(String(h.hostIndex ?? ""))}</td><td>${esc(String(h.address ?? ""))}</td><td>${esc(String(h.state ?? ""))}</td><td>${esc(String(h.signal ?? h.exitCode ?? ""))}</td></tr>`,
      )
      .join("");
    const result =
      view.result !== undefined
        ? `<div class="panel"><h3>Result</h3><pre>${esc(JSON.stringify(view.result, null, 2).slice(0, 20_000))}</pre></div>`
        : view.error
          ? `<div class="panel"><h3>Error</h3><pre class="problem">${esc(JSON.stringify(view.error, null, 2).slice(0, 20_000))}</pre></div>`
          : "";
    const c0 = view.counters;
    const body = `<h2>${esc(jobId)} <span class="status ${esc(view.status)}" id="job-status">${esc(view.status)}</span></h2>
<p class="muted">attempt ${view.attempt} · ${esc(view.phase)}${c0 ? ` · ${c0.attempts} attempt(s), ${c0.preemptions} preemption(s), ${c0.failures} failure(s)` : ""} · <a id="job-json" href="/console/jobs/${encodeURIComponent(jobId)}/json">JSON</a></p>
<div class="cols"><div class="panel">${renderGraph(definition, marks)}</div>
<div class="panel" style="flex:1;min-width:380px"><h3>Timeline</h3>${timeline}</div></div>
<div class="panel"><h3>Hosts</h3><table class="hosts"><thead><tr><th>slice</th><th>host</th><th>address</th><th>state</th><th>exit</th></tr></thead><tbody>${hosts}</tbody></table></div>
${result}`;
    return c.html(page(jobId, body, view.status === "RUNNING" ? refresh : undefined));
  });
  return app;
}
