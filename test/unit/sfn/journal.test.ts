import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { History } from "../../../infra/local/sfn/history.js";
import { decodeRun, encodeBatch, Journal } from "../../../infra/local/sfn/journal.js";
import { type HistoryEvent, type JournalRecord, NOT_TRUNCATED } from "../../../infra/local/sfn/model.js";

type StateRunRecord = Extract<JournalRecord, { k: "sr" }>;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A history of plain state events, each following the one before it. */
function stateEvents(
  specs: Array<{ type: string; name: string; text: string; timestamp: number }>,
  firstId = 1,
  firstPrev = 0,
): HistoryEvent[] {
  return specs.map((s, i) => {
    const id = firstId + i;
    const previousEventId = i === 0 ? firstPrev : id - 1;
    return s.type.endsWith("StateEntered")
      ? {
          timestamp: s.timestamp,
          type: s.type,
          id,
          previousEventId,
          stateEnteredEventDetails: { name: s.name, input: s.text, inputDetails: NOT_TRUNCATED },
        }
      : {
          timestamp: s.timestamp,
          type: s.type,
          id,
          previousEventId,
          stateExitedEventDetails: { name: s.name, output: s.text, outputDetails: NOT_TRUNCATED },
        };
  });
}

function runLines(text: string): StateRunRecord[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JournalRecord)
    .filter((r): r is StateRunRecord => r.k === "sr");
}

describe("state runs in the journal", () => {
  it("decode to exactly the events they were written from, whatever differs between events", () => {
    // Every field changes somewhere, in every combination the encoder distinguishes: a chain of
    // identical pairs, a new payload, a clock that stands still, jumps and goes back, names and
    // texts that need escaping, an entry with no exit (Fail), and types that break the alternation.
    const specs: Array<{ type: string; name: string; text: string; timestamp: number }> = [];
    let t = 1_700_000_000_000;
    const names = ["S0", 'quote"d', "new\nline", "ünï", "S0", "tab\there"];
    const texts = ["{}", '{"a":"x\\"y"}', "[1,2,3]", '"text"', "null", "{}"];
    const types = ["Pass", "Choice", "Task", "Wait"];
    for (let i = 0; i < 300; i++) {
      const stateType = types[i % 7 === 0 ? (i / 7) % types.length : 0] as string;
      const name = i % 5 === 0 ? (names[i % names.length] as string) : `S${i}`;
      const text = i % 11 === 0 ? (texts[i % texts.length] as string) : "{}";
      if (i % 13 === 0) t += 7;
      if (i % 29 === 0) t -= 3;
      specs.push({ type: `${stateType}StateEntered`, name, text, timestamp: t });
      if (i % 17 === 5) continue; // entered, never exited
      if (i % 19 === 0) t += 1;
      const out = i % 3 === 0 ? `{"i":${i}}` : text;
      specs.push({ type: `${i % 23 === 0 ? "Pass" : stateType}StateExited`, name, text: out, timestamp: t });
    }
    const events = stateEvents(specs, 5, 3);
    // Four other events first, so the run starts at id 5 after a previousEventId of 3.
    const others = [1, 2, 3, 4].map((id) => ({
      timestamp: t,
      type: "TaskScheduled",
      id,
      previousEventId: id - 1,
    }));
    const history = History.from([...others, ...events]);
    expect(history.toJSON()).toEqual([...others, ...events]);
    const text = encodeBatch([{ k: "run", x: 7, b: "r.4.0.2", history, from: 5, to: 5 + events.length - 1 }]);
    const [record, ...rest] = runLines(text);
    expect(rest).toHaveLength(0);
    expect(record).toMatchObject({ k: "sr", x: 7, b: "r.4.0.2" });
    const decoded = decodeRun(record as StateRunRecord);
    expect(decoded.map(([b]) => b).every((b) => b === "r.4.0.2")).toBe(true);
    expect(decoded.map(([, e]) => e)).toEqual(events);
  });

  it("write a Pass chain as one token a transition", () => {
    const specs = [];
    for (let i = 0; i < 100; i++) {
      specs.push({ type: "PassStateEntered", name: `S${i}`, text: "{}", timestamp: 5 });
      specs.push({ type: "PassStateExited", name: `S${i}`, text: "{}", timestamp: 5 });
    }
    const events = stateEvents(specs);
    const history = History.from(events);
    const [record] = runLines(encodeBatch([{ k: "run", x: 1, b: "r", history, from: 1, to: 200 }]));
    // The first entry carries every field; each later transition is its state's name.
    expect((record as StateRunRecord).l.length).toBeLessThanOrEqual(100 + 5);
    expect(decodeRun(record as StateRunRecord).map(([, e]) => e)).toEqual(events);
  });

  it("refuse a malformed run instead of inventing events", () => {
    const bad: StateRunRecord = { k: "sr", x: 1, b: "r", i: 1, p: 0, t: 0, l: [2] };
    expect(() => decodeRun(bad)).toThrow(/malformed state run/);
    expect(() => decodeRun({ ...bad, l: [1, 5] })).toThrow(/malformed state run/);
  });

  it("are queued by reference and split where events stop following each other", () => {
    dir = mkdtempSync(join(tmpdir(), "gangway-sfn-journal-"));
    const journal = new Journal(dir);
    journal.rewrite([]);
    const events = History.from(
      stateEvents([
        { type: "PassStateEntered", name: "A", text: "{}", timestamp: 1 },
        { type: "PassStateExited", name: "A", text: "{}", timestamp: 1 },
        { type: "PassStateEntered", name: "B", text: "{}", timestamp: 2 },
        { type: "PassStateExited", name: "B", text: "{}", timestamp: 2 },
      ]),
    );
    const other = History.from(events.toJSON());
    // Another branch's events, a record in between and a gap in ids each start a new run.
    journal.appendStateEvent(1, "r", events, 1);
    journal.appendStateEvent(1, "r", events, 2);
    journal.appendStateEvent(1, "r.1", events, 3);
    journal.append({ k: "clear", x: 1, b: "r.1" });
    journal.appendStateEvent(1, "r", events, 4);
    journal.appendStateEvent(2, "r", other, 1);
    journal.close();
    const records = new Journal(dir).read();
    expect(records.map((r) => r.k)).toEqual(["sr", "sr", "clear", "sr", "sr"]);
    const ids = records
      .filter((r): r is StateRunRecord => r.k === "sr")
      .map((r) => [r.x, r.b, decodeRun(r).map(([, e]) => e.id)]);
    expect(ids).toEqual([
      [1, "r", [1, 2]],
      [1, "r.1", [3]],
      [1, "r", [4]],
      [2, "r", [1]],
    ]);
  });
});

describe("an execution's history", () => {
  it("gives back every event exactly as it was added, plain state events or not", () => {
    const entered = {
      timestamp: 1_700_000_000_123,
      type: "PassStateEntered",
      id: 2,
      previousEventId: 1,
      stateEnteredEventDetails: { name: "P", input: '{"a":1}', inputDetails: { truncated: false } },
    };
    const events: HistoryEvent[] = [
      {
        timestamp: 1_700_000_000_000,
        type: "ExecutionStarted",
        id: 1,
        previousEventId: 0,
        executionStartedEventDetails: { input: "{}" },
      },
      entered,
      // Not plain: an extra field, a truncated payload. Kept whole, returned as they are.
      { ...entered, id: 3, previousEventId: 2, extra: true },
      {
        timestamp: 1_700_000_000_124,
        type: "PassStateExited",
        id: 4,
        previousEventId: 3,
        stateExitedEventDetails: { name: "P", output: "{}", outputDetails: { truncated: true } },
      },
      {
        timestamp: 1_700_000_000_125,
        type: "PassStateExited",
        id: 5,
        previousEventId: 4,
        stateExitedEventDetails: { name: "P", output: "[]", outputDetails: { truncated: false } },
      },
    ];
    const h = History.from(events);
    expect(h.length).toBe(5);
    expect(h.toJSON()).toEqual(events);
    expect(h.slice(2, 3)).toEqual(events.slice(1, 3));
    expect(h.get(0)).toBeUndefined();
    expect(h.get(6)).toBeUndefined();
    expect([1, 2, 3, 4, 5].map((id) => h.isState(id))).toEqual([false, true, false, false, true]);
    expect(h.entryOf(2)).toEqual({ name: "P", input: '{"a":1}' });
    expect(h.entryOf(5)).toBeUndefined();
    expect(h.timestampOf(5)).toBe(1_700_000_000_125);
    // A returned state event is a copy: changing it changes nothing kept.
    (h.get(2) as { type: string }).type = "changed";
    expect(h.get(2)).toEqual(entered);
  });

  it("grows past its first capacity without losing anything", () => {
    const h = new History();
    for (let i = 0; i < 1000; i++)
      h.addState(1_700_000_000_000 + i, "PassStateEntered", i, 0, `S${i}`, `${i}`);
    expect(h.length).toBe(1000);
    expect(h.get(777)).toEqual({
      timestamp: 1_700_000_000_776,
      type: "PassStateEntered",
      id: 777,
      previousEventId: 776,
      stateEnteredEventDetails: { name: "S776", input: "776", inputDetails: { truncated: false } },
    });
  });
});
