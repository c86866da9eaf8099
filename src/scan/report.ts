// What `hquant scan` prints and writes: a markdown table (least harmful edit first) and an SVG bar
// chart of the KL-divergence per layer, in layer order. Pure.
import { escapeXml } from "../eval/chart.js";
import { compareHarm, type ScanReport, type ScanRow } from "./index.js";

const signed = (v: number, digits: number) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;

function editName(report: ScanReport, layer: number): string {
  return report.op === "delete" ? `delete ${layer}` : `duplicate ${layer}`;
}

export function scanTitle(report: ScanReport): string {
  return (
    `hquant scan --op ${report.op}: ${report.base.layers} layers, built in ${report.ftype}; text ${report.text}, ctx ${report.ctx}, ` +
    `${report.chunks} chunks (${report.positions} scored tokens); base PPL ${report.base.ppl.toFixed(4)} ± ${report.base.pplErr.toFixed(4)}`
  );
}

/** The rows as a markdown table, least harmful first (the order of report.rows). */
export function scanMarkdown(report: ScanReport): string {
  const lines = [
    scanTitle(report),
    "",
    "| rank | edit | PPL | ΔPPL | KLD | same top % |",
    "|---:|:---|---:|---:|---:|---:|",
  ];
  const row = (rank: string, edit: string, r: Omit<ScanRow, "layer">) =>
    `| ${rank} | ${edit} | ${r.ppl.toFixed(4)} ± ${r.pplErr.toFixed(4)} | ${signed(r.dPpl, 4)} | ${r.kld.toFixed(6)} ± ${r.kldErr.toFixed(6)} | ${r.topTokenPct.toFixed(2)} |`;
  report.rows.forEach((r, i) => lines.push(row(String(i + 1), editName(report, r.layer), r)));
  if (report.reference) lines.push(row("—", `none (${report.ftype})`, report.reference));
  return lines.join("\n") + "\n";
}

export function scanJson(report: ScanReport): string {
  return JSON.stringify(report, null, 2) + "\n";
}

const W = 720;
const H = 360;
const M = { left: 70, right: 20, top: 40, bottom: 48 };

/** Decades of a log axis holding every value (KLD spans orders of magnitude across layers). */
function logRange(values: readonly number[]): [lo: number, hi: number] {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return [-3, 0];
  const lo = Math.floor(Math.log10(Math.min(...positive)));
  const hi = Math.ceil(Math.log10(Math.max(...positive)));
  return [lo, Math.max(hi, lo + 1)];
}

const num = (v: number) => (Math.round(v * 10) / 10).toString();

/** KLD per edited layer as bars on a log scale (layer order); the least harmful quarter in a second colour. */
export function scanChart(report: ScanReport, title = scanTitle(report)): string {
  const rows = [...report.rows].sort((a, b) => a.layer - b.layer);
  const best = new Set([...report.rows].sort(compareHarm).slice(0, Math.max(1, Math.ceil(rows.length / 4))).map((r) => r.layer));
  const [lo, hi] = logRange([...rows.map((r) => r.kld), ...(report.reference ? [report.reference.kld] : [])]);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const slot = plotW / Math.max(rows.length, 1);
  // bars start at the bottom decade; a KLD of 0 (or below it) draws no bar
  const y = (v: number) => M.top + plotH - ((Math.min(Math.max(v > 0 ? Math.log10(v) : lo, lo), hi) - lo) / (hi - lo)) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="12">${escapeXml(title.length > 110 ? `${title.slice(0, 107)}…` : title)}</text>`,
    `<text x="${W / 2}" y="30" text-anchor="middle" fill="#555">KL-divergence from the base after ${report.op === "delete" ? "deleting" : "duplicating"} each layer (lower = safer)</text>`,
  ];
  for (let d = lo; d <= hi; d++) {
    const v = 10 ** d;
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${num(y(v))}" y2="${num(y(v))}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${num(y(v) + 4)}" text-anchor="end">${d >= 0 ? String(v) : v.toFixed(-d)}</text>`);
  }
  rows.forEach((r, i) => {
    const x = M.left + i * slot + slot * 0.15;
    const top = y(r.kld);
    out.push(
      `<rect x="${num(x)}" y="${num(top)}" width="${num(slot * 0.7)}" height="${num(M.top + plotH - top)}" fill="${best.has(r.layer) ? "#2a9d8f" : "#e76f51"}">` +
        `<title>${escapeXml(`${editName(report, r.layer)}: KLD ${r.kld.toFixed(6)}, ΔPPL ${signed(r.dPpl, 4)}, same top ${r.topTokenPct.toFixed(2)}%`)}</title></rect>`,
    );
    out.push(`<text x="${num(x + slot * 0.35)}" y="${H - M.bottom + 14}" text-anchor="middle">${r.layer}</text>`);
  });
  if (report.reference) {
    const ry = num(y(report.reference.kld));
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${ry}" y2="${ry}" stroke="#264653" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${W - M.right}" y="${num(y(report.reference.kld) - 4)}" text-anchor="end" fill="#264653">no edit (${escapeXml(report.ftype)})</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${M.left + plotW / 2}" y="${H - 12}" text-anchor="middle">layer</text>`);
  out.push(`<text x="16" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + plotH / 2})">KLD (log scale)</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}
