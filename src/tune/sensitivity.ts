// The sensitivity model between measurement and allocation: each tensor's predicted ΔKLD for each
// of its types. ΔKLD(tensor, type) = α · E(tensor, type), with E the proxy's weighted error and α a
// measured scale: per group and per measured type in measure mode (α interpolated in log space
// over bits per weight between the measured types, held constant outside them), or per tensor kind
// from a few calibration points in proxy mode. The additive model (the file's KLD is the sum of its
// tensors' ΔKLD) is what the allocation optimises; verify.ts checks it against a measurement.
import { GGMLType } from "../gguf/ggml-types.js";
import { unitTensors, type TuneSpace, type TuneTensor } from "./candidates.js";
import type { Measurement } from "./measure.js";
import type { ProxyErrors } from "./proxy.js";
import { shapeFallback } from "../plan/tensors.js";

/** tensor name → type → predicted ΔKLD */
export type CostTable = Map<string, Map<GGMLType, number>>;

/** Smallest ΔKLD a measurement may give (one at the evaluator's noise floor is not zero sensitivity). */
const MIN_KLD = 1e-7;

const writtenError = (errors: ProxyErrors, t: TuneTensor, type: GGMLType) => errors.get(t.name)!.get(shapeFallback(t.shape[0]!, type).type) ?? 0;

const geomean = (xs: readonly number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

/**
 * Per tensor kind (category): measured ΔKLD per unit of proxy error, from the single-tensor
 * measurements (geometric mean over the layers sampled). The proxy's error is in each tensor's own
 * input units (ffn_down's inputs are far smaller than attn_q's), so without this factor the proxy
 * cannot compare tensors of different kinds.
 */
export function kindFactors(space: TuneSpace, errors: ProxyErrors, measurements: readonly Measurement[]): Map<string, number> {
  const byKind = new Map<string, number[]>();
  for (const m of measurements) {
    const ts = unitTensors(space, m.group);
    if (ts.length !== 1) continue;
    const e = writtenError(errors, ts[0]!, m.type);
    if (e > 0) byKind.set(ts[0]!.category, [...(byKind.get(ts[0]!.category) ?? []), Math.max(m.kld, MIN_KLD) / e]);
  }
  const factors = new Map<string, number>();
  for (const [k, v] of byKind) factors.set(k, geomean(v));
  const all = [...factors.values()];
  const fallback = all.length ? geomean(all) : 1;
  for (const t of space.tensors) if (!factors.has(t.category)) factors.set(t.category, fallback);
  return factors;
}

/**
 * Costs: ΔKLD(tensor, type) = α_group · β_kind · E(tensor, type). β_kind from kindFactors; with
 * `scope` "group" each measured group's α makes the model reproduce that group's measurement
 * (geometric mean over its measured types); with "kind" α = 1 (the proxy, scaled per kind only).
 */
export function costTable(space: TuneSpace, errors: ProxyErrors, measurements: readonly Measurement[], scope: "group" | "kind"): CostTable {
  const beta = kindFactors(space, errors, measurements);
  const alphaSamples = new Map<string, number[]>();
  if (scope === "group") {
    for (const m of measurements) {
      if (!space.groups.includes(m.group)) continue;
      const raw = unitTensors(space, m.group).reduce((a, t) => a + beta.get(t.category)! * writtenError(errors, t, m.type), 0);
      if (raw > 0) alphaSamples.set(m.group, [...(alphaSamples.get(m.group) ?? []), Math.max(m.kld, MIN_KLD) / raw]);
    }
  }
  const table: CostTable = new Map();
  for (const t of space.tensors) {
    const samples = alphaSamples.get(t.group);
    const scale = (samples ? geomean(samples) : 1) * beta.get(t.category)!;
    const e = errors.get(t.name)!;
    table.set(t.name, new Map(t.options.map((o) => [o.type, scale * (e.get(o.type) ?? 0)])));
  }
  return table;
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
