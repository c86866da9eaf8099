// The sensitivity model between measurement and allocation: each tensor's predicted cost (ΔKLD, or
// the objective's measure) for each of its types. cost(tensor, type) = α · β · E(tensor, type), with
// E the proxy's weighted error, β a per-kind scale (ffn_down_exps apart from ffn_down, from the
// single-tensor measurements) and α a measured scale per group: per measured type, interpolated in
// log space over bits per weight between the measured types and held constant outside them (a
// group's ΔKLD at q3_K does not fix its ΔKLD at iq2_xxs: the error-to-KLD ratio drifts with the
// bits). The additive model (the file's cost is the sum of its tensors') is what the allocation
// optimises; verify.ts checks it against a measurement.
import { GGMLType } from "../gguf/ggml-types.js";
import { typeBits, unitTensors, type TuneSpace, type TuneTensor } from "./candidates.js";
import type { Measurement } from "./measure.js";
import type { ProxyErrors } from "./proxy.js";
import { shapeFallback } from "../plan/tensors.js";

/** tensor name → type → predicted cost */
export type CostTable = Map<string, Map<GGMLType, number>>;

/**
 * What the tune minimises. mean: mean KLD (default). p99: the 99th percentile of KLD — a quantile is
 * not additive, so the allocations are made on the mean-KLD model and the verified candidate with
 * the lowest measured p99 is kept. top: the share of tokens whose most likely token changes
 * (100 − same-top %), measured per group like the mean.
 */
export type Objective = "mean" | "p99" | "top";
export const OBJECTIVES: readonly Objective[] = ["mean", "p99", "top"];

/** A measurement's cost under an objective (the value the additive model fits). */
export function measuredCost(m: Pick<Measurement, "kld" | "topTokenPct">, objective: Objective): number {
  return objective === "top" ? Math.max(0, 100 - m.topTokenPct) / 100 : m.kld;
}

/** Smallest cost a measurement may give (one at the evaluator's noise floor is not zero sensitivity). */
const MIN_KLD = 1e-7;

const writtenError = (errors: ProxyErrors, t: TuneTensor, type: GGMLType) => errors.get(t.name)!.get(shapeFallback(t.shape[0]!, type).type) ?? 0;

const geomean = (xs: readonly number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/**
 * Per tensor kind: measured cost per unit of proxy error, from the single-tensor measurements
 * (geometric mean over the layers sampled). The proxy's error is in each tensor's own input units
 * (ffn_down's inputs are far smaller than attn_q's), so without this factor the proxy cannot compare
 * tensors of different kinds.
 */
export function kindFactors(space: TuneSpace, errors: ProxyErrors, measurements: readonly Measurement[], objective: Objective = "mean"): Map<string, number> {
  const byKind = new Map<string, number[]>();
  for (const m of measurements) {
    const ts = unitTensors(space, m.group);
    if (ts.length !== 1) continue;
    const e = writtenError(errors, ts[0]!, m.type);
    if (e > 0) byKind.set(ts[0]!.kind, [...(byKind.get(ts[0]!.kind) ?? []), Math.max(measuredCost(m, objective), MIN_KLD) / e]);
  }
  const factors = new Map<string, number>();
  for (const [k, v] of byKind) factors.set(k, geomean(v));
  // a kind never measured alone: its category's factor (ffn_gate_shexp ← ffn_gate…), else all kinds'
  const all = [...factors.values()];
  const fallback = all.length ? geomean(all) : 1;
  for (const t of space.tensors) {
    if (factors.has(t.kind)) continue;
    const same = space.tensors.filter((u) => u.category === t.category && factors.has(u.kind)).map((u) => factors.get(u.kind)!);
    factors.set(t.kind, same.length ? geomean(same) : fallback);
  }
  return factors;
}

/** log α at `bits`, interpolated linearly between the measured points (sorted by bits), constant outside. */
function interpolateLog(points: readonly { bits: number; logAlpha: number }[], bits: number): number {
  if (bits <= points[0]!.bits) return points[0]!.logAlpha;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (bits <= b.bits) return b.bits === a.bits ? b.logAlpha : a.logAlpha + ((b.logAlpha - a.logAlpha) * (bits - a.bits)) / (b.bits - a.bits);
  }
  return points[points.length - 1]!.logAlpha;
}

/**
 * Costs: cost(tensor, type) = α_group(type) · β_kind · E(tensor, type). β_kind from kindFactors; with
 * `scope` "group" each measured group's α makes the model reproduce that group's measurement at each
 * measured type (interpolated between them); with "kind" α = 1 (the proxy, scaled per kind only).
 */
export function costTable(space: TuneSpace, errors: ProxyErrors, measurements: readonly Measurement[], scope: "group" | "kind", objective: Objective = "mean"): CostTable {
  const beta = kindFactors(space, errors, measurements, objective);
  // group → measured type's bits → α samples (a type measured twice is averaged)
  const alphaSamples = new Map<string, Map<number, number[]>>();
  if (scope === "group") {
    for (const m of measurements) {
      if (!space.groups.includes(m.group)) continue;
      const raw = unitTensors(space, m.group).reduce((a, t) => a + beta.get(t.kind)! * writtenError(errors, t, m.type), 0);
      if (raw <= 0) continue;
      const byBits = alphaSamples.get(m.group) ?? new Map<number, number[]>();
      const bits = typeBits(m.type);
      byBits.set(bits, [...(byBits.get(bits) ?? []), Math.max(measuredCost(m, objective), MIN_KLD) / raw]);
      alphaSamples.set(m.group, byBits);
    }
  }
  const table: CostTable = new Map();
  for (const t of space.tensors) {
    const samples = alphaSamples.get(t.group);
    const points = samples ? [...samples].map(([bits, xs]) => ({ bits, logAlpha: Math.log(geomean(xs)) })).sort((a, b) => a.bits - b.bits) : undefined;
    const e = errors.get(t.name)!;
    const b = beta.get(t.kind)!;
    table.set(t.name, new Map(t.options.map((o) => [o.type, (points ? Math.exp(interpolateLog(points, typeBits(o.type))) : 1) * b * (e.get(o.type) ?? 0)])));
  }
  return table;
}

export interface NoiseCheck {
  /** group pairs the allocation treats differently (different mean bits per weight) */
  decisive: number;
  /** of those, pairs whose measured ΔKLD differ by less than their combined ± (one standard error) */
  withinNoise: number;
  /** median relative ± (kldErr / kld) of the group measurements */
  medianRelativeErr: number;
}

/**
 * Does the allocation rest on differences the measurements resolve? For every two measured groups
 * (at the same type) that the allocation gives different bits per weight, is the difference of their
 * ΔKLD larger than √(σ₁² + σ₂²)? (σ: each measurement's standard error, over its scored tokens.)
 */
export function noiseCheck(space: TuneSpace, measurements: readonly Measurement[], assignment: ReadonlyMap<string, GGMLType>): NoiseCheck {
  const bitsOf = new Map<string, number>();
  for (const g of space.groups) {
    let bits = 0;
    let n = 0;
    for (const t of space.tensors) if (t.group === g) {
      bits += typeBits(assignment.get(t.name)!) * t.elements;
      n += t.elements;
    }
    bitsOf.set(g, bits / n);
  }
  const ms = measurements.filter((m) => space.groups.includes(m.group));
  let decisive = 0;
  let withinNoise = 0;
  for (let i = 0; i < ms.length; i++) {
    for (let j = i + 1; j < ms.length; j++) {
      const a = ms[i]!;
      const b = ms[j]!;
      if (a.type !== b.type || Math.abs(bitsOf.get(a.group)! - bitsOf.get(b.group)!) < 1e-9) continue;
      decisive++;
      if (Math.abs(a.kld - b.kld) < Math.hypot(a.kldErr, b.kldErr)) withinNoise++;
    }
  }
  const rel = ms.map((m) => (m.kld > 0 ? m.kldErr / m.kld : Infinity)).sort((x, y) => x - y);
  return { decisive, withinNoise, medianRelativeErr: rel.length ? rel[Math.floor(rel.length / 2)]! : NaN };
}

/** Spearman rank correlation (average ranks for ties). */
export function spearman(xs: readonly number[], ys: readonly number[]): number {
  const rank = (v: readonly number[]) => {
    const idx = v.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
    const r = new Array<number>(v.length);
    for (let i = 0; i < idx.length; ) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1]![0] === idx[i]![0]) j++;
      for (let k = i; k <= j; k++) r[idx[k]![1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const rx = rank(xs);
  const ry = rank(ys);
  const n = xs.length;
  const mx = rx.reduce((a, b) => a + b, 0) / n;
  const my = ry.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (rx[i]! - mx) * (ry[i]! - my);
    sxx += (rx[i]! - mx) ** 2;
    syy += (ry[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
