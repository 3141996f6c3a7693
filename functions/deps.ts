import type {
  AgentConnector,
  Clock,
  ExecutionStarter,
  ResultsStore,
  SliceProvider,
  TaskTokens,
} from "./ports.js";

/** Everything a step function may need; each factory takes only what it uses. */
export interface ControlPlaneDeps {
  provider: SliceProvider;
  agents: AgentConnector;
  store: ResultsStore;
  tokens: TaskTokens;
  clock: Clock;
  executions: ExecutionStarter;
  /** Directory workloads run in (and relative `workload.cwd` resolves against); the agent's own if unset. */
  workloadCwd?: string | undefined;
  /** Continue as a new execution past this many history events (default {@link HISTORY_BUDGET}). */
  historyBudget?: number | undefined;
  /** Where diagnostics go (one line each); silent by default. */
  log?: (line: string) => void;
}

/** Run `fn` over `items` with at most `limit` at once; results keep the items' order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** How many agent calls a step makes at once (fan-out to hundreds of hosts). */
export const FAN_OUT = 128;

/** Rough history events each state adds (Task ≈ 5, Choice/Pass ≈ 2, Wait ≈ 2, a retried failed try ≈ 3). */
export const HISTORY_COST = { task: 5, choice: 2, wait: 2, failedTry: 3 } as const;

/** Continue as a new execution past this many events (AWS fails an execution at 25,000). */
export const HISTORY_BUDGET = 20_000;
