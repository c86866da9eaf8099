// Q4_K: super-blocks of 256 = 8 sub-blocks of 32, 4-bit quants with a 6-bit scale and min per
// sub-block (ggml block_q4_K: d, dmin, scales[12], qs[128] = 144 bytes).
// quantizeRowsQ4_K = ggml_quantize_chunk(Q4_K): quantize_row_q4_K_ref without an importance
// vector, quantize_row_q4_K_impl (weighted search) with one.
import { fp16ToFp32 } from "./fp16";
import {
  scaleK4, minK4, quantizeScalesK4Ref, quantizeScalesK4Weighted, requantizeK4, quantizeRowsK,
} from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 144;
const OFF_D: usize = 0, OFF_DMIN: usize = 2, OFF_SCALES: usize = 4, OFF_QS: usize = 16;
const NMAX = 15;

const L = memory.data(QK_K, 16);

/** Requantize every sub-block with its final scale and min, then pack the nibbles. */
function requantizeAndPack(x: usize, y: usize): void {
  requantizeK4(x, y, NMAX, L);
  const q = y + OFF_QS;
  for (let j = 0; j < QK_K; j += 64) {
    for (let l = 0; l < 32; l += 16) {
      const lo = v128.load(L + <usize>(j + l));
      const hi = v128.load(L + <usize>(j + l + 32));
      v128.store(q + <usize>(j / 2 + l), v128.or(lo, i16x8.shl(hi, 4)));
    }
  }
}

/** quantize_row_q4_K_ref: make_qkx2_quants(…, -1, 0.1, 20) with weights av_x + |x|. */
function quantizeBlockRef(x: usize, y: usize): void {
  quantizeScalesK4Ref(x, y, NMAX, -1.0, 0.1, 20);
  requantizeAndPack(x, y);
}

/** quantize_row_q4_K_impl: no MIN(63, …) on the make_qp_quants scales here (unlike Q5_K). */
function quantizeBlockImatrix(x: usize, y: usize, qw: usize): void {
  quantizeScalesK4Weighted(x, y, qw, NMAX, false);
  requantizeAndPack(x, y);
}

export function quantizeRowsQ4_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  quantizeRowsK(src, dst, nrows, ncols, imatrix, BLOCK_BYTES, quantizeBlockRef, quantizeBlockImatrix);
}

export function dequantizeQ4_K(src: usize, dst: usize, k: i32): void {
  const nb = k / QK_K;
  let out = dst;
  for (let i = 0; i < nb; ++i) {
    const x = src + <usize>i * BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x + OFF_D));
    const min = fp16ToFp32(load<u16>(x + OFF_DMIN));
    let q = x + OFF_QS;
    for (let is = 0; is < 8; is += 2) {
      const d1 = d * <f32>scaleK4(is, x + OFF_SCALES);
      const m1 = min * <f32>minK4(is, x + OFF_SCALES);
      const d2 = d * <f32>scaleK4(is + 1, x + OFF_SCALES);
      const m2 = min * <f32>minK4(is + 1, x + OFF_SCALES);
      for (let l = 0; l < 32; ++l) { store<f32>(out, d1 * <f32>(load<u8>(q + <usize>l) & 0xF) - m1); out += 4; }
      for (let l = 0; l < 32; ++l) { store<f32>(out, d2 * <f32>(load<u8>(q + <usize>l) >> 4) - m2); out += 4; }
      q += 32;
    }
  }
}
