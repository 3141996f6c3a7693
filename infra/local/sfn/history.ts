/**
 * An execution's history. Plain `…StateEntered`/`…StateExited` events — most of any history — are
 * held column by column (typed arrays, and arrays of strings the definition and the payloads
 * already hold), not as objects: a long history then gives the garbage collector next to nothing
 * to trace or copy. Any other event is kept as the object it was recorded as. `get`, `slice` and
 * `toJSON` give AWS's shape.
 */
import { type HistoryEvent, plainStateEvent } from "./model.js";

/** Kinds of stored event: a plain state entry, a plain state exit, or any other event. */
const ENTERED = 0;
const EXITED = 1;
const OTHER = 2;

interface StateDetails {
  name?: unknown;
  input?: unknown;
  output?: unknown;
  inputDetails?: { truncated?: unknown };
  outputDetails?: { truncated?: unknown };
}

/** The history of one execution; event `id` is the `id`-th added (ids start at 1). */
export class History {
  private size = 0;
  private time = new Float64Array(64);
  private prev = new Int32Array(64);
  private kind = new Uint8Array(64);
  private readonly types: string[] = [];
  private readonly names: string[] = [];
  /** A state event's input or output text; any other event itself. */
  private readonly texts: Array<string | HistoryEvent> = [];

  /** A history holding `events` (in id order, as read back from a compacted journal). */
  static from(events: readonly HistoryEvent[]): History {
    const h = new History();
    for (const e of events) h.add(e);
    return h;
  }

  /** How many events there are (the last one's id). */
  get length(): number {
    return this.size;
  }

  /** Append a plain `…StateEntered` (kind 0) or `…StateExited` (kind 1) event; returns its id. */
  addState(
    timestamp: number,
    type: string,
    previousEventId: number,
    kind: 0 | 1,
    name: string,
    text: string,
  ): number {
    const i = this.slot();
    this.time[i] = timestamp;
    this.prev[i] = previousEventId;
    this.kind[i] = kind;
    this.types.push(type);
    this.names.push(name);
    this.texts.push(text);
    return i + 1;
  }

  /** Append event `e`, whose id is the next one; a plain state event is stored as columns. */
  add(e: HistoryEvent): void {
    const state = e.id === this.size + 1 ? plainState(e) : undefined;
    if (state) {
      this.addState(e.timestamp, e.type, e.previousEventId, state.kind, state.name, state.text);
      return;
    }
    const i = this.slot();
    this.time[i] = e.timestamp;
    this.prev[i] = e.previousEventId;
    this.kind[i] = OTHER;
    this.types.push(e.type);
    this.names.push("");
    this.texts.push(e);
  }

  /** Event `id` in AWS's shape (a new object for a state event: change it freely). */
  get(id: number): HistoryEvent | undefined {
    const i = id - 1;
    if (!(i >= 0 && i < this.size)) return undefined;
    const k = this.kind[i];
    if (k === OTHER) return this.texts[i] as HistoryEvent;
    const timestamp = this.time[i] as number;
    const type = this.types[i] as string;
    const previousEventId = this.prev[i] as number;
    const name = this.names[i] as string;
    const text = this.texts[i] as string;
    return plainStateEvent(k === ENTERED ? 0 : 1, timestamp, type, id, previousEventId, name, text);
  }

  /** Events `from`..`to` (ids, inclusive) in AWS's shape. */
  slice(from: number, to: number): HistoryEvent[] {
    const out: HistoryEvent[] = [];
    for (let id = Math.max(1, from); id <= Math.min(to, this.size); id++)
      out.push(this.get(id) as HistoryEvent);
    return out;
  }

  /** Every event, in AWS's shape (what a compacted journal holds). */
  toJSON(): HistoryEvent[] {
    return this.slice(1, this.size);
  }

  timestampOf(id: number): number | undefined {
    return id >= 1 && id <= this.size ? this.time[id - 1] : undefined;
  }

  previousOf(id: number): number | undefined {
    return id >= 1 && id <= this.size ? this.prev[id - 1] : undefined;
  }

  /** Is event `id` a plain state entry or exit (then `typeOf`, `nameOf` and `textOf` describe it)? */
  isState(id: number): boolean {
    return id >= 1 && id <= this.size && this.kind[id - 1] !== OTHER;
  }

  typeOf(id: number): string | undefined {
    return this.types[id - 1];
  }

  nameOf(id: number): string | undefined {
    return this.isState(id) ? this.names[id - 1] : undefined;
  }

  textOf(id: number): string | undefined {
    return this.isState(id) ? (this.texts[id - 1] as string) : undefined;
  }

  /**
   * The columns themselves, for the journal's encoder to read without a call per field: index
   * `id - 1`, meaningful only where `isState(id)`. Read only.
   */
  columns(): {
    time: Float64Array;
    prev: Int32Array;
    types: readonly string[];
    names: readonly string[];
    texts: ReadonlyArray<string | HistoryEvent>;
  } {
    return { time: this.time, prev: this.prev, types: this.types, names: this.names, texts: this.texts };
  }

  /** The state entered by event `id` and its input text, when it is a plain StateEntered. */
  entryOf(id: number): { name: string; input: string } | undefined {
    if (!(id >= 1 && id <= this.size && this.kind[id - 1] === ENTERED)) return undefined;
    return { name: this.names[id - 1] as string, input: this.texts[id - 1] as string };
  }

  /** The index of the next event, growing the typed columns when full. */
  private slot(): number {
    const i = this.size;
    if (i === this.time.length) {
      const time = new Float64Array(i * 2);
      time.set(this.time);
      this.time = time;
      const prev = new Int32Array(i * 2);
      prev.set(this.prev);
      this.prev = prev;
      const kind = new Uint8Array(i * 2);
      kind.set(this.kind);
      this.kind = kind;
    }
    this.size = i + 1;
    return i;
  }
}

/** `e` as a plain state event's parts, when `get` would give it back exactly as it is. */
function plainState(e: HistoryEvent): { kind: 0 | 1; name: string; text: string } | undefined {
  const entered = e.stateEnteredEventDetails as StateDetails | undefined;
  const d = entered ?? (e.stateExitedEventDetails as StateDetails | undefined);
  if (
    !d ||
    typeof d !== "object" ||
    Object.keys(e).length !== 5 ||
    typeof e.timestamp !== "number" ||
    typeof e.type !== "string"
  )
    return undefined;
  const text = entered ? d.input : d.output;
  const details = entered ? d.inputDetails : d.outputDetails;
  if (
    typeof d.name !== "string" ||
    typeof text !== "string" ||
    Object.keys(d).length !== 3 ||
    !details ||
    details.truncated !== false ||
    Object.keys(details).length !== 1 ||
    !Number.isInteger(e.previousEventId) ||
    Math.abs(e.previousEventId) > 2 ** 31 - 1
  )
    return undefined;
  return { kind: entered ? ENTERED : EXITED, name: d.name, text };
}
