// The quality-vs-size chart as an SVG string (no browser, no dependency): KLD on a log scale (or
// PPL, linear) against bits per weight, one point per row, the Pareto front as a line, and labels
// placed greedily where they overlap nothing already drawn.
import type { BenchRow, QualityMetric } from "./report.js";

export interface ChartOptions {
  metric?: QualityMetric;
  title?: string;
  width?: number;
  height?: number;
}

const FONT = 11;
const CHAR_W = 6.4; // average glyph width of an 11px sans-serif, for label boxes
const MARGIN = { left: 70, right: 24, top: 36, bottom: 48 };

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

function n(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

interface Axis {
  toPx: (v: number) => number;
  ticks: { value: number; label: string }[];
}

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

function linearAxis(min: number, max: number, px0: number, px1: number, target: number, digits?: number): Axis {
  if (min === max) [min, max] = [min - 1, max + 1];
  const step = niceStep(max - min, target);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const dec = digits ?? Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push({ value: v, label: v.toFixed(dec) });
  return { toPx: (v) => px0 + ((v - lo) / (hi - lo)) * (px1 - px0), ticks };
}

function logAxis(min: number, max: number, px0: number, px1: number): Axis {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const ticks = [];
  for (let e = lo; e <= hi; e++) ticks.push({ value: 10 ** e, label: `1e${e}` });
  return { toPx: (v) => px0 + ((Math.log10(v) - lo) / (hi - lo)) * (px1 - px0), ticks };
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Label boxes around a point, in order of preference: right, left, above, below, then diagonals. */
function candidateBoxes(px: number, py: number, w: number, h: number): Box[] {
  const d = 6;
  return [
    { x: px + d, y: py - h / 2, w, h },
    { x: px - d - w, y: py - h / 2, w, h },
    { x: px - w / 2, y: py - d - h, w, h },
    { x: px - w / 2, y: py + d, w, h },
    { x: px + d, y: py - d - h, w, h },
    { x: px + d, y: py + d, w, h },
    { x: px - d - w, y: py - d - h, w, h },
    { x: px - d - w, y: py + d, w, h },
    { x: px + d, y: py - 2 * h, w, h },
    { x: px + d, y: py + h, w, h },
    { x: px - d - w, y: py - 2 * h, w, h },
    { x: px - d - w, y: py + h, w, h },
  ];
}

/** SVG chart of the rows; a row whose metric can't be plotted (KLD ≤ 0 on a log axis) is still listed, off-chart. */
export function renderChart(rows: readonly BenchRow[], opts: ChartOptions = {}): string {
  const metric = opts.metric ?? "kld";
  const width = opts.width ?? 760;
  const height = opts.height ?? 480;
  const plot = { x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
  const plottable = rows.filter((r) => Number.isFinite(r[metric]) && (metric === "ppl" || r[metric] > 0) && Number.isFinite(r.bpw));
  const xs = plottable.map((r) => r.bpw);
  const ys = plottable.map((r) => r[metric]);
  const xAxis = linearAxis(Math.min(...xs, 2), Math.max(...xs, 3), plot.x0, plot.x1, 8, 1);
  const yAxis =
    metric === "kld"
      ? logAxis(Math.min(...ys, 1e-4), Math.max(...ys, 1e-3), plot.y0, plot.y1)
      : linearAxis(Math.min(...ys), Math.max(...ys), plot.y0, plot.y1, 6);
  const yName = metric === "kld" ? "mean KL-divergence vs base (log scale)" : "perplexity";

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="${FONT}">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (opts.title) out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(opts.title)}</text>`);
  out.push(`<g class="grid" stroke="#e4e4e4" stroke-width="1">`);
  for (const t of xAxis.ticks) out.push(`<line x1="${n(xAxis.toPx(t.value))}" y1="${plot.y0}" x2="${n(xAxis.toPx(t.value))}" y2="${plot.y1}"/>`);
  for (const t of yAxis.ticks) out.push(`<line x1="${plot.x0}" y1="${n(yAxis.toPx(t.value))}" x2="${plot.x1}" y2="${n(yAxis.toPx(t.value))}"/>`);
  out.push(`</g>`);
  out.push(`<g class="axes" fill="#333333">`);
  out.push(`<rect x="${plot.x0}" y="${plot.y1}" width="${plot.x1 - plot.x0}" height="${plot.y0 - plot.y1}" fill="none" stroke="#888888"/>`);
  for (const t of xAxis.ticks) out.push(`<text x="${n(xAxis.toPx(t.value))}" y="${plot.y0 + 16}" text-anchor="middle">${escapeXml(t.label)}</text>`);
  for (const t of yAxis.ticks) out.push(`<text x="${plot.x0 - 6}" y="${n(yAxis.toPx(t.value) + 4)}" text-anchor="end">${escapeXml(t.label)}</text>`);
  out.push(`<text x="${(plot.x0 + plot.x1) / 2}" y="${height - 10}" text-anchor="middle">bits per weight</text>`);
  out.push(`<text x="16" y="${(plot.y0 + plot.y1) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(plot.y0 + plot.y1) / 2})">${escapeXml(yName)}</text>`);
  out.push(`</g>`);

  const at = (r: BenchRow) => ({ x: xAxis.toPx(r.bpw), y: yAxis.toPx(r[metric]) });
  const front = plottable.filter((r) => r.pareto).sort((a, b) => a.bpw - b.bpw);
  if (front.length > 1) {
    const pts = front.map((r) => `${n(at(r).x)},${n(at(r).y)}`).join(" ");
    out.push(`<polyline class="pareto-front" points="${pts}" fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 3"/>`);
  }

  // points first (so labels avoid them), then labels placed greedily, Pareto rows first
  const taken: Box[] = plottable.map((r) => ({ x: at(r).x - 4, y: at(r).y - 4, w: 8, h: 8 }));
  out.push(`<g class="points">`);
  for (const r of plottable) {
    const { x, y } = at(r);
    const fill = r.pareto ? "#d62728" : r.producer === "hquant" ? "#2ca02c" : "#1f77b4";
    out.push(`<circle class="point" cx="${n(x)}" cy="${n(y)}" r="4" fill="${fill}"><title>${escapeXml(`${r.label}: ${r.bpw.toFixed(2)} bpw, ${metric} ${r[metric]}`)}</title></circle>`);
  }
  out.push(`</g>`);
  out.push(`<g class="labels" fill="#222222">`);
  const inside = (b: Box) => b.x >= plot.x0 + 2 && b.x + b.w <= plot.x1 - 2 && b.y >= plot.y1 + 2 && b.y + b.h <= plot.y0 - 2;
  const order = [...plottable].sort((a, b) => Number(b.pareto ?? false) - Number(a.pareto ?? false) || a.bpw - b.bpw);
  for (const r of order) {
    const { x, y } = at(r);
    const w = r.label.length * CHAR_W + 2;
    const h = FONT + 2;
    let best: Box | undefined;
    let bestCost = Infinity;
    for (const c of candidateBoxes(x, y, w, h)) {
      const cost = taken.reduce((s, t) => s + overlap(c, t), 0) + (inside(c) ? 0 : 1e6);
      if (cost < bestCost) [best, bestCost] = [c, cost];
      if (cost === 0) break;
    }
    taken.push(best!);
    out.push(`<text class="label" x="${n(best!.x + 1)}" y="${n(best!.y + h - 3)}">${escapeXml(r.label)}</text>`);
  }
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
