/** An ASL state as far as drawing it goes. */
interface AslState {
  Type?: string;
  Next?: string;
  Default?: string;
  End?: boolean;
  Choices?: Array<{ Next?: string }>;
  Catch?: Array<{ Next?: string }>;
}

/** An ASL definition as far as drawing it goes. */
export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
}

/** HTML-escape text for element content and attribute values. */
export const esc = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

function edgesOf(state: AslState): Array<{ to: string; kind: "next" | "choice" | "catch" }> {
  const out: Array<{ to: string; kind: "next" | "choice" | "catch" }> = [];
  if (state.Next) out.push({ to: state.Next, kind: "next" });
  for (const c of state.Choices ?? []) if (c.Next) out.push({ to: c.Next, kind: "choice" });
  if (state.Default) out.push({ to: state.Default, kind: "choice" });
  for (const c of state.Catch ?? []) if (c.Next) out.push({ to: c.Next, kind: "catch" });
  return out;
}

/**
 * Draw a state machine as an SVG graph: states in layers by their distance from StartAt, edges
 * for Next, Choices, Default and Catch; visited states filled, the current one outlined, states
 * where a failure happened marked. Each state is a `<g data-state=… data-visited=… data-current=…>`.
 */
export function renderGraph(
  definition: AslDefinition,
  marks: { visited: ReadonlySet<string>; current?: string | undefined; failedIn?: ReadonlySet<string> },
): string {
  const depth = new Map<string, number>([[definition.StartAt, 0]]);
  const queue = [definition.StartAt];
  while (queue.length > 0) {
    const name = queue.shift() as string;
    for (const e of edgesOf(definition.States[name] ?? {})) {
      if (!depth.has(e.to) && definition.States[e.to]) {
        depth.set(e.to, (depth.get(name) ?? 0) + 1);
        queue.push(e.to);
      }
    }
  }
  for (const name of Object.keys(definition.States)) if (!depth.has(name)) depth.set(name, depth.size);
  const layers: string[][] = [];
  for (const [name, d] of depth) {
    const layer = layers[d] ?? [];
    layer.push(name);
    layers[d] = layer;
  }
  const W = 176;
  const H = 34;
  const GX = 24;
  const GY = 40;
  const width = Math.max(...layers.map((l) => l?.length ?? 0)) * (W + GX) + GX;
  const pos = new Map<string, { x: number; y: number }>();
  for (const [d, layer] of layers.entries()) {
    const row = layer ?? [];
    const offset = (width - row.length * (W + GX) + GX) / 2;
    for (const [i, name] of row.entries())
      pos.set(name, { x: offset + i * (W + GX), y: GY / 2 + d * (H + GY) });
  }
  const height = layers.length * (H + GY) + GY / 2;
  const lines: string[] = [];
  for (const [name, state] of Object.entries(definition.States)) {
    const a = pos.get(name);
    if (!a) continue;
    for (const e of edgesOf(state)) {
      const b = pos.get(e.to);
      if (!b) continue;
      const cls = `edge edge-${e.kind}`;
      if (b.y > a.y) {
        lines.push(
          `<line class="${cls}" x1="${a.x + W / 2}" y1="${a.y + H}" x2="${b.x + W / 2}" y2="${b.y}" marker-end="url(#arrow)"/>`,
        );
      } else {
        // A way back up (retry loops): a curve along the side, so it does not cross the layers.
        const sx = a.x + W;
        const ex = b.x + W;
        const bulge = Math.max(sx, ex) + 40;
        lines.push(
          `<path class="${cls} edge-back" d="M ${sx} ${a.y + H / 2} C ${bulge} ${a.y + H / 2}, ${bulge} ${b.y + H / 2}, ${ex} ${b.y + H / 2}" fill="none" marker-end="url(#arrow)"/>`,
        );
      }
    }
  }
  const nodes = Object.entries(definition.States).map(([name, state]) => {
    const p = pos.get(name) ?? { x: 0, y: 0 };
    const visited = marks.visited.has(name);
    const current = marks.current === name;
    const failed = marks.failedIn?.has(name) ?? false;
    const cls = [
      "state",
      `type-${(state.Type ?? "").toLowerCase()}`,
      visited ? "visited" : "",
      current ? "current" : "",
      failed ? "failed" : "",
    ]
      .filter(Boolean)
      .join(" ");
    return `<g class="${cls}" data-state="${esc(name)}" data-visited="${visited}" data-current="${current}"><rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="8"/><text x="${p.x + W / 2}" y="${p.y + H / 2 + 5}" text-anchor="middle">${esc(name)}</text><title>${esc(`${name} (${state.Type ?? "?"})`)}</title></g>`;
  });
  return `<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width + 80} ${height}" width="${width + 80}" height="${height}" role="img" aria-label="state machine">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>
${lines.join("\n")}
${nodes.join("\n")}
</svg>`;
}
