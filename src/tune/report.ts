// The tune report: markdown (the tuned files beside the standard ones, the acceptance checks,
// timings) and SVG charts in the bench chart's style: KLD against size with the standard file
// types and presets beside the tuned points, the sensitivity heatmap (layer × tensor kind), the
// chosen types as a grid, predicted against measured KLD.
import { runtimeLine } from "../runtime/index.js";
import path from "node:path";
import { escapeXml, renderChart } from "../eval/chart.js";
import { markdownTable, markPareto, type BaseLine, type BenchRow } from "../eval/report.js";
import { writeFileAtomic } from "../eval/run.js";
import type { TuneResult, TunedBudget } from "./index.js";
import { typeName } from "../gguf/ggml-types.js";

/** One bench row per tuned budget (its evaluation on the evaluation text). */
export function tunedRows(r: TuneResult): BenchRow[] {
  return r.budgets.filter((b) => b.eval).map((b) => ({
    label: `tuned ${b.budget.text}`,
    file: b.gguf ?? b.scheduleFile,
    bytes: b.chosen.fileBytes,
    bpw: b.chosen.bpw,
    ppl: b.eval!.ppl,
    pplErr: b.eval!.pplErr,
    kld: b.eval!.kld,
    kld99: b.eval!.kld99,
    kldMax: b.eval!.kldMax,
    topTokenPct: b.eval!.topTokenPct,
    ftype: b.schedule.ftype ?? "",
    preset: `tune-${b.budget.text}`,
    imatrix: r.imatrix !== undefined,
    producer: "hquant tune",
  }));
}

const isStandardType = (r: BenchRow) => r.preset === undefined;

/** log-KLD of the standard file types' Pareto front, interpolated linearly in size. */
export function standardCurve(standard: readonly BenchRow[], bytes: number): number {
  const front = markPareto(standard.filter(isStandardType)).filter((r) => r.pareto).sort((a, b) => a.bytes - b.bytes);
  if (front.length === 0) return NaN;
  if (bytes <= front[0]!.bytes) return front[0]!.kld;
  for (let i = 1; i < front.length; i++) {
    const a = front[i - 1]!;
    const b = front[i]!;
    if (bytes <= b.bytes) return Math.exp(Math.log(a.kld) + ((Math.log(b.kld) - Math.log(a.kld)) * (bytes - a.bytes)) / (b.bytes - a.bytes));
  }
  return front[front.length - 1]!.kld;
}

export interface BudgetCheck {
  budget: string;
  bytes: number;
  kld: number;
  /** standard files / presets not larger than the tuned file with lower or equal KLD (must be none) */
  beatenBy: string[];
  /** the standard types' curve at this size, and the tuned file's KLD below it (fraction) */
  curveKld: number;
  belowCurve: number;
}

export function acceptance(r: TuneResult, standard: readonly BenchRow[]): { required: boolean; checks: BudgetCheck[] } {
  const checks = tunedRows(r).map((t) => {
    const beatenBy = standard.filter((s) => s.bytes <= t.bytes && s.kld <= t.kld).map((s) => s.label);
    const curveKld = standardCurve(standard, t.bytes);
    return { budget: t.label.replace(/^tuned /, ""), bytes: t.bytes, kld: t.kld, beatenBy, curveKld, belowCurve: 1 - t.kld / curveKld };
  });
  return { required: checks.length > 0 && checks.every((c) => c.beatenBy.length === 0), checks };
}

const CATEGORIES = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
const TYPE_COLOURS: Record<string, string> = {
  iq1_s: "#1a0010", iq1_m: "#2d0016", iq2_xxs: "#40001a", iq2_xs: "#4f001c", iq2_s: "#5c001e", iq3_xxs: "#8a0c25", iq3_s: "#9e1228",
  q2_K: "#67001f", q3_K: "#b2182b", q4_0: "#d6604d", iq4_nl: "#e08060", iq4_xs: "#f4a582", q4_1: "#f7c8a8", q4_K: "#fddbc7",
  q5_0: "#e0e8f0", q5_1: "#d1e5f0", q5_K: "#92c5de", q6_K: "#4393c3", q8_0: "#2166ac", f16: "#053061",
};

function svgFrame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="13">${escapeXml(title)}</text>`,
    ...body,
    "</svg>\n",
  ].join("\n");
}

/** Layer × tensor kind grid: the chosen types of one budget (colour = type), extra tensors below. */
export function typesGrid(r: TuneResult, b: TunedBudget): string {
  const cell = 26;
  const colW = 84; // wide enough for "attn_output" at 11 px
  const left = 90;
  const top = 40;
  const rows = r.base.nLayer;
  const body: string[] = [];
  // the dense kinds first, then whatever else the layers hold (ffn_gate_exps, ffn_down_shexp …)
  const inLayers = [...new Set(Object.keys(b.types).filter((n) => n.startsWith("blk.")).map((n) => n.replace(/^blk\.\d+\./, "").replace(/\.weight$/, "")))];
  const columns = [...CATEGORIES.filter((c) => inLayers.includes(c)), ...inLayers.filter((c) => !CATEGORIES.includes(c))];
  columns.forEach((c, j) => body.push(`<text x="${left + j * colW + colW / 2}" y="${top - 6}" text-anchor="middle">${c}</text>`));
  for (let l = 0; l < rows; l++) {
    body.push(`<text x="${left - 8}" y="${top + l * cell + cell / 2 + 4}" text-anchor="end">blk.${l}</text>`);
    columns.forEach((c, j) => {
      const type = b.types[`blk.${l}.${c}.weight`];
      if (type === undefined) return;
      const x = left + j * colW;
      const y = top + l * cell;
      body.push(`<rect x="${x}" y="${y}" width="${colW - 2}" height="${cell - 2}" fill="${TYPE_COLOURS[type] ?? "#999999"}"/>`);
      body.push(`<text x="${x + colW / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${/iq[123]|q[23]_K|q4_0|q6_K|q8_0|f16/.test(type) ? "#ffffff" : "#000000"}">${type}</text>`);
    });
  }
  const extra = Object.entries(b.types).filter(([n]) => !n.startsWith("blk."));
  extra.forEach(([n, type], k) => {
    const y = top + rows * cell + 12 + k * cell;
    body.push(`<text x="${left - 8}" y="${y + cell / 2 + 4}" text-anchor="end">${escapeXml(n.replace(/\.weight$/, ""))}</text>`);
    body.push(`<rect x="${left}" y="${y}" width="${colW - 2}" height="${cell - 2}" fill="${TYPE_COLOURS[type] ?? "#999999"}"/>`);
    body.push(`<text x="${left + colW / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="#ffffff">${type}</text>`);
  });
  const height = top + rows * cell + 24 + extra.length * cell;
  return svgFrame(left + Math.max(1, columns.length) * colW + 20, height, `tuned types at ${b.budget.text} (${(b.chosen.fileBytes / 1048576).toFixed(2)} MiB, ${b.chosen.bpw.toFixed(2)} bpw)`, body);
}

/** Layer × group heatmap of the measured ΔKLD (log colour scale), at the first measured type. */
export function sensitivityHeatmap(r: TuneResult): string {
  const type = r.measurements[0]?.type;
  const cellW = 90;
  const cellH = 22;
  const left = 90;
  const top = 50;
  const kinds = ["attn", "ffn"];
  const value = (g: string) => r.measurements.find((m) => m.group === g && m.type === type)?.kld;
  const values = r.groups.map(value).filter((v): v is number => v !== undefined && v > 0);
  if (values.length === 0) values.push(1);
  const lo = Math.log10(Math.min(...values));
  const hi = Math.log10(Math.max(...values));
  const colour = (v: number) => {
    const f = hi > lo ? (Math.log10(Math.max(v, 1e-12)) - lo) / (hi - lo) : 1;
    const c = (a: number, b: number) => Math.round(a + (b - a) * Math.min(1, Math.max(0, f)));
    return `rgb(${c(255, 178)},${c(245, 24)},${c(235, 43)})`;
  };
  const body: string[] = [];
  kinds.forEach((k, j) => body.push(`<text x="${left + j * cellW + cellW / 2}" y="${top - 6}" text-anchor="middle">${k}</text>`));
  const cellAt = (g: string, x: number, y: number) => {
    const v = value(g);
    body.push(`<rect x="${x}" y="${y}" width="${cellW - 2}" height="${cellH - 2}" fill="${v !== undefined ? colour(v) : "#eeeeee"}"/>`);
    body.push(`<text x="${x + cellW / 2}" y="${y + cellH / 2 + 4}" text-anchor="middle">${v !== undefined ? v.toExponential(1) : ""}</text>`);
  };
  for (let l = 0; l < r.base.nLayer; l++) {
    body.push(`<text x="${left - 8}" y="${top + l * cellH + cellH / 2 + 4}" text-anchor="end">blk.${l}</text>`);
    kinds.forEach((k, j) => cellAt(`blk.${l}.${k}`, left + j * cellW, top + l * cellH));
  }
  const extra = r.groups.filter((g) => !g.startsWith("blk."));
  extra.forEach((g, k) => {
    const y = top + r.base.nLayer * cellH + 10 + k * cellH;
    body.push(`<text x="${left - 8}" y="${y + cellH / 2 + 4}" text-anchor="end">${escapeXml(g)}</text>`);
    cellAt(g, left, y);
  });
  return svgFrame(left + kinds.length * cellW + 30, top + (r.base.nLayer + extra.length) * cellH + 30, `measured ΔKLD, one group at ${type !== undefined ? typeName(type) : "?"}, rest at the base's precision`, body);
}

/** Predicted (additive model) against measured KLD on the calibration chunks, every verified candidate. */
export function predictedVsMeasured(r: TuneResult): string {
  const pts = r.budgets.flatMap((b) => b.candidates.filter((c) => c.calib).map((c) => ({ x: c.predictedKld, y: c.calib!.kld, label: `${b.budget.text} ${c.variant}`, chosen: c === b.chosen || (c.variant === b.chosen.variant && c.fileBytes === b.chosen.fileBytes) })));
  const W = 560;
  const H = 420;
  if (pts.length === 0) return svgFrame(W, 80, "predicted vs measured KLD: nothing measured (--no-verify)", []);
  const m = { l: 70, r: 20, t: 36, b: 48 };
  const all = pts.flatMap((p) => [p.x, p.y]).filter((v) => v > 0);
  const lo = Math.log10(Math.min(...all)) - 0.1;
  const hi = Math.log10(Math.max(...all)) + 0.1;
  const X = (v: number) => m.l + ((Math.log10(v) - lo) / (hi - lo)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((Math.log10(v) - lo) / (hi - lo)) * (H - m.t - m.b);
  const body: string[] = [
    `<line x1="${X(10 ** lo)}" y1="${Y(10 ** lo)}" x2="${X(10 ** hi)}" y2="${Y(10 ** hi)}" stroke="#999999" stroke-dasharray="4,3"/>`,
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333333"/>`,
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">predicted KLD (sum of per-tensor ΔKLD), log</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">measured KLD on the calibration chunks, log</text>`,
  ];
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    body.push(`<text x="${m.l - 6}" y="${Y(10 ** e) + 4}" text-anchor="end">1e${e}</text>`, `<text x="${X(10 ** e)}" y="${H - m.b + 16}" text-anchor="middle">1e${e}</text>`);
  }
  for (const p of pts) {
    body.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="4" fill="${p.chosen ? "#e6730e" : "#ffffff"}" stroke="#e6730e" stroke-width="2"/>`);
    body.push(`<text x="${X(p.x) + 7}" y="${Y(p.y) + 4}">${escapeXml(p.label)}</text>`);
  }
  return svgFrame(W, H, "predicted vs measured KLD (filled: chosen; dashed: equal)", body);
}

export interface ReportContext {
  standard?: readonly BenchRow[];
  proxy?: TuneResult;
  base?: BaseLine;
  chunks?: number;
  positions?: number;
}

const f = (v: number | undefined, d = 6) => (v === undefined || !Number.isFinite(v) ? "—" : v < 0.001 ? v.toExponential(2) : v.toFixed(d));

/** Writes tune.md and the SVG charts into `dir`; returns the markdown. */
export function writeTuneReport(dir: string, r: TuneResult, ctx: ReportContext = {}): string {
  const tuned = tunedRows(r);
  const proxyRows = ctx.proxy ? tunedRows(ctx.proxy).map((x) => ({ ...x, label: `proxy-tuned ${x.label.replace(/^tuned /, "")}`, preset: `proxy-${x.preset}` })) : [];
  const rows = markPareto([...(ctx.standard ?? []), ...tuned, ...proxyRows]);
  const lines: string[] = [];
  lines.push(`# hquant tune`, "");
  // --no-verify builds and evaluates nothing: no evaluation text, no table of measured files
  const evaluated = r.budgets.some((b) => b.eval !== undefined);
  const evaluation = evaluated ? `${r.evalText}${ctx.chunks ? ` (${ctx.chunks} chunks, ${ctx.positions} scored tokens)` : ""}` : "none (not verified: planned only)";
  lines.push(`base ${path.basename(r.base.file)}; method ${r.method}; objective ${r.objective}; calibration ${r.text} (${r.chunks} chunks of ${r.ctx}); evaluation ${evaluation}; imatrix ${r.imatrix ? path.basename(r.imatrix) : "none"}`, "");
  if (r.runtime) lines.push(runtimeLine(r.runtime), "");
  if (rows.length > 0) lines.push(markdownTable(rows, ctx.base), "");
  lines.push("| budget | limit | chosen model | file bytes | bpw | predicted KLD | calibration KLD | evaluation KLD | evaluation KLD p99 | same top % | candidates (calibration KLD) | decisions within noise |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
  for (const b of r.budgets) {
    const noise = b.noise ? `${b.noise.withinNoise} / ${b.noise.decisive}` : "—";
    lines.push(`| ${b.budget.text} | ${b.limit.label} | ${b.chosen.variant} | ${b.chosen.fileBytes} | ${b.chosen.bpw.toFixed(4)} | ${f(b.chosen.predictedKld)} | ${f(b.chosen.calib?.kld)} | ${f(b.eval?.kld)} | ${f(b.eval?.kld99)} | ${b.eval ? b.eval.topTokenPct.toFixed(2) : "—"} | ${b.candidates.map((c) => `${c.variant}: ${f(c.calib?.kld)}`).join("; ")} | ${noise} |`);
  }
  lines.push("");
  // the ± of every measured ΔKLD (one standard error over the scored tokens of the calibration chunks)
  const ms = r.measurements;
  if (ms.length > 0) {
    const rel = ms.map((m) => (m.kld > 0 ? m.kldErr / m.kld : Infinity)).sort((a, b) => a - b);
    lines.push(`Measurements — ${ms.length} ΔKLD, each ± one standard error; median relative ± ${(100 * rel[Math.floor(rel.length / 2)]!).toFixed(1)} %, largest ${(100 * rel[rel.length - 1]!).toFixed(1)} %. "decisions within noise": pairs of groups given different bits whose measured ΔKLD differ by less than their combined ±.`, "");
    lines.push("<details><summary>every measurement</summary>", "", "| unit | type | ΔKLD | ± | same top % |", "|---|---|---:|---:|---:|");
    for (const m of ms) lines.push(`| ${m.group} | ${typeName(m.type)} | ${f(m.kld)} | ${f(m.kldErr)} | ${m.topTokenPct.toFixed(2)} |`);
    lines.push("", "</details>", "");
  }
  if (ctx.standard) {
    const a = acceptance(r, ctx.standard);
    lines.push(`Required — each tuned file has lower mean KLD than every standard file type and preset not larger than it: **${a.required ? "met" : "not met"}**`, "");
    for (const c of a.checks) {
      lines.push(`- ${c.budget}: KLD ${f(c.kld)}; ${c.beatenBy.length ? `not better than ${c.beatenBy.join(", ")}` : "beats every standard file / preset not larger"}; standard types' curve at this size ${f(c.curveKld)} → ${(100 * c.belowCurve).toFixed(1)} % lower`);
    }
    const iq4 = a.checks.find((c) => c.budget.toUpperCase() === "IQ4_XS");
    const q4km = ctx.standard.filter((s) => s.label.startsWith("Q4_K_M"));
    if (iq4 && q4km.length) lines.push(`- goal at IQ4_XS's size: KLD ${f(iq4.kld)} vs Q4_K_M ${q4km.map((s) => `${s.label} ${f(s.kld)}`).join(", ")}`);
    lines.push("");
  }
  const measuredGroups = r.measurements.filter((m) => r.groups.includes(m.group)).length;
  if (Number.isFinite(r.proxySpearman)) lines.push(`Proxy (kind-scaled) vs measured ΔKLD over the ${measuredGroups} measured groups: Spearman ρ = ${r.proxySpearman.toFixed(3)}`, "");
  else lines.push(`Proxy vs measured ΔKLD: not compared (${measuredGroups} measured group${measuredGroups === 1 ? "" : "s"}; method ${r.method})`, "");
  const t = (x: TuneResult, name: string) => `${name}: total ${x.seconds.total.toFixed(0)} s (proxy errors ${x.seconds.proxy.toFixed(0)} s, measurements ${x.seconds.measure.toFixed(0)} s for ${x.measuredNow} made now of ${x.measurements.length}, allocation ${x.seconds.allocate.toFixed(1)} s, verification ${x.seconds.verify.toFixed(0)} s, evaluation ${x.seconds.evaluate.toFixed(0)} s)`;
  lines.push(`Timings — ${t(r, `${r.method} mode, ${r.budgets.length} budget(s)`)}${ctx.proxy ? `; ${t(ctx.proxy, "proxy mode, 1 budget")}` : ""}`, "");
  const md = lines.join("\n") + "\n";
  const files: [string, string][] = [
    [path.join(dir, "tune.md"), md],
    [path.join(dir, "tune.svg"), renderChart(rows, { metric: "kld", title: `tuned (orange) vs standard file types and presets — KLD vs F16 on ${r.evalText}` })],
    [path.join(dir, "sensitivity.svg"), sensitivityHeatmap(r)],
    [path.join(dir, "predicted-vs-measured.svg"), predictedVsMeasured(r)],
    ...r.budgets.map((b): [string, string] => [path.join(dir, `types-${b.budget.text}.svg`), typesGrid(r, b)]),
  ];
  for (const [file, data] of files) writeFileAtomic(file, data);
  return md;
}
