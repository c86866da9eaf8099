// Turning raw imatrix statistics into the importance vectors llama-quantize hands to the
// quantizers (tools/quantize/quantize.cpp, load_imatrix): every value in f32, in the same order of
// operations, so that the quantized bytes match.

/** One entry as stored: per-column sums of squared activations, and how many rows were summed. */
export interface RawImatrixEntry {
  name: string;
  sums: Float32Array;
  /** GGUF format: one count per expert (ne0 = sums.length / counts.length); legacy: [ncall] */
  counts: number[];
}

/** lround: round half away from zero (not Math.round, which rounds half up). */
export function lround(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * GGUF imatrix: value / count per expert, with the count first rounded to an integer (lround of the
 * stored float) and then converted back to float; experts never seen get all ones.
 */
export function normalizeGGUFEntry(sums: Float32Array, storedCounts: Float32Array): Float32Array {
  const ncounts = storedCounts.length;
  const ne0 = sums.length / ncounts;
  const out = new Float32Array(sums.length);
  for (let j = 0; j < ncounts; j++) {
    const count = Math.fround(lround(storedCounts[j]));
    if (count > 0) {
      // f32 / f32 computed in double and rounded once is exactly the f32 division
      for (let i = 0; i < ne0; i++) out[j * ne0 + i] = sums[j * ne0 + i] / count;
    } else {
      out.fill(1, j * ne0, (j + 1) * ne0);
    }
  }
  return out;
}

/** Legacy .dat: the stored values are (sum/count)·ncall; divide by ncall (as float) when positive. */
export function normalizeLegacyEntry(sums: Float32Array, ncall: number): Float32Array {
  if (ncall <= 0) return Float32Array.from(sums);
  const divisor = Math.fround(ncall);
  const out = new Float32Array(sums.length);
  for (let i = 0; i < sums.length; i++) out[i] = sums[i] / divisor;
  return out;
}
