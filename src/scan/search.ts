// The scan of every single edit of some ops on the base (one pass, no search), and the Markdown
// of the search results (greedy path in greedy.ts, LaCo trials here).
import { enumerateAll, type Candidate, type CandidateOptions, type SearchOp } from "./candidates.js";
import { compareMeasurements } from "./greedy.js";
import type { LacoResult } from "./laco.js";
import type { Measurement, MeasureFn } from "./measure.js";

export interface RankedEdit {
  candidate: Candidate;
  measurement: Measurement;
}

/** Every single edit of `ops` on the base, least harmful first (KLD, ΔPPL, enumeration order). */
export async function rankEdits(opts: CandidateOptions & { nLayer: number; ops: readonly SearchOp[]; measure: MeasureFn; onCandidate?: (index: number, total: number, c: Candidate) => void }): Promise<RankedEdit[]> {
  const candidates = enumerateAll(opts.ops, opts.nLayer, opts);
  const rows: { r: RankedEdit; i: number }[] = [];
  for (const [i, c] of candidates.entries()) {
    opts.onCandidate?.(i, candidates.length, c);
    rows.push({ r: { candidate: c, measurement: await opts.measure([c.op]) }, i });
  }
  return rows.sort((a, b) => compareMeasurements(a.r.measurement, a.i, b.r.measurement, b.i)).map((x) => x.r);
}

const signed = (v: number, digits: number) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}`;
const kldCell = (m: Measurement) => `${m.kld.toFixed(6)} ± ${m.kldErr.toFixed(6)}`;

export function rankedMarkdown(rows: readonly RankedEdit[]): string {
  const lines = ["| rank | edit | layers | PPL | ΔPPL | KLD | same top % |", "|---:|:---|---:|---:|---:|---:|---:|"];
  rows.forEach(({ candidate: c, measurement: m }, i) =>
    lines.push(`| ${i + 1} | ${c.label} | ${m.layers} | ${m.ppl.toFixed(4)} ± ${m.pplErr.toFixed(4)} | ${signed(m.dPpl, 4)} | ${kldCell(m)} | ${m.topTokenPct.toFixed(2)} |`),
  );
  return `${lines.join("\n")}\n`;
}

export function lacoMarkdown(result: LacoResult): string {
  const lines = ["| trial | merge | similarity | kept | layers | PPL | KLD | same top % |", "|---:|:---|---:|:---|---:|---:|---:|---:|"];
  result.trials.forEach((t, i) => {
    const m = t.measurement;
    const cells = m ? `${m.ppl.toFixed(4)} ± ${m.pplErr.toFixed(4)} | ${kldCell(m)} | ${m.topTokenPct.toFixed(2)}` : " | | ";
    lines.push(`| ${i + 1} | ${t.label} | ${t.similarity.toFixed(4)} | ${t.accepted ? "yes" : "no"} | ${t.accepted ? t.layers : ""} | ${cells} |`);
  });
  lines.push("", `stopped: ${result.stopped}`);
  return `${lines.join("\n")}\n`;
}
