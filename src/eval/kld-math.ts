// The scalar side of llama-perplexity's arithmetic (tools/perplexity/perplexity.cpp), re-implemented:
// the layout of the uint16 packed rows of --kl-divergence-base files, the running sums of the
// --kl-divergence pass, llama.cpp's percentile and mean ± uncertainty. Pure functions. The
// per-token work over the vocabulary is kernels/logits.ts (WASM-SIMD), run by vocab-math.ts.

const f32 = Math.fround;

/** uint16 entries per position in a packed row: two float32 (scale, min log-prob) then one per token, padded to even. */
export function packedRowLength(nVocab: number): number {
  return 2 * Math.floor((nVocab + 1) / 2) + 4;
}

/** llama.cpp's nearest_int: round to nearest, ties to even, through the float32 1.5·2^23 trick. */
export function nearestInt(x: number): number {
  return f32(f32(x) + 12582912) - 12582912;
}

/** A packed position's log-probability of token `tok` (as llama.cpp dequantizes it). */
export function unpackLogProb(packed: Uint16Array, offset: number, tok: number): number {
  const header = new Float32Array(packed.buffer, packed.byteOffset + offset * 2, 2);
  return f32(f32(header[0] * packed[offset + 4 + tok]) + header[1]);
}

/** Running sums over scored positions, as llama.cpp's kl_divergence_result (the parts hquant reports). */
export interface KldAccumulator {
  sumNll: number;
  sumNll2: number;
  sumKld: number;
  sumKld2: number;
  sameTop: number;
  count: number;
  /** per-position KLD values, for percentiles */
  klds: number[];
}

export function newKldAccumulator(): KldAccumulator {
  return { sumNll: 0, sumNll2: 0, sumKld: 0, sumKld2: 0, sameTop: 0, count: 0, klds: [] };
}

/**
 * Adds one scored position (from the kernels' kldRow): its NLL (a float in llama.cpp, squared as a
 * float), its KL-divergence, whether the top tokens agree.
 */
export function addPosition(acc: KldAccumulator, nll: number, kld: number, sameTop: boolean): void {
  acc.sumNll += nll;
  acc.sumNll2 += f32(nll * nll);
  acc.sumKld += kld;
  acc.sumKld2 += kld * kld;
  acc.count++;
  if (sameTop) acc.sameTop++;
  acc.klds.push(f32(kld));
}

/** llama.cpp's percentile of sorted values: linear interpolation at fraction·(n−1), in float32. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const fr = f32(fraction);
  if (fr <= 0) return sorted[0];
  if (fr >= 1) return sorted[n - 1];
  let p = f32(fr * (n - 1));
  const ip = Math.floor(p);
  p = f32(p - ip);
  return f32(f32(f32(1 - p) * sorted[ip]) + f32(p * sorted[Math.min(ip + 1, n - 1)]));
}

/** Mean and its uncertainty, as llama.cpp's mean_and_uncertainty. */
export function meanAndUncertainty(sum: number, sum2: number, count: number): [mean: number, err: number] {
  if (count < 1) return [0, 0];
  const f = sum / count;
  const df = sum2 / count - f * f;
  return [f, df > 0 && count > 10 ? Math.sqrt(df / (count - 1)) : 0];
}

export interface KldSummary {
  ppl: number;
  pplErr: number;
  kld: number;
  kldErr: number;
  kld99: number;
  kldMax: number;
  topTokenPct: number;
  positions: number;
}

export function summarizeKld(acc: KldAccumulator): KldSummary {
  const [lnPpl, lnPplErr] = meanAndUncertainty(acc.sumNll, acc.sumNll2, acc.count);
  const ppl = Math.exp(lnPpl);
  const [kld, kldErr] = meanAndUncertainty(acc.sumKld, acc.sumKld2, acc.count);
  const sorted = Float32Array.from(acc.klds).sort();
  return {
    ppl,
    pplErr: ppl * lnPplErr,
    kld,
    kldErr,
    kld99: percentile(sorted, 0.99),
    kldMax: sorted.length ? sorted[sorted.length - 1] : NaN,
    topTokenPct: acc.count ? (100 * acc.sameTop) / acc.count : NaN,
    positions: acc.count,
  };
}
