/**
 * JSONPath as Step Functions evaluates it (Jayway semantics): a *definite* path (only names and
 * single indexes) selects one value or nothing; an *indefinite* path (wildcards, slices, filters,
 * unions, `..`) selects a list, possibly empty. Parsed paths are cached: definitions reuse them.
 */

type Filter = (node: unknown, root: unknown) => boolean;
type Segment =
  | { t: "names"; names: string[] }
  | { t: "indexes"; idx: number[] }
  | { t: "wild" }
  | { t: "slice"; start: number | undefined; end: number | undefined; step: number }
  | { t: "filter"; test: Filter }
  | { t: "desc"; inner: Segment };

/** A parsed path: its segments and whether it selects at most one value. */
export interface ParsedPath {
  text: string;
  segments: Segment[];
  definite: boolean;
}

/** A path that does not parse. */
export class JsonPathSyntaxError extends Error {
  override readonly name = "JsonPathSyntaxError";
}

const cache = new Map<string, ParsedPath>();

/** Parse `$…` (the leading `$` is required; `$$` paths are parsed after stripping one `$`). */
export function parsePath(text: string): ParsedPath {
  const hit = cache.get(text);
  if (hit) return hit;
  const parsed = new PathParser(text).parse();
  if (cache.size > 5000) cache.clear();
  cache.set(text, parsed);
  return parsed;
}

/** True when `text` parses as a JSONPath. */
export function isValidPath(text: string): boolean {
  try {
    parsePath(text);
    return true;
  } catch {
    return false;
  }
}

/** Result of evaluating a path: `found` is false only when a definite path selects nothing. */
export type PathResult = { found: true; value: unknown } | { found: false };

/** Evaluate `path` against `root`. Indefinite paths always answer `found` with an array. */
export function evaluatePath(path: string | ParsedPath, root: unknown): PathResult {
  const p = typeof path === "string" ? parsePath(path) : path;
  let nodes: unknown[] = [root];
  for (const seg of p.segments) {
    const next: unknown[] = [];
    for (const n of nodes) apply(seg, n, root, next);
    nodes = next;
    if (nodes.length === 0) break;
  }
  if (p.definite) return nodes.length === 0 ? { found: false } : { found: true, value: nodes[0] };
  return { found: true, value: nodes };
}

function apply(seg: Segment, node: unknown, root: unknown, out: unknown[]): void {
  switch (seg.t) {
    case "names":
      if (isObject(node)) {
        for (const name of seg.names) if (Object.hasOwn(node, name)) out.push(node[name]);
      }
      return;
    case "indexes":
      if (Array.isArray(node)) {
        for (const i of seg.idx) {
          const j = i < 0 ? node.length + i : i;
          if (j >= 0 && j < node.length) out.push(node[j]);
        }
      }
      return;
    case "wild":
      if (Array.isArray(node)) out.push(...node);
      else if (isObject(node)) out.push(...Object.values(node));
      return;
    case "slice": {
      if (!Array.isArray(node)) return;
      const len = node.length;
      const norm = (v: number) => (v < 0 ? Math.max(len + v, 0) : Math.min(v, len));
      const start = seg.start === undefined ? 0 : norm(seg.start);
      const end = seg.end === undefined ? len : norm(seg.end);
      for (let i = start; i < end; i += seg.step) out.push(node[i]);
      return;
    }
    case "filter":
      if (Array.isArray(node)) {
        for (const item of node) if (seg.test(item, root)) out.push(item);
      } else if (isObject(node) && seg.test(node, root)) out.push(node);
      return;
    case "desc": {
      const walk = (n: unknown) => {
        apply(seg.inner, n, root, out);
        if (Array.isArray(n)) for (const c of n) walk(c);
        else if (isObject(n)) for (const c of Object.values(n)) walk(c);
      };
      walk(node);
      return;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class PathParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): ParsedPath {
    const s = this.s;
    if (s[0] !== "$") throw new JsonPathSyntaxError(`path must start with '$': ${s}`);
    this.i = 1;
    const segments: Segment[] = [];
    let definite = true;
    while (this.i < s.length) {
      const c = s[this.i];
      let seg: Segment;
      if (c === "." && s[this.i + 1] === ".") {
        this.i += 2;
        const inner = s[this.i] === "[" ? this.bracket() : this.dotName();
        seg = { t: "desc", inner };
      } else if (c === ".") {
        this.i++;
        seg = this.dotName();
      } else if (c === "[") {
        seg = this.bracket();
      } else {
        throw new JsonPathSyntaxError(`unexpected '${c}' at position ${this.i} in ${s}`);
      }
      if (seg.t !== "names" && seg.t !== "indexes") definite = false;
      else if ((seg.t === "names" ? seg.names : seg.idx).length > 1) definite = false;
      segments.push(seg);
    }
    return { text: s, segments, definite };
  }

  private dotName(): Segment {
    const s = this.s;
    if (s[this.i] === "*") {
      this.i++;
      return { t: "wild" };
    }
    const start = this.i;
    while (this.i < s.length && s[this.i] !== "." && s[this.i] !== "[") this.i++;
    const name = s.slice(start, this.i);
    if (name.length === 0) throw new JsonPathSyntaxError(`empty name at position ${start} in ${s}`);
    if (name.includes("]"))
      throw new JsonPathSyntaxError(`unexpected ']' in name at position ${start} in ${s}`);
    return { t: "names", names: [name] };
  }

  private bracket(): Segment {
    const s = this.s;
    this.i++; // [
    this.ws();
    let seg: Segment;
    if (s[this.i] === "*") {
      this.i++;
      seg = { t: "wild" };
    } else if (s[this.i] === "?") {
      this.i++;
      this.ws();
      if (s[this.i] !== "(") throw new JsonPathSyntaxError(`expected '(' after '?' in ${s}`);
      const end = matchParen(s, this.i);
      const test = parseFilter(s.slice(this.i + 1, end));
      this.i = end + 1;
      seg = { t: "filter", test };
    } else if (s[this.i] === "'" || s[this.i] === '"') {
      const names: string[] = [];
      for (;;) {
        names.push(this.quoted());
        this.ws();
        if (s[this.i] !== ",") break;
        this.i++;
        this.ws();
      }
      seg = { t: "names", names };
    } else {
      const close = s.indexOf("]", this.i);
      if (close < 0) throw new JsonPathSyntaxError(`unclosed '[' in ${s}`);
      const body = s.slice(this.i, close).trim();
      this.i = close;
      if (body.includes(":")) {
        const parts = body.split(":").map((x) => x.trim());
        const num = (x: string | undefined) => (x === undefined || x === "" ? undefined : toInt(x, s));
        seg = { t: "slice", start: num(parts[0]), end: num(parts[1]), step: num(parts[2]) ?? 1 };
        if (seg.step <= 0) throw new JsonPathSyntaxError(`slice step must be positive in ${s}`);
      } else {
        seg = { t: "indexes", idx: body.split(",").map((x) => toInt(x.trim(), s)) };
      }
    }
    this.ws();
    if (s[this.i] !== "]") throw new JsonPathSyntaxError(`expected ']' at position ${this.i} in ${s}`);
    this.i++;
    return seg;
  }

  private quoted(): string {
    const s = this.s;
    const q = s[this.i];
    let out = "";
    this.i++;
    while (this.i < s.length && s[this.i] !== q) {
      // A backslash escapes only the quote itself (or another backslash); otherwise it is literal.
      if (s[this.i] === "\\" && (s[this.i + 1] === q || s[this.i + 1] === "\\")) this.i++;
      out += s[this.i];
      this.i++;
    }
    if (s[this.i] !== q) throw new JsonPathSyntaxError(`unclosed quote in ${s}`);
    this.i++;
    return out;
  }

  private ws(): void {
    while (this.s[this.i] === " ") this.i++;
  }
}

function toInt(x: string, s: string): number {
  if (!/^-?\d+$/.test(x)) throw new JsonPathSyntaxError(`bad index '${x}' in ${s}`);
  return Number(x);
}

function matchParen(s: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "(") depth++;
    else if (c === ")") {
      depth--;
      if (depth === 0) return i;
    }
  }
  throw new JsonPathSyntaxError(`unbalanced parentheses in ${s}`);
}

// ---- filter expressions: @.a < 3 && (@.b == 'x' || !@.c) ----

type Operand = (node: unknown, root: unknown) => { ok: boolean; v?: unknown };

function parseFilter(src: string): Filter {
  const toks = tokenizeFilter(src);
  let p = 0;
  const peek = () => toks[p];
  const fail = (): never => {
    throw new JsonPathSyntaxError(`bad filter expression: ${src}`);
  };
  const or = (): Filter => {
    let left = and();
    while (peek() === "||") {
      p++;
      const l = left;
      const r = and();
      left = (n, root) => l(n, root) || r(n, root);
    }
    return left;
  };
  const and = (): Filter => {
    let left = unary();
    while (peek() === "&&") {
      p++;
      const l = left;
      const r = unary();
      left = (n, root) => l(n, root) && r(n, root);
    }
    return left;
  };
  const unary = (): Filter => {
    if (peek() === "!") {
      p++;
      const inner = unary();
      return (n, root) => !inner(n, root);
    }
    if (peek() === "(") {
      p++;
      const inner = or();
      if (toks[p++] !== ")") fail();
      return inner;
    }
    const left = operand();
    const op = peek();
    if (op && ["==", "!=", "<", "<=", ">", ">=", "=~"].includes(op)) {
      p++;
      const right = operand();
      return (n, root) => {
        const a = left(n, root);
        const b = right(n, root);
        if (!a.ok || !b.ok) return op === "!=" && a.ok !== b.ok;
        return compare(op, a.v, b.v);
      };
    }
    return (n, root) => {
      const a = left(n, root);
      return a.ok && a.v !== false && a.v !== null;
    };
  };
  const operand = (): Operand => {
    const t = toks[p++];
    if (t === undefined) return fail();
    if (t.startsWith("@") || t.startsWith("$")) {
      const parsed = parsePath(`$${t.slice(1)}`);
      const fromRoot = t.startsWith("$");
      return (n, root) => {
        const r = evaluatePath(parsed, fromRoot ? root : n);
        return r.found ? { ok: true, v: r.value } : { ok: false };
      };
    }
    const lit = literal(t);
    return () => ({ ok: true, v: lit });
  };
  const f = or();
  if (p !== toks.length) fail();
  return f;
}

function literal(t: string): unknown {
  if (t.startsWith("'") || t.startsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, "$1");
  if (t.startsWith("/")) return new RegExp(t.slice(1, t.lastIndexOf("/")), t.slice(t.lastIndexOf("/") + 1));
  if (t === "true") return true;
  if (t === "false") return false;
  if (t === "null") return null;
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t)) return Number(t);
  throw new JsonPathSyntaxError(`bad literal in filter: ${t}`);
}

function compare(op: string, a: unknown, b: unknown): boolean {
  if (op === "=~") return b instanceof RegExp && typeof a === "string" && b.test(a);
  if (op === "==") return JSON.stringify(a) === JSON.stringify(b);
  if (op === "!=") return JSON.stringify(a) !== JSON.stringify(b);
  const bothNum = typeof a === "number" && typeof b === "number";
  const bothStr = typeof a === "string" && typeof b === "string";
  if (!bothNum && !bothStr) return false;
  const x = a as number | string;
  const y = b as number | string;
  if (op === "<") return x < y;
  if (op === "<=") return x <= y;
  if (op === ">") return x > y;
  return x >= y;
}

function tokenizeFilter(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === " ") {
      i++;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === "@" || c === "$") {
      let j = i + 1;
      let depth = 0;
      while (j < src.length) {
        const d = src[j] as string;
        if (d === "[") depth++;
        else if (d === "]") depth--;
        else if (depth === 0 && /[\s=!<>&|)]/.test(d)) break;
        j++;
      }
      out.push(src.slice(i, j));
      i = j;
    } else if (c === "/" && out.length > 0 && out[out.length - 1] === "=~") {
      let j = i + 1;
      while (j < src.length && src[j] !== "/") j += src[j] === "\\" ? 2 : 1;
      j++;
      while (j < src.length && /[a-z]/.test(src[j] as string)) j++;
      out.push(src.slice(i, j));
      i = j;
    } else {
      const two = src.slice(i, i + 2);
      if (["==", "!=", "<=", ">=", "&&", "||", "=~"].includes(two)) {
        out.push(two);
        i += 2;
      } else if ("<>!()".includes(c)) {
        out.push(c);
        i++;
      } else {
        let j = i;
        while (j < src.length && !/[\s=!<>&|()]/.test(src[j] as string)) j++;
        if (j === i) throw new JsonPathSyntaxError(`bad filter expression: ${src}`);
        out.push(src.slice(i, j));
        i = j;
      }
    }
  }
  return out;
}

/** A reference path (ResultPath and friends): only names and single indexes, e.g. `$.a['b'][0]`. */
export function isReferencePath(text: string): boolean {
  try {
    return parsePath(text).definite;
  } catch {
    return false;
  }
}

/**
 * Return a copy of `root` with the value at reference path `path` set to `value`, creating
 * objects along the way. Throws when the path runs through a scalar or an array index beyond the end.
 */
export function setAtPath(root: unknown, path: string, value: unknown): unknown {
  const p = parsePath(path);
  if (!p.definite) throw new JsonPathSyntaxError(`not a reference path: ${path}`);
  if (p.segments.length === 0) return value;
  const put = (node: unknown, k: number): unknown => {
    const seg = p.segments[k] as Segment;
    const last = k === p.segments.length - 1;
    if (seg.t === "names") {
      const name = seg.names[0] as string;
      const obj: Record<string, unknown> =
        node === undefined || node === null ? {} : isObject(node) ? { ...node } : fail(node);
      obj[name] = last ? value : put(obj[name], k + 1);
      return obj;
    }
    if (seg.t === "indexes" && Array.isArray(node)) {
      const idx = seg.idx[0] as number;
      const j = idx < 0 ? node.length + idx : idx;
      if (j < 0 || j >= node.length) return fail(node);
      const arr = [...node];
      arr[j] = last ? value : put(arr[j], k + 1);
      return arr;
    }
    return fail(node);
  };
  const fail = (_node: unknown): never => {
    throw new JsonPathSyntaxError(`cannot set ${path}`);
  };
  return put(root, 0);
}
