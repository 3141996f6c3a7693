/**
 * Parallel and Map: child branches run concurrently, each journaled under its own branch id
 * (`<parent>.<enteredEventId>.<attempt>.<index>`), so a restart resumes unfinished children and
 * keeps the results of finished ones.
 */
import { setMaxListeners } from "node:events";
import type { StateDef, StatesBlock } from "./definition.js";
import { runtimeError, StatesError } from "./errors.js";
import { Aborted, type Branch, type ExecutionRun, QUIET } from "./execution.js";
import type { BranchCheckpoint, BranchDone } from "./model.js";
import { applyFilterPath, evaluateTemplate, resolvePath } from "./payload.js";

/** Inline Map runs at most this many iterations at once, as on AWS. */
export const INLINE_MAP_CONCURRENCY = 40;

/** Mark an error as a child branch's, so the state reports `…StateFailed` for it. */
export function markChild(e: StatesError): StatesError {
  (e as StatesError & { fromChild?: boolean }).fromChild = true;
  return e;
}

interface Child {
  index: number;
  input: unknown;
  mapItem?: { Index: number; Value: unknown };
}

async function runChildren(
  run: ExecutionRun,
  parent: Branch,
  cp: BranchCheckpoint,
  attempt: number,
  block: (i: number) => StatesBlock,
  children: Child[],
  concurrency: number,
  hooks: {
    started?: (c: Child) => void;
    succeeded?: (c: Child) => void;
    failed?: (c: Child) => void;
    aborted?: (c: Child) => void;
    tolerated?: (failures: number) => boolean;
  },
  quiet = false,
): Promise<unknown[]> {
  const results: unknown[] = new Array(children.length);
  const group = new AbortController();
  // Every running child listens on the group's signal; there may be hundreds.
  setMaxListeners(0, group.signal);
  const onParentAbort = () => group.abort();
  parent.signal.addEventListener("abort", onParentAbort, { once: true });
  let firstError: StatesError | undefined;
  let failures = 0;
  const running = new Set<number>();
  let nextIndex = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (group.signal.aborted) return;
      const c = children[nextIndex++];
      if (!c) return;
      const id = `${parent.id}.${cp.entered}.${attempt}${quiet ? QUIET : "."}${c.index}`;
      const known = run.exec.branches.get(id);
      if (known && "done" in known) {
        if (known.done.error === undefined) results[c.index] = known.done.output;
        else {
          failures++;
          if (!hooks.tolerated?.(failures)) {
            firstError ??= new StatesError(known.done.error, known.done.cause);
            group.abort();
            return;
          }
        }
        continue;
      }
      const resumeAt = known && "state" in known ? known : undefined;
      if (!resumeAt) hooks.started?.(c);
      const child: Branch = { id, signal: group.signal };
      if (c.mapItem) child.mapItem = c.mapItem;
      running.add(c.index);
      try {
        const out = await run.runBranch(child, block(c.index), c.input, resumeAt, cp.vars);
        running.delete(c.index);
        results[c.index] = out;
        hooks.succeeded?.(c);
        run.branchDone(id, { output: out });
      } catch (e) {
        running.delete(c.index);
        if (e instanceof Aborted) {
          if (!parent.signal.aborted) hooks.aborted?.(c);
          return;
        }
        const err = e instanceof StatesError ? e : new StatesError("States.Runtime", String(e));
        hooks.failed?.(c);
        const d: BranchDone = { error: err.name };
        if (err.cause !== undefined) d.cause = err.cause;
        run.branchDone(id, d);
        failures++;
        if (err.name === "States.Runtime" || !hooks.tolerated?.(failures)) {
          firstError ??= err;
          group.abort();
          return;
        }
      }
    }
  };
  const n = Math.max(1, Math.min(concurrency, children.length));
  try {
    await Promise.all(Array.from({ length: n }, () => worker()));
  } finally {
    parent.signal.removeEventListener("abort", onParentAbort);
  }
  if (parent.signal.aborted) throw new Aborted();
  if (firstError) throw markChild(firstError);
  return results;
}

/**
 * Run prepared children (JSONata Map and Parallel): `mapName` makes them Map iterations with their
 * events (unless `quiet`, a DISTRIBUTED Map's); the result is the array of outputs.
 */
export async function runChildrenOf(
  run: ExecutionRun,
  b: Branch,
  cp: BranchCheckpoint,
  attempt: number,
  items: Array<{ block: StatesBlock; input: unknown; mapItem?: { Index: number; Value: unknown } }>,
  concurrency: number,
  quiet: boolean,
  mapName?: string,
): Promise<unknown[]> {
  const children: Child[] = items.map((x, index) =>
    x.mapItem ? { index, input: x.input, mapItem: x.mapItem } : { index, input: x.input },
  );
  const name = mapName ?? "";
  const hooks =
    mapName === undefined || quiet
      ? {}
      : {
          started: (c: Child) =>
            run.emit(b.id, "MapIterationStarted", {
              mapIterationStartedEventDetails: { name, index: c.index },
            }),
          succeeded: (c: Child) =>
            run.emit(b.id, "MapIterationSucceeded", {
              mapIterationSucceededEventDetails: { name, index: c.index },
            }),
          failed: (c: Child) =>
            run.emit(b.id, "MapIterationFailed", {
              mapIterationFailedEventDetails: { name, index: c.index },
            }),
          aborted: (c: Child) =>
            run.emit(b.id, "MapIterationAborted", {
              mapIterationAbortedEventDetails: { name, index: c.index },
            }),
        };
  try {
    return await runChildren(
      run,
      b,
      cp,
      attempt,
      (i) => (items[i] as { block: StatesBlock }).block,
      children,
      concurrency,
      hooks,
      quiet,
    );
  } finally {
    if (!b.signal.aborted) run.clearChildren(b.id);
  }
}

/** Run a Parallel state's branches; the result is the array of branch outputs. */
export async function runParallel(
  run: ExecutionRun,
  b: Branch,
  st: StateDef,
  cpIn: BranchCheckpoint,
  attempt: number,
): Promise<unknown> {
  const scope = run.scope(b, cpIn);
  const effective = applyFilterPath(
    "InputPath",
    st.InputPath as string | null | undefined,
    cpIn.input,
    scope,
  );
  const input = st.Parameters !== undefined ? evaluateTemplate(st.Parameters, effective, scope) : effective;
  const branches = st.Branches as StatesBlock[];
  let cp = cpIn;
  if (cp.phase !== "children") {
    run.emit(b.id, "ParallelStateStarted");
    cp = { ...cp, phase: "children" };
    run.checkpoint(b.id, cp);
  }
  try {
    // AWS records no ParallelStateSucceeded: the branches' events are followed by ParallelStateExited.
    return await runChildren(
      run,
      b,
      cp,
      attempt,
      (i) => branches[i] as StatesBlock,
      branches.map((_, index) => ({ index, input })),
      branches.length,
      {},
    );
  } finally {
    if (!b.signal.aborted) run.clearChildren(b.id);
  }
}

function intField(
  st: StateDef,
  field: string,
  input: unknown,
  run: ExecutionRun,
  b: Branch,
  cp: BranchCheckpoint,
  kind: "integer" | "float",
): number | undefined {
  if (typeof st[field] === "number") return st[field] as number;
  const path = st[`${field}Path`];
  if (typeof path !== "string") return undefined;
  const r = resolvePath(path, input, run.scope(b, cp));
  let v = r.found ? r.value : undefined;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) v = Number(v);
  const ok = typeof v === "number" && (kind === "float" || Number.isInteger(v));
  if (!ok)
    throw runtimeError(
      cp.state,
      cp.entered,
      `The ${field}Path field refers to value "${typeof v === "string" ? v : JSON.stringify(v ?? null)}" which is not a valid ${kind}: ${path}`,
    );
  return v as number;
}

/** Run a Map state (inline, or DISTRIBUTED run inline with map-run events); the result is the array of outputs. */
export async function runMap(
  run: ExecutionRun,
  b: Branch,
  st: StateDef,
  cpIn: BranchCheckpoint,
  attempt: number,
): Promise<unknown> {
  const scope = run.scope(b, cpIn);
  const effective = applyFilterPath(
    "InputPath",
    st.InputPath as string | null | undefined,
    cpIn.input,
    scope,
  );
  if (st.ItemReader !== undefined)
    throw runtimeError(
      cpIn.state,
      cpIn.entered,
      "ItemReader needs Amazon S3, which the embedded engine does not provide",
    );
  const itemsPath = (st.ItemsPath as string | undefined) ?? "$";
  const found = resolvePath(itemsPath, effective, scope);
  if (!found.found)
    throw runtimeError(
      cpIn.state,
      cpIn.entered,
      `Invalid path '${itemsPath}' : No results for path: ${itemsPath}`,
    );
  const items = found.value;
  if (!Array.isArray(items))
    throw runtimeError(
      cpIn.state,
      cpIn.entered,
      `Invalid path '${itemsPath}': the value at the path is not an array: ${JSON.stringify(items)}`,
    );
  const processor = (st.ItemProcessor ?? st.Iterator) as StatesBlock & {
    ProcessorConfig?: { Mode?: string };
  };
  const distributed = processor.ProcessorConfig?.Mode === "DISTRIBUTED";
  let cp = cpIn;
  if (cp.phase !== "children")
    run.emit(b.id, "MapStateStarted", { mapStateStartedEventDetails: { length: items.length } });
  const maxConcurrency = intField(st, "MaxConcurrency", effective, run, b, cpIn, "integer") ?? 0;
  const toleratedCount = distributed
    ? intField(st, "ToleratedFailureCount", effective, run, b, cpIn, "integer")
    : undefined;
  const toleratedPct = distributed
    ? intField(st, "ToleratedFailurePercentage", effective, run, b, cpIn, "float")
    : undefined;
  if (toleratedPct !== undefined && (toleratedPct < 0 || toleratedPct > 100))
    throw runtimeError(cpIn.state, cpIn.entered, "ToleratedFailurePercentage must be between 0 and 100.");
  const selector = (st.ItemSelector ?? st.Parameters) as unknown;
  const children: Child[] = items.map((value, index) => {
    const mapItem = { Index: index, Value: value };
    let input: unknown = value;
    if (selector !== undefined) {
      const s = run.scope({ ...b, mapItem }, cpIn);
      input = evaluateTemplate(selector, effective, s);
    }
    return { index, input, mapItem };
  });
  const name = cp.state;
  const mapRunArn = `${run.exec.stateMachineArn.replace(":stateMachine:", ":mapRun:")}/${name}:${cp.entered}`;
  if (cp.phase !== "children") {
    if (distributed) run.emit(b.id, "MapRunStarted", { mapRunStartedEventDetails: { mapRunArn } });
    cp = { ...cp, phase: "children" };
    run.checkpoint(b.id, cp);
  }
  const limit = distributed
    ? maxConcurrency || 1000
    : Math.min(maxConcurrency === 0 ? INLINE_MAP_CONCURRENCY : maxConcurrency, INLINE_MAP_CONCURRENCY);
  const iter = (c: Child) => ({ mapIterationStartedEventDetails: { name, index: c.index } });
  const hooks = distributed
    ? {
        tolerated: (failures: number) =>
          (toleratedCount !== undefined && failures <= toleratedCount) ||
          (toleratedPct !== undefined && (failures / Math.max(1, items.length)) * 100 <= toleratedPct),
      }
    : {
        started: (c: Child) => run.emit(b.id, "MapIterationStarted", iter(c)),
        succeeded: (c: Child) =>
          run.emit(b.id, "MapIterationSucceeded", {
            mapIterationSucceededEventDetails: { name, index: c.index },
          }),
        failed: (c: Child) =>
          run.emit(b.id, "MapIterationFailed", { mapIterationFailedEventDetails: { name, index: c.index } }),
        aborted: (c: Child) =>
          run.emit(b.id, "MapIterationAborted", {
            mapIterationAbortedEventDetails: { name, index: c.index },
          }),
      };
  try {
    const out = await runChildren(run, b, cp, attempt, () => processor, children, limit, hooks, distributed);
    if (distributed) run.emit(b.id, "MapRunSucceeded");
    run.emit(b.id, "MapStateSucceeded");
    return distributed ? out.filter((x) => x !== undefined) : out;
  } catch (e) {
    if (distributed && e instanceof StatesError) {
      run.emit(b.id, "MapRunFailed", {
        mapRunFailedEventDetails: { error: "States.ExceedToleratedFailureThreshold" },
      });
      throw markChild(
        new StatesError(
          "States.ExceedToleratedFailureThreshold",
          "The specified tolerated failure threshold was exceeded",
        ),
      );
    }
    throw e;
  } finally {
    if (!b.signal.aborted) run.clearChildren(b.id);
  }
}
