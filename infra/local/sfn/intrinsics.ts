/**
 * The `States.*` intrinsic functions of the JSONPath query language: a small parser for
 * `States.Format('{} is {}', $.a, States.Array(1, 2))` and an evaluator.
 */
import { createHash, randomInt, randomUUID } from "node:crypto";
import { StatesError } from "./errors.js";

type Arg = { t: "lit"; v: unknown } | { t: "path"; path: string } | { t: "call"; fn: string; args: Arg[] };

/** Resolves a path argument (`$.x`, `$$.x`, `$var`) to its value. */
export type PathResolver = (path: string) => unknown;

const parsed = new Map<string, Arg>();

/** True when a `.$` value is an intrinsic call rather than a path. */
export function isIntrinsic(text: string): boolean {
  return /^States\.[A-Za-z0-9]+\s*\(/.test(text);
}

/** Parse an intrinsic expression; throws `StatesError("States.IntrinsicFailure")` on bad syntax. */
export function parseIntrinsic(text: string): Arg {
  const hit = parsed.get(text);
  if (hit) return hit;
  const p = new Parser(text);
  const call = p.arg();
  p.ws();
  if (p.i !== text.length || call.t !== "call") throw bad(text, "unexpected trailing text");
  if (!(call.fn in FUNCTIONS)) throw bad(text, `unknown function ${call.fn}`);
  parsed.set(text, call);
  return call;
}

/** Evaluate an intrinsic expression. */
export function evaluateIntrinsic(text: string, resolve: PathResolver): unknown {
  return evalArg(parseIntrinsic(text), resolve);
}

function bad(text: string, why: string): StatesError {
  return new StatesError("States.IntrinsicFailure", `Invalid intrinsic function '${text}': ${why}`);
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}
  ws() {
    while (this.s[this.i] === " " || this.s[this.i] === "\t" || this.s[this.i] === "\n") this.i++;
  }
  arg(): Arg {
    this.ws();
    const s = this.s;
    const c = s[this.i];
    if (c === "'") {
      let out = "";
      this.i++;
      while (this.i < s.length && s[this.i] !== "'") {
        if (s[this.i] === "\\" && this.i + 1 < s.length) {
          this.i++;
          const e = s[this.i] as string;
          // \{ and \} stay escaped so States.Format can tell them from placeholders.
          out += e === "{" || e === "}" ? `\\${e}` : e;
        } else out += s[this.i];
        this.i++;
      }
      if (s[this.i] !== "'") throw bad(s, "unterminated string");
      this.i++;
      return { t: "lit", v: out };
    }
    if (c === "$") {
      const start = this.i;
      let depth = 0;
      let quote: string | undefined;
      while (this.i < s.length) {
        const d = s[this.i] as string;
        if (quote) {
          if (d === quote) quote = undefined;
        } else if (d === "'" || d === '"') quote = d;
        else if (d === "[" || d === "(") depth++;
        else if (d === "]" || d === ")") {
          if (depth === 0) break;
          depth--;
        } else if (depth === 0 && (d === "," || d === " ")) break;
        this.i++;
      }
      return { t: "path", path: s.slice(start, this.i) };
    }
    const m = /^[A-Za-z0-9_.+-]+/.exec(s.slice(this.i));
    if (!m) throw bad(s, `unexpected '${c ?? "end"}' at ${this.i}`);
    const word = m[0];
    this.i += word.length;
    this.ws();
    if (s[this.i] === "(") {
      this.i++;
      const args: Arg[] = [];
      this.ws();
      if (s[this.i] === ")") this.i++;
      else {
        for (;;) {
          args.push(this.arg());
          this.ws();
          if (s[this.i] === ",") {
            this.i++;
            continue;
          }
          if (s[this.i] === ")") {
            this.i++;
            break;
          }
          throw bad(s, `expected ',' or ')' at ${this.i}`);
        }
      }
      return { t: "call", fn: word, args };
    }
    if (word === "true") return { t: "lit", v: true };
    if (word === "false") return { t: "lit", v: false };
    if (word === "null") return { t: "lit", v: null };
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(word)) return { t: "lit", v: Number(word) };
    throw bad(s, `unexpected '${word}'`);
  }
}

function evalArg(a: Arg, resolve: PathResolver): unknown {
  if (a.t === "lit") return a.v;
  if (a.t === "path") return resolve(a.path);
  const fn = FUNCTIONS[a.fn];
  if (!fn) throw new StatesError("States.IntrinsicFailure", `Unknown intrinsic function ${a.fn}`);
  const values = a.args.map((x) => {
    const v = evalArg(x, resolve);
    // Literal strings keep `\{` escapes only for States.Format's template.
    return x.t === "lit" && typeof v === "string" && a.fn !== "States.Format" ? unescapeBraces(v) : v;
  });
  return fn(values, a.fn);
}

function unescapeBraces(s: string): string {
  return s.replace(/\\([{}])/g, "$1");
}

function fail(fn: string, why: string): never {
  throw new StatesError("States.IntrinsicFailure", `${fn}: ${why}`);
}

function arity(fn: string, args: unknown[], min: number, max = min): void {
  if (args.length < min || args.length > max)
    fail(fn, `expected ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}`);
}

function str(fn: string, v: unknown, what: string): string {
  if (typeof v !== "string") fail(fn, `${what} must be a string`);
  return v;
}
function int(fn: string, v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) fail(fn, `${what} must be an integer`);
  return v;
}
function num(fn: string, v: unknown, what: string): number {
  if (typeof v !== "number") fail(fn, `${what} must be a number`);
  return v;
}
function arr(fn: string, v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) fail(fn, `${what} must be an array`);
  return v;
}

/** Structural equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]));
}

/** How States.Format renders an argument: objects and arrays as AWS does (Java's `{k=v}` / `[a, b]`). */
function formatValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatValue).join(", ")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}=${formatValue(x)}`)
      .join(", ")}}`;
  return String(v);
}

const HASHES: Record<string, string> = {
  MD5: "md5",
  "SHA-1": "sha1",
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
};

const FUNCTIONS: Record<string, (args: unknown[], fn: string) => unknown> = {
  "States.Format": (args, fn) => {
    if (args.length < 1) fail(fn, "needs a template");
    const template = str(fn, args[0], "the template");
    let k = 1;
    let out = "";
    for (let i = 0; i < template.length; i++) {
      const c = template[i];
      if (c === "\\" && (template[i + 1] === "{" || template[i + 1] === "}")) {
        out += template[i + 1];
        i++;
      } else if (c === "{" && template[i + 1] === "}") {
        if (k >= args.length) fail(fn, "more placeholders than arguments");
        const v = args[k++];
        out += formatValue(v);
        i++;
      } else out += c;
    }
    if (k !== args.length) fail(fn, "more arguments than placeholders");
    return out;
  },
  "States.StringToJson": (args, fn) => {
    arity(fn, args, 1);
    const s = str(fn, args[0], "the argument");
    if (s.trim().length === 0) return null;
    try {
      return JSON.parse(s);
    } catch {
      return fail(fn, "the argument is not valid JSON");
    }
  },
  "States.JsonToString": (args, fn) => {
    arity(fn, args, 1);
    return JSON.stringify(args[0]);
  },
  "States.Array": (args) => [...args],
  "States.ArrayPartition": (args, fn) => {
    arity(fn, args, 2);
    const a = arr(fn, args[0], "the first argument");
    const n = int(fn, args[1], "the chunk size");
    if (n <= 0) fail(fn, "the chunk size must be positive");
    const out: unknown[][] = [];
    for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
    return out;
  },
  "States.ArrayContains": (args, fn) => {
    arity(fn, args, 2);
    return arr(fn, args[0], "the first argument").some((x) => jsonEqual(x, args[1]));
  },
  "States.ArrayRange": (args, fn) => {
    arity(fn, args, 3);
    const [a, b, s] = [int(fn, args[0], "start"), int(fn, args[1], "end"), int(fn, args[2], "step")];
    if (s === 0) fail(fn, "step must not be 0");
    const out: number[] = [];
    for (let x = a; s > 0 ? x <= b : x >= b; x += s) {
      out.push(x);
      if (out.length > 1000) fail(fn, "the range has more than 1000 items");
    }
    return out;
  },
  "States.ArrayGetItem": (args, fn) => {
    arity(fn, args, 2);
    const a = arr(fn, args[0], "the first argument");
    const i = int(fn, args[1], "the index");
    if (i < 0 || i >= a.length) fail(fn, `index ${i} out of bounds`);
    return a[i];
  },
  "States.ArrayLength": (args, fn) => {
    arity(fn, args, 1);
    return arr(fn, args[0], "the argument").length;
  },
  "States.ArrayUnique": (args, fn) => {
    arity(fn, args, 1);
    const out: unknown[] = [];
    for (const x of arr(fn, args[0], "the argument")) if (!out.some((y) => jsonEqual(x, y))) out.push(x);
    return out;
  },
  "States.Base64Encode": (args, fn) => {
    arity(fn, args, 1);
    const s = str(fn, args[0], "the argument");
    if (s.length > 10_000) fail(fn, "the input exceeds 10,000 characters");
    return Buffer.from(s, "utf8").toString("base64");
  },
  "States.Base64Decode": (args, fn) => {
    arity(fn, args, 1);
    const s = str(fn, args[0], "the argument");
    if (s.length > 10_000) fail(fn, "the input exceeds 10,000 characters");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) fail(fn, "the argument is not base64");
    return Buffer.from(s, "base64").toString("utf8");
  },
  "States.Hash": (args, fn) => {
    arity(fn, args, 2);
    const algo = HASHES[str(fn, args[1], "the algorithm")];
    if (!algo) fail(fn, `the algorithm must be one of ${Object.keys(HASHES).join(", ")}`);
    const data = typeof args[0] === "string" ? args[0] : JSON.stringify(args[0]);
    if (data.length > 10_000) fail(fn, "the input exceeds 10,000 characters");
    return createHash(algo).update(data, "utf8").digest("hex");
  },
  "States.JsonMerge": (args, fn) => {
    arity(fn, args, 3);
    const [a, b, deep] = args;
    const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
    if (!isObj(a) || !isObj(b)) fail(fn, "both arguments must be objects");
    if (deep !== false) fail(fn, "only shallow merge (false) is supported");
    return { ...(a as object), ...(b as object) };
  },
  "States.MathRandom": (args, fn) => {
    arity(fn, args, 2, 3);
    const lo = int(fn, args[0], "start");
    const hi = int(fn, args[1], "end");
    if (hi <= lo) fail(fn, "end must be greater than start");
    if (args.length === 3) {
      // Deterministic for a seed, like a seeded generator: same seed, same number.
      const seed = int(fn, args[2], "seed");
      const h = createHash("sha256").update(String(seed)).digest();
      return lo + (h.readUInt32BE(0) % (hi - lo));
    }
    return randomInt(lo, hi);
  },
  "States.MathAdd": (args, fn) => {
    arity(fn, args, 2);
    // AWS rounds each operand to the nearest integer (half up) before adding.
    return (
      Math.round(num(fn, args[0], "the first argument")) + Math.round(num(fn, args[1], "the second argument"))
    );
  },
  "States.StringSplit": (args, fn) => {
    arity(fn, args, 2);
    const s = str(fn, args[0], "the string");
    const d = str(fn, args[1], "the delimiter");
    const out: string[] = [];
    let cur = "";
    for (const c of s) {
      if (d.includes(c)) {
        if (cur) out.push(cur);
        cur = "";
      } else cur += c;
    }
    if (cur) out.push(cur);
    return out;
  },
  "States.UUID": (args, fn) => {
    arity(fn, args, 0);
    return randomUUID();
  },
};
