// `hquant imatrix --show-statistics`: llama-imatrix's per-tensor statistics of the mean squared
// activations (compute_statistics, compute_cossim), in f32 as llama.cpp computes them, and its
// per-layer weighted averages.
import type { RawImatrixEntry } from "./normalize.js";

export interface TensorStatistics {
  /** tensor name (blk.N.attn_q.weight) */
  tensor: string;
  /** layer index, or -1 for a tensor outside the blocks */
  layer: number;
  /** short name (attn_q) */
  kind: string;
  sumSquares: number;
  min: number;
  max: number;
  mean: number;
  stddev: number;
  /** fraction of columns with a mean square above 1e-5 */
  active: number;
  elements: number;
  /** entropy (bits) of the columns' share of Σact² */
  entropy: number;
  /** entropy / log2(elements), in % */
  entropyNorm: number;
  /** fraction of columns more than one standard deviation above the mean */
  zd: number;
  /** cosine similarity of the raw sums with the same tensor of the previous layer (0 when none) */
  cossim: number;
}

export interface LayerStatistics {
  layer: number;
  sumSquares: number;
  zd: number;
  cossim: number;
}

const f = Math.fround;

/** llama-imatrix's process_tensor_name: the layer after "blk" and the part before "weight". */
function splitName(name: string): { layer: number; kind: string } {
  const parts = name.split(".");
  const b = parts.indexOf("blk");
  const w = parts.indexOf("weight");
  const layer = b >= 0 && b + 1 < parts.length && /^\d+/.test(parts[b + 1]) ? parseInt(parts[b + 1], 10) : -1;
  const kind = w > 0 ? parts[w - 1] : name;
  return { layer, kind };
}

function sumF32(v: Float32Array | number[]): number {
  let s = 0;
  for (const x of v) s = f(s + x);
  return s;
}

function dotF32(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s = f(s + f(a[i] * b[i]));
  return s;
}

export function tensorStatistics(entries: readonly RawImatrixEntry[]): TensorStatistics[] {
  const out: TensorStatistics[] = [];
  const raw = new Map<string, Float32Array>();
  for (const e of entries) {
    const nMat = e.counts.length;
    if (nMat === 0 || e.sums.length % nMat !== 0) continue;
    const row = e.sums.length / nMat;
    const acts: number[] = [];
    for (let i = 0; i < nMat; i++) {
      if (e.counts[i] === 0) continue;
      for (let j = 0; j < row; j++) acts.push(f(e.sums[i * row + j] / f(e.counts[i])));
    }
    if (acts.length === 0) continue;
    const a = Float32Array.from(acts);
    const total = sumF32(a);
    let max = a[0];
    let min = a[0];
    for (const x of a) {
      if (x > max) max = x;
      if (x < min) min = x;
    }
    const mean = f(total / a.length);
    const variance = f(f(dotF32(a, a) / a.length) - f(mean * mean));
    const stddev = f(Math.sqrt(Math.max(0, variance)));
    let inactive = 0;
    for (const x of a) if (Math.abs(x) <= f(1e-5)) inactive++;
    let entropy = 0;
    if (total > 0) {
      for (const x of a) {
        const p = f(x / total);
        if (p > 0) entropy = f(entropy - f(p * f(Math.log2(p))));
      }
    }
    let z = 0;
    if (stddev > 0) for (const x of a) if (f(f(x - mean) / stddev) > 1) z++;
    const { layer, kind } = splitName(e.name);
    raw.set(e.name, e.sums);
    out.push({
      tensor: e.name,
      layer,
      kind,
      sumSquares: total,
      min,
      max,
      mean,
      stddev,
      active: f(1 - f(inactive / a.length)),
      elements: a.length,
      entropy,
      entropyNorm: a.length > 0 ? f(100 * f(entropy / f(Math.log2(a.length)))) : 0,
      zd: f(z / a.length),
      cossim: 0,
    });
  }
  for (const t of out) {
    const m = /blk\.(\d+)\./.exec(t.tensor);
    if (!m) continue;
    const prevName = t.tensor.slice(0, m.index + 4) + String(Number(m[1]) - 1) + t.tensor.slice(m.index + 4 + m[1].length);
    const prev = raw.get(prevName);
    const cur = raw.get(t.tensor)!;
    if (!prev || prev.length !== cur.length) continue;
    t.cossim = f(dotF32(cur, prev) / f(f(Math.sqrt(dotF32(cur, cur))) * f(Math.sqrt(dotF32(prev, prev)))));
  }
  // llama-imatrix's order: by tensor kind, then largest Σact² first
  out.sort((a, b) => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : b.sumSquares - a.sumSquares));
  return out;
}

/** Per-layer averages weighted by element count. */
export function layerStatistics(ts: readonly TensorStatistics[]): LayerStatistics[] {
  const acc = new Map<number, { bias: number; zd: number; cossim: number; n: number }>();
  for (const t of ts) {
    if (t.layer < 0) continue;
    const a = acc.get(t.layer) ?? { bias: 0, zd: 0, cossim: 0, n: 0 };
    a.bias += t.elements * t.sumSquares;
    a.zd += t.elements * t.zd;
    a.cossim += t.elements * t.cossim;
    a.n += t.elements;
    acc.set(t.layer, a);
  }
  return [...acc.entries()]
    .sort((x, y) => x[0] - y[0])
    .map(([layer, a]) => ({ layer, sumSquares: a.bias / a.n, zd: a.zd / a.n, cossim: a.cossim / a.n }));
}

export function statisticsTable(ts: readonly TensorStatistics[]): string {
  const head = ["layer", "tensor", "Σ(act²)", "min", "max", "μ", "σ", "% active", "N", "entropy", "E (norm)", "ZD", "CosSim"];
  const p = printfFixed;
  const rows = ts.map((t) => [
    t.layer < 0 ? "-" : String(t.layer),
    t.kind,
    p(t.sumSquares, 2),
    p(t.min, 4),
    p(t.max, 4),
    p(t.mean, 2),
    p(t.stddev, 2),
    `${p(f(t.active * 100), 2)}%`,
    String(t.elements),
    p(t.entropy, 4),
    `${p(t.entropyNorm, 2)}%`,
    `${p(f(100 * t.zd), 2)}%`,
    p(t.cossim, 4),
  ]);
  const layers = layerStatistics(ts).map((l) => [String(l.layer), p(l.sumSquares, 2), `${p(100 * l.zd, 4)}%`, p(l.cossim, 4)]);
  return `${align([head, ...rows])}\nper layer (weighted by elements)\n${align([["layer", "μΣ(act²)", "μZD", "μCosSim"], ...layers])}`;
}

/**
 * printf("%.Nf"): the exact binary value rounded half to even (JS toFixed rounds exact ties up:
 * 15.625 → "15.63" where printf prints "15.62").
 */
export function printfFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return String(x);
  const exact = Math.abs(x).toFixed(Math.min(100, digits + 30)); // exact digits of the double
  const [int, frac] = exact.split(".");
  const kept = frac.slice(0, digits);
  const rest = frac.slice(digits);
  const tie = /^50*$/.test(rest);
  const up = rest[0] > "5" || (rest[0] === "5" && !tie) || (tie && Number((digits > 0 ? kept : int).slice(-1)) % 2 === 1);
  let out = Math.abs(x).toFixed(digits);
  if (!/[1-9]/.test(rest)) out = digits > 0 ? `${int}.${kept}` : int;
  else {
    const scaled = BigInt(int + kept) + (up ? 1n : 0n);
    const str = scaled.toString().padStart(digits + 1, "0");
    out = digits > 0 ? `${str.slice(0, -digits)}.${str.slice(-digits)}` : str;
  }
  return x < 0 || Object.is(x, -0) ? `-${out}` : out;
}

function align(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ")).join("\n") + "\n";
}
