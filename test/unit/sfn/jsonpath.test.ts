import { describe, expect, it } from "vitest";
import {
  evaluatePath,
  isReferencePath,
  isValidPath,
  parsePath,
  setAtPath,
} from "../../../infra/local/sfn/jsonpath.js";

const doc = {
  store: {
    book: [
      { title: "A", price: 8, tags: ["x"] },
      { title: "B", price: 12 },
      { title: "C", price: 22, isbn: "1" },
    ],
    "odd key": { "it's": 1 },
  },
  n: 0,
};

describe("JSONPath (Jayway semantics)", () => {
  it("selects one value with a definite path, or nothing", () => {
    expect(evaluatePath("$.store.book[1].title", doc)).toEqual({ found: true, value: "B" });
    expect(evaluatePath("$['store']['odd key']['it\\'s']", doc)).toEqual({ found: true, value: 1 });
    expect(evaluatePath("$.store.book[-1].price", doc)).toEqual({ found: true, value: 22 });
    expect(evaluatePath("$.n", doc)).toEqual({ found: true, value: 0 });
    expect(evaluatePath("$", doc)).toEqual({ found: true, value: doc });
    expect(evaluatePath("$.nope", doc)).toEqual({ found: false });
    expect(evaluatePath("$.store.book[9]", doc)).toEqual({ found: false });
  });

  it("selects lists with wildcards, slices, unions, filters and deep scan", () => {
    expect(evaluatePath("$.store.book[*].title", doc)).toEqual({ found: true, value: ["A", "B", "C"] });
    expect(evaluatePath("$.store.book[0:2].price", doc)).toEqual({ found: true, value: [8, 12] });
    expect(evaluatePath("$.store.book[::2].title", doc)).toEqual({ found: true, value: ["A", "C"] });
    expect(evaluatePath("$.store.book[0,2].title", doc)).toEqual({ found: true, value: ["A", "C"] });
    expect(evaluatePath("$.store.book[?(@.price > 10)].title", doc)).toEqual({
      found: true,
      value: ["B", "C"],
    });
    expect(evaluatePath("$.store.book[?(@.isbn)].title", doc)).toEqual({ found: true, value: ["C"] });
    expect(evaluatePath("$.store.book[?(@.price < 10 || @.title == 'C')].title", doc)).toEqual({
      found: true,
      value: ["A", "C"],
    });
    expect(evaluatePath("$..price", doc)).toEqual({ found: true, value: [8, 12, 22] });
    expect(evaluatePath("$.missing[*]", doc)).toEqual({ found: true, value: [] });
    expect(parsePath("$.a[*]").definite).toBe(false);
    expect(parsePath("$.a[0].b").definite).toBe(true);
  });

  it("rejects malformed paths and tells reference paths apart", () => {
    for (const bad of ["a.b", "$.", "$[", "$.a[?(@.b ==", "$[1:2:0]", "$.a]"])
      expect(isValidPath(bad), bad).toBe(false);
    expect(isReferencePath("$.a['b'][0]")).toBe(true);
    expect(isReferencePath("$.a[*]")).toBe(false);
  });

  it("sets values at reference paths without touching the input", () => {
    const input = { a: { b: 1 }, list: [1, 2] };
    expect(setAtPath(input, "$.a.c", 2)).toEqual({ a: { b: 1, c: 2 }, list: [1, 2] });
    expect(setAtPath(input, "$.new.deep", true)).toEqual({ a: { b: 1 }, list: [1, 2], new: { deep: true } });
    expect(setAtPath(input, "$.list[1]", 9)).toEqual({ a: { b: 1 }, list: [1, 9] });
    expect(setAtPath(input, "$", 5)).toBe(5);
    expect(input).toEqual({ a: { b: 1 }, list: [1, 2] });
    expect(() => setAtPath({ a: 1 }, "$.a.b", 1)).toThrow();
    expect(() => setAtPath({ list: [] }, "$.list[3]", 1)).toThrow();
  });
});
