// A test workload whose behaviour the job's argv chooses, to play the ancestors' scenarios:
//   --sleep MS                 run this long before ending (default 50)
//   --first-sleep MS           on attempt 1, run this long instead (until preempted, say)
//   --fail-on-attempt N        fail on attempt N (all hosts, or only --fail-slice's)
//   --fail-until-attempt N     fail on every attempt before N
//   --fail-slice S             failures happen on slice S only
//   --always-fail-slice S      slice S fails on every attempt
//   --exit-code C              exit code of a failure (default 1)
//   --result-pad N             add N characters to the result (`pad`), to make it large
// A failure raises DeliberateFailure: written to GANGWAY_ERROR_FILE, then exit C.
// On success it writes {slice, host, worker, attempt} to GANGWAY_RESULT_FILE.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    sleep: { type: "string", default: "50" },
    "first-sleep": { type: "string" },
    "fail-on-attempt": { type: "string" },
    "fail-until-attempt": { type: "string" },
    "fail-slice": { type: "string" },
    "always-fail-slice": { type: "string" },
    "exit-code": { type: "string", default: "1" },
    "result-pad": { type: "string", default: "0" },
  },
});
const env = process.env;
const attempt = Number(env.GANGWAY_ATTEMPT);
const slice = Number(env.GANGWAY_SLICE_INDEX);
const host = Number(env.GANGWAY_HOST_INDEX);
const worker = Number(env.GANGWAY_WORKER_INDEX);
const onSlice = values["fail-slice"] === undefined || Number(values["fail-slice"]) === slice;
const fail =
  (values["fail-on-attempt"] !== undefined && Number(values["fail-on-attempt"]) === attempt && onSlice) ||
  (values["fail-until-attempt"] !== undefined && attempt < Number(values["fail-until-attempt"]) && onSlice) ||
  (values["always-fail-slice"] !== undefined && Number(values["always-fail-slice"]) === slice);

process.on("SIGTERM", () => process.exit(143));
const sleep = attempt === 1 && values["first-sleep"] !== undefined ? values["first-sleep"] : values.sleep;
await new Promise((r) => setTimeout(r, Number(sleep)));
if (fail) {
  const error = new Error(`deliberate failure on attempt ${attempt}, slice ${slice}, host ${host}`);
  error.name = "DeliberateFailure";
  writeFileSync(
    env.GANGWAY_ERROR_FILE,
    JSON.stringify({ name: error.name, message: error.message, stack: error.stack }),
  );
  process.exit(Number(values["exit-code"]));
}
const pad = Number(values["result-pad"]) > 0 ? { pad: "x".repeat(Number(values["result-pad"])) } : {};
writeFileSync(env.GANGWAY_RESULT_FILE, JSON.stringify({ slice, host, worker, attempt, ...pad }));
