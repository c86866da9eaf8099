// The quality-vs-size chart as an SVG string (no browser, no dependency): KLD on a log scale (or
// PPL, linear) against bits per weight, one point per row, the Pareto front as a line, and labels
// placed greedily where they overlap nothing already drawn. Colour tells llama.cpp's standard file
// types from hquant's hybrid presets, a hollow point means built with an imatrix; a legend says so.
import type { BenchRow, QualityMetric } from "./report.js";

export interface ChartOptions {
  metric?: QualityMetric;
  title?: string;
  width?: number;
  height?: number;
}

const FONT = 11;
const CHAR_W = 7; // average glyph width of an 11px sans-serif (DejaVu Sans: capitals, digits, "_"), for label boxes
const MARGIN = { left: 70, right: 24, top: 36, bottom: 48 };
const COLOURS = { standard: "#1f77b4", hybrid: "#e6730e", front: "#d62728" };
/** label text colours: darker shades of the point colours, readable on white */
const LABEL_COLOURS = { standard: "#174a7c", hybrid: "#a04d00" };
const POINT_R = 4;

/** A hybrid preset: built from an hquant preset that is not just a llama.cpp file type. */
function isHybrid(r: BenchRow): boolean {
  return r.preset !== undefined && r.preset !== r.ftype;
}

/** Marker style: colour by kind, hollow when an imatrix was used. */
function markerAttrs(r: BenchRow): string {
  const colour = isHybrid(r) ? COLOURS.hybrid : COLOURS.standard;
  return r.imatrix ? `fill="#ffffff" stroke="${colour}" stroke-width="2"` : `fill="${colour}" stroke="${colour}" stroke-width="1"`;
}

/** A circle drawn as a path, so legend swatches are not counted as points. */
function circlePath(x: number, y: number, r: number): string {
  return `M${n(x - r)},${n(y)} a${r},${r} 0 1,0 ${2 * r},0 a${r},${r} 0 1,0 ${-2 * r},0`;
}

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

/** Log axis from the 1-2-5 value at or below `min` to the one at or above `max`, ticks at 1, 2, 5 × 10^k. */
function logAxis(min: number, max: number, px0: number, px1: number): Axis {
  const steps: number[] = [];
  for (let e = Math.floor(Math.log10(min)) - 1; e <= Math.ceil(Math.log10(max)) + 1; e++) for (const m of [1, 2, 5]) steps.push(m * 10 ** e);
  const lo = Math.log10(steps.filter((v) => v <= min * (1 + 1e-9)).at(-1)!);
  const hi = Math.log10(steps.find((v) => v >= max * (1 - 1e-9))!);
  const span = Math.max(hi - lo, 1e-9);
  const ticks = steps
    .filter((v) => Math.log10(v) >= lo - 1e-9 && Math.log10(v) <= hi + 1e-9)
    .map((v) => ({ value: v, label: v.toExponential(0).replace("e+", "e") }));
  return { toPx: (v) => px0 + ((Math.log10(v) - lo) / span) * (px1 - px0), ticks };
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * Label boxes around a point, in order of preference: right, left, above, below, the diagonals,
 * then the same further out (those get a leader line), so that crowded points still find room.
 */
function candidateBoxes(px: number, py: number, w: number, h: number): Box[] {
  const boxes: Box[] = [];
  for (const d of [6, 16, 28, 42, 58]) {
    boxes.push(
      { x: px + d, y: py - h / 2, w, h },
      { x: px - d - w, y: py - h / 2, w, h },
      { x: px - w / 2, y: py - d - h, w, h },
      { x: px - w / 2, y: py + d, w, h },
      { x: px + d, y: py - d - h, w, h },
      { x: px + d, y: py + d, w, h },
      { x: px - d - w, y: py - d - h, w, h },
      { x: px - d - w, y: py + d, w, h },
    );
  }
  return boxes;
}

/** The point of box `b` nearest to (x, y): where a leader line ends. */
function nearestOnBox(b: Box, x: number, y: number): { x: number; y: number } {
  return { x: Math.min(Math.max(x, b.x), b.x + b.w), y: Math.min(Math.max(y, b.y), b.y + b.h) };
}

interface LegendEntry {
  text: string;
  swatch: (cx: number, cy: number) => string;
}

/** Legend lines for what the rows contain (a kind absent from the chart is not listed). */
function legendEntries(rows: readonly BenchRow[], hasFront: boolean): LegendEntry[] {
  const dot = (attrs: string) => (cx: number, cy: number) => `<path d="${circlePath(cx, cy, POINT_R)}" ${attrs}/>`;
  const entries: LegendEntry[] = [];
  const hybrid = rows.some(isHybrid);
  if (rows.some((r) => !isHybrid(r))) entries.push({ text: "llama.cpp file type", swatch: dot(`fill="${COLOURS.standard}"`) });
  if (hybrid) entries.push({ text: "hquant hybrid preset", swatch: dot(`fill="${COLOURS.hybrid}"`) });
  if (rows.some((r) => r.imatrix)) entries.push({ text: "hollow: with imatrix", swatch: dot(`fill="#ffffff" stroke="#555555" stroke-width="2"`) });
  if (hasFront) {
    entries.push({
      text: "Pareto front",
      swatch: (cx, cy) => `<line x1="${n(cx - 9)}" y1="${n(cy)}" x2="${n(cx + 9)}" y2="${n(cy)}" stroke="${COLOURS.front}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
    });
  }
  return entries;
}

/** SVG chart of the rows; a row whose metric can't be plotted (KLD ≤ 0 on a log axis) is still listed, off-chart. */
export function renderChart(rows: readonly BenchRow[], opts: ChartOptions = {}): string {
  const metric = opts.metric ?? "kld";
  const width = opts.width ?? 1100;
  const height = opts.height ?? 760;
  const plot = { x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
  const plottable = rows.filter((r) => Number.isFinite(r[metric]) && (metric === "ppl" || r[metric] > 0) && Number.isFinite(r.bpw));
  const xs = plottable.map((r) => r.bpw);
  const ys = plottable.map((r) => r[metric]);
  const xAxis = linearAxis(Math.min(...xs) - 0.25, Math.max(...xs) + 0.25, plot.x0, plot.x1, 8, 1);
  const yAxis =
    metric === "kld"
      ? logAxis(Math.min(...ys), Math.max(...ys), plot.y0, plot.y1)
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
    out.push(`<polyline class="pareto-front" points="${pts}" fill="none" stroke="${COLOURS.front}" stroke-width="1.5" stroke-dasharray="5 3"/>`);
  }

  // points and legend first (so labels avoid them), then labels placed greedily, Pareto rows first
  const taken: Box[] = plottable.map((r) => ({ x: at(r).x - POINT_R, y: at(r).y - POINT_R, w: 2 * POINT_R, h: 2 * POINT_R }));
  out.push(`<g class="points">`);
  for (const r of plottable) {
    const { x, y } = at(r);
    out.push(`<circle class="point" cx="${n(x)}" cy="${n(y)}" r="${POINT_R}" ${markerAttrs(r)}><title>${escapeXml(`${r.label}: ${r.bpw.toFixed(2)} bpw, ${metric} ${r[metric]}`)}</title></circle>`);
  }
  out.push(`</g>`);
  const legend = legendEntries(rows, front.length > 1);
  if (legend.length > 0) {
    // top right: the corner a quality-vs-size front leaves empty (large and bad)
    const w = Math.max(...legend.map((e) => e.text.length)) * CHAR_W + 34;
    const h = legend.length * 16 + 8;
    const box = { x: plot.x1 - w - 8, y: plot.y1 + 8, w, h };
    taken.push(box);
    out.push(`<g class="legend">`);
    out.push(`<rect x="${n(box.x)}" y="${n(box.y)}" width="${n(w)}" height="${h}" fill="#ffffff" fill-opacity="0.9" stroke="#bbbbbb"/>`);
    legend.forEach((e, i) => {
      const cy = box.y + 12 + i * 16;
      const cx = box.x + 14;
      out.push(e.swatch(cx, cy));
      out.push(`<text x="${n(cx + 14)}" y="${n(cy + 4)}">${escapeXml(e.text)}</text>`);
    });
    out.push(`</g>`);
  }
  const inside = (b: Box) => b.x >= plot.x0 + 2 && b.x + b.w <= plot.x1 - 2 && b.y >= plot.y1 + 2 && b.y + b.h <= plot.y0 - 2;
  const order = [...plottable].sort((a, b) => Number(b.pareto ?? false) - Number(a.pareto ?? false) || a.bpw - b.bpw);
  const labels: string[] = [];
  const leaders: string[] = [];
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
    const end = nearestOnBox(best!, x, y);
    const dist = Math.hypot(end.x - x, end.y - y);
    if (dist > 10) {
      const k = (POINT_R + 1) / dist; // start at the point's edge
      leaders.push(`<line x1="${n(x + (end.x - x) * k)}" y1="${n(y + (end.y - y) * k)}" x2="${n(end.x)}" y2="${n(end.y)}"/>`);
    }
    const colour = isHybrid(r) ? LABEL_COLOURS.hybrid : LABEL_COLOURS.standard;
    labels.push(`<text class="label" x="${n(best!.x + 1)}" y="${n(best!.y + h - 3)}" fill="${colour}">${escapeXml(r.label)}</text>`);
  }
  out.push(`<g class="leaders" stroke="#999999" stroke-width="0.8">`, ...leaders, `</g>`);
  out.push(`<g class="labels" fill="#222222">`, ...labels, `</g>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
