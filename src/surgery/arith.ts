// The f32 arithmetic of interpolate and merge, exactly in the formulas' order, one rounding to f32
// per operation, no fused multiply-add — so a build is byte-reproducible and matches what any
// plain f32 implementation of the same formulas gives:
//   interpolate: out = (1−α)·a + α·b          as f32(f32(wa·a) + f32(wb·b)), wa = f32(1−α), wb = f32(α)
//                (1−α is computed from the schedule's number in double, then rounded, as Python does)
//   merge:       out = θ_l + (θ_{l+1} − θ_l) + (θ_{l+2} − θ_l) + …   left to right, each − and + rounded
// Nested recipes evaluate their children first (each child a full f32 array), then the node.
// Storing into a Float32Array rounds to f32; Math.fround rounds the intermediate products and
// differences. A double result of one +, −, × of two f32 values rounded to f32 is the correctly
// rounded f32 result (53 ≥ 2·24 + 2), so this equals C float arithmetic without FMA.
import type { Recipe } from "./ops.js";

/** The two f32 weights of an interpolation. */
export function interpolationWeights(alpha: number): { wa: number; wb: number } {
  return { wa: Math.fround(1 - alpha), wb: Math.fround(alpha) };
}

function interpolateInto(dst: Float32Array, a: Float32Array, b: Float32Array, alpha: number, n: number): void {
  const { wa, wb } = interpolationWeights(alpha);
  for (let i = 0; i < n; i++) dst[i] = Math.fround(wa * a[i]!) + Math.fround(wb * b[i]!);
}

function mergeInto(dst: Float32Array, base: Float32Array, others: readonly Float32Array[], n: number): void {
  if (others.length === 2) {
    // the common LaCo case (3 layers into one), without the inner loop
    const [o1, o2] = others as [Float32Array, Float32Array];
    for (let i = 0; i < n; i++) {
      const b = base[i]!;
      dst[i] = Math.fround(Math.fround(b + Math.fround(o1[i]! - b)) + Math.fround(o2[i]! - b));
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const b = base[i]!;
    let acc = b;
    for (let k = 0; k < others.length; k++) acc = Math.fround(acc + Math.fround(others[k]![i]! - b));
    dst[i] = acc;
  }
}

/** Evaluates `r` over the first n values; returns `target` (when given) or a source / new array. */
function evaluate(r: Recipe<number>, sources: readonly Float32Array[], n: number, target?: Float32Array): Float32Array {
  switch (r.kind) {
    case "copy": {
      const src = sources[r.src];
      if (!src) throw new Error(`combineRows: recipe uses input ${r.src}, only ${sources.length} given`);
      if (src.length < n) throw new Error(`combineRows: input ${r.src} has ${src.length} values, need ${n}`);
      if (!target) return src;
      target.set(src.subarray(0, n));
      return target;
    }
    case "interpolate": {
      const a = evaluate(r.a, sources, n);
      const b = evaluate(r.b, sources, n);
      const dst = target ?? new Float32Array(n);
      interpolateInto(dst, a, b, r.alpha, n);
      return dst;
    }
    case "merge": {
      const base = evaluate(r.base, sources, n);
      const others = r.others.map((o) => evaluate(o, sources, n));
      const dst = target ?? new Float32Array(n);
      mergeInto(dst, base, others, n);
      return dst;
    }
  }
}

/**
 * out[i] = recipe(sources[0][i], sources[1][i], …) for i < out.length, in f32, in the formula's
 * order. `sources[k]` is the f32 data of the recipe's input k (same rows as `out`); `out` must not
 * be one of the sources.
 */
export function combineRows(recipe: Recipe<number>, sources: readonly Float32Array[], out: Float32Array): Float32Array {
  if (sources.includes(out)) throw new Error("combineRows: out must not be one of the sources");
  return evaluate(recipe, sources, out.length, out);
}
