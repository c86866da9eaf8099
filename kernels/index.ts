// WebAssembly entry points. Memory is owned by the JS side (src/quant/kernels.ts): it places the
// input rows, the importance vector and the output buffer in linear memory after heapBase() and
// calls quantize()/dequantize() with pointers. Kernels allocate nothing; their scratch space is
// static (memory.data) so a call costs only the arithmetic.
//
// One file per quant type (q4_k.ts, iq4.ts, …), each exporting
//   quantizeRows<T>(src, dst, nrows, ncols, imatrix)   imatrix = 0 when absent
//   dequantize<T>(src, dst, k)                          k = total elements (whole blocks)
// and one entry per type in the two switch tables below.
import { quantizeRowsF32, quantizeRowsF16, quantizeRowsBF16, dequantizeF32, dequantizeF16, dequantizeBF16 } from "./float";
import { quantizeRowsQ4_0, dequantizeQ4_0 } from "./q4_0";
import { quantizeRowsQ4_1, dequantizeQ4_1 } from "./q4_1";
import { quantizeRowsQ5_0, dequantizeQ5_0 } from "./q5_0";
import { quantizeRowsQ5_1, dequantizeQ5_1 } from "./q5_1";
import { quantizeRowsQ8_0, dequantizeQ8_0 } from "./q8_0";
import { quantizeRowsQ2_K, dequantizeQ2_K } from "./q2_k";
import { quantizeRowsQ3_K, dequantizeQ3_K } from "./q3_k";
import { quantizeRowsQ4_K, dequantizeQ4_K } from "./q4_k";
import { quantizeRowsQ5_K, dequantizeQ5_K } from "./q5_k";
import { quantizeRowsQ6_K, dequantizeQ6_K } from "./q6_k";
import { quantizeRowsIQ4_NL, dequantizeIQ4_NL, quantizeRowsIQ4_XS, dequantizeIQ4_XS } from "./iq4";
import { quantizeRowsIQ2_XXS, dequantizeIQ2_XXS, quantizeRowsIQ2_XS, dequantizeIQ2_XS, quantizeRowsIQ2_S, dequantizeIQ2_S } from "./iq2";
import { quantizeRowsTQ1_0, dequantizeTQ1_0, quantizeRowsTQ2_0, dequantizeTQ2_0 } from "./ternary";
import { quantizeRowsMXFP4, dequantizeMXFP4, quantizeRowsNVFP4, dequantizeNVFP4 } from "./fp4";
import { quantizeRowsQ1_0, dequantizeQ1_0, quantizeRowsQ2_0, dequantizeQ2_0 } from "./q1_q2";
import { quantizeRowsIQ1_S, dequantizeIQ1_S, quantizeRowsIQ1_M, dequantizeIQ1_M } from "./iq1";
import { quantizeRowsIQ3_XXS, dequantizeIQ3_XXS, quantizeRowsIQ3_S, dequantizeIQ3_S } from "./iq3";

// ggml type ids (ggml.h)
const F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8;
const Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30;
const IQ2_XXS = 16, IQ2_XS = 17, IQ2_S = 22;
const IQ1_S = 19, IQ1_M = 29;
const IQ3_XXS = 18, IQ3_S = 21;
const TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42;

export const ERR_UNSUPPORTED: i32 = -1;
/** ERR_REFERENCE_ABORTS - r: ggml's quantizer asserts (aborts the process) on row r of the batch. */
export const ERR_REFERENCE_ABORTS: i32 = -2;

/** A kernel's 1 + first row ggml would abort on (0: none) as quantize()'s return code. */
function abortsAt(r: i32): i32 {
  return r == 0 ? 0 : ERR_REFERENCE_ABORTS - (r - 1);
}

/** First byte free for the caller's buffers. */
export function heapBase(): usize {
  return __heap_base;
}

/** 1 + index of the first row holding a NaN or ±Inf, or 0 when all rows are finite. */
export function firstNonFiniteRow(src: usize, nrows: i32, ncols: i32): i32 {
  // exponent all ones <=> NaN or Inf; four lanes at a time (this scan touches every input float)
  const expMask = i32x4.splat(0x7F800000);
  for (let r = 0; r < nrows; r++) {
    const row = src + (<usize>r * <usize>ncols) * 4;
    let bad = i32x4.splat(0);
    let c = 0;
    for (; c + 4 <= ncols; c += 4) bad = v128.or(bad, i32x4.eq(v128.and(v128.load(row + (<usize>c << 2)), expMask), expMask));
    if (v128.any_true(bad)) return r + 1;
    for (; c < ncols; c++) {
      if ((load<u32>(row + (<usize>c << 2)) & 0x7F800000) == 0x7F800000) return r + 1;
    }
  }
  return 0;
}

/**
 * Quantize nrows rows of ncols f32 values at src into dst.
 * Returns 0 on success, 1 + row index of the first non-finite row (nothing meaningful written),
 * ERR_UNSUPPORTED for a type without a kernel, or ERR_REFERENCE_ABORTS - r when ggml's quantizer
 * would abort on row r (a GGML_ASSERT of its lattice search, whose sums overflow).
 */
export function quantize(type: i32, src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): i32 {
  const bad = firstNonFiniteRow(src, nrows, ncols);
  if (bad != 0) return bad;
  switch (type) {
    case F32: quantizeRowsF32(src, dst, nrows, ncols, imatrix); break;
    case F16: quantizeRowsF16(src, dst, nrows, ncols, imatrix); break;
    case BF16: quantizeRowsBF16(src, dst, nrows, ncols, imatrix); break;
    case Q4_0: quantizeRowsQ4_0(src, dst, nrows, ncols, imatrix); break;
    case Q4_1: quantizeRowsQ4_1(src, dst, nrows, ncols, imatrix); break;
    case Q5_0: quantizeRowsQ5_0(src, dst, nrows, ncols, imatrix); break;
    case Q5_1: quantizeRowsQ5_1(src, dst, nrows, ncols, imatrix); break;
    case Q8_0: quantizeRowsQ8_0(src, dst, nrows, ncols, imatrix); break;
    case Q2_K: quantizeRowsQ2_K(src, dst, nrows, ncols, imatrix); break;
    case Q3_K: quantizeRowsQ3_K(src, dst, nrows, ncols, imatrix); break;
    case Q4_K: quantizeRowsQ4_K(src, dst, nrows, ncols, imatrix); break;
    case Q5_K: quantizeRowsQ5_K(src, dst, nrows, ncols, imatrix); break;
    case Q6_K: quantizeRowsQ6_K(src, dst, nrows, ncols, imatrix); break;
    case IQ4_NL: quantizeRowsIQ4_NL(src, dst, nrows, ncols, imatrix); break;
    case IQ4_XS: quantizeRowsIQ4_XS(src, dst, nrows, ncols, imatrix); break;
    case IQ2_XXS: quantizeRowsIQ2_XXS(src, dst, nrows, ncols, imatrix); break;
    case IQ2_XS: quantizeRowsIQ2_XS(src, dst, nrows, ncols, imatrix); break;
    case IQ2_S: quantizeRowsIQ2_S(src, dst, nrows, ncols, imatrix); break;
    case TQ1_0: quantizeRowsTQ1_0(src, dst, nrows, ncols, imatrix); break;
    case TQ2_0: quantizeRowsTQ2_0(src, dst, nrows, ncols, imatrix); break;
    case MXFP4: quantizeRowsMXFP4(src, dst, nrows, ncols, imatrix); break;
    case NVFP4: quantizeRowsNVFP4(src, dst, nrows, ncols, imatrix); break;
    case Q1_0: quantizeRowsQ1_0(src, dst, nrows, ncols, imatrix); break;
    case Q2_0: quantizeRowsQ2_0(src, dst, nrows, ncols, imatrix); break;
    case IQ1_S: return imatrix != 0 ? quantizeRowsIQ1_S(src, dst, nrows, ncols, imatrix) : ERR_UNSUPPORTED;
    case IQ1_M: return quantizeRowsIQ1_M(src, dst, nrows, ncols, imatrix);
    case IQ3_XXS: return abortsAt(quantizeRowsIQ3_XXS(src, dst, nrows, ncols, imatrix));
    case IQ3_S: return abortsAt(quantizeRowsIQ3_S(src, dst, nrows, ncols, imatrix));
    default: return ERR_UNSUPPORTED;
  }
  return 0;
}

/** Dequantize k elements (whole blocks) of the given type at src into f32 at dst. 0 or ERR_UNSUPPORTED. */
export function dequantize(type: i32, src: usize, dst: usize, k: i32): i32 {
  switch (type) {
    case F32: dequantizeF32(src, dst, k); break;
    case F16: dequantizeF16(src, dst, k); break;
    case BF16: dequantizeBF16(src, dst, k); break;
    case Q4_0: dequantizeQ4_0(src, dst, k); break;
    case Q4_1: dequantizeQ4_1(src, dst, k); break;
    case Q5_0: dequantizeQ5_0(src, dst, k); break;
    case Q5_1: dequantizeQ5_1(src, dst, k); break;
    case Q8_0: dequantizeQ8_0(src, dst, k); break;
    case Q2_K: dequantizeQ2_K(src, dst, k); break;
    case Q3_K: dequantizeQ3_K(src, dst, k); break;
    case Q4_K: dequantizeQ4_K(src, dst, k); break;
    case Q5_K: dequantizeQ5_K(src, dst, k); break;
    case Q6_K: dequantizeQ6_K(src, dst, k); break;
    case IQ4_NL: dequantizeIQ4_NL(src, dst, k); break;
    case IQ4_XS: dequantizeIQ4_XS(src, dst, k); break;
    case IQ2_XXS: dequantizeIQ2_XXS(src, dst, k); break;
    case IQ2_XS: dequantizeIQ2_XS(src, dst, k); break;
    case IQ2_S: dequantizeIQ2_S(src, dst, k); break;
    case TQ1_0: dequantizeTQ1_0(src, dst, k); break;
    case TQ2_0: dequantizeTQ2_0(src, dst, k); break;
    case MXFP4: dequantizeMXFP4(src, dst, k); break;
    case NVFP4: dequantizeNVFP4(src, dst, k); break;
    case Q1_0: dequantizeQ1_0(src, dst, k); break;
    case Q2_0: dequantizeQ2_0(src, dst, k); break;
    case IQ1_S: dequantizeIQ1_S(src, dst, k); break;
    case IQ1_M: dequantizeIQ1_M(src, dst, k); break;
    case IQ3_XXS: dequantizeIQ3_XXS(src, dst, k); break;
    case IQ3_S: dequantizeIQ3_S(src, dst, k); break;
    default: return ERR_UNSUPPORTED;
  }
  return 0;
}

export { packLogitsRow, kldRow, expfRow, logProbAt } from "./logits";
export { latticeMap, latticeNeighbours, latticePositions } from "./iq-neighbours";
export { accumulateSquares } from "./imatrix";
