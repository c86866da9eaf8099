// The per-position arithmetic of llama-perplexity (tools/perplexity/perplexity.cpp), re-implemented:
// the uint16 log-probability packing of --kl-divergence-base files, the KL-divergence of base‖quant
// over the full vocabulary, same-top-token counting, and llama.cpp's percentile. Pure functions.
//
// Input distributions come from node-llama-cpp as probabilities p_i (float32, = softmax of the
// logits). log(p_i) differs from the logits by a constant per position, so every formula below that
// llama.cpp writes with logits is written here with log(p_i).

const f32 = Math.fround;

/** Smallest positive float32 (denormal): a probability that underflowed to 0 is clamped to it. */
const MIN_PROB = 1.401298464324817e-45;
const LOG_MIN_PROB = Math.log(MIN_PROB);

/** uint16 entries per position in a packed row: two float32 (scale, min log-prob) then one per token, padded to even. */
export function packedRowLength(nVocab: number): number {
  return 2 * Math.floor((nVocab + 1) / 2) + 4;
}

/** log(p) as float32, with p = 0 (underflow) clamped to the smallest float32. */
export function logProb(p: number): number {
  return p > 0 ? f32(Math.log(p)) : f32(LOG_MIN_PROB);
}

/** llama.cpp's nearest_int: round to nearest, ties to even, through the float32 1.5·2^23 trick. */
export function nearestInt(x: number): number {
  return f32(f32(x) + 12582912) - 12582912;
}

/**
 * Packs one position's distribution as llama-perplexity writes it to a --kl-divergence-base file:
 * float32 scale and min log-prob, then per token round((l_i − l_min)/scale) with l_min clamped to
 * l_max − 16 (tokens below it are stored as 0 and later ignored by the KLD sum).
 */
export function packLogProbs(probs: Float32Array, out: Uint16Array, offset: number): void {
  const n = probs.length;
  const logits = new Float32Array(n);
  let max = -Infinity;
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const l = logProb(probs[i]);
    logits[i] = l;
    if (l > max) max = l;
    if (l < min) min = l;
  }
  min = Math.max(min, f32(max - 16));
  let sumExp = 0;
  for (let i = 0; i < n; i++) sumExp += f32(Math.exp(f32(logits[i] - max)));
  const logSumExp = f32(Math.log(sumExp));
  const minLogProb = f32(f32(min - max) - logSumExp);
  const scale = f32(f32(max - min) / 65535);
  const header = new Float32Array(out.buffer, out.byteOffset + offset * 2, 2);
  header[0] = scale;
  header[1] = minLogProb;
  const row = out.subarray(offset + 4, offset + 4 + n);
  if (scale === 0) {
    row.fill(0);
    return;
  }
  const invScale = f32(1 / scale);
  for (let i = 0; i < n; i++) row[i] = logits[i] > min ? nearestInt(f32(invScale * f32(logits[i] - min))) : 0;
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

/** First index of the largest value (llama.cpp scans with a strict `>`). */
function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Scores one position of the quantized model against the packed base distribution: adds its NLL of
 * the actual next token, KL(base‖quant) over tokens whose base log-prob is above −16, and whether
 * the top tokens agree. Returns the position's KLD.
 */
export function scorePosition(quantProbs: Float32Array, base: Uint16Array, baseOffset: number, tok: number, acc: KldAccumulator): number {
  const n = quantProbs.length;
  const nll = -Math.log(Math.max(quantProbs[tok], MIN_PROB));
  acc.sumNll += nll;
  acc.sumNll2 += nll * nll;

  const header = new Float32Array(base.buffer, base.byteOffset + baseOffset * 2, 2);
  const scale = header[0];
  const minLogProb = header[1];
  const row = base.subarray(baseOffset + 4, baseOffset + 4 + n);
  let kld = 0;
  for (let i = 0; i < n; i++) {
    const pLogBase = f32(f32(scale * row[i]) + minLogProb);
    if (pLogBase > -16) kld += f32(Math.exp(pLogBase)) * (pLogBase - logProb(quantProbs[i]));
  }
  acc.sumKld += kld;
  acc.sumKld2 += kld * kld;
  acc.count++;
  if (argmax(quantProbs) === argmax(row)) acc.sameTop++;
  acc.klds.push(kld);
  return kld;
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
