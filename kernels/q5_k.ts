// Q5_K: super-blocks of 256 = 8 sub-blocks of 32, 5-bit quants with a 6-bit scale and min per
// sub-block (ggml block_q5_K: d, dmin, scales[12], qh[32], qs[128] = 176 bytes).
// quantizeRowsQ5_K = ggml_quantize_chunk(Q5_K): quantize_row_q5_K_ref without an importance
// vector, quantize_row_q5_K_impl (weighted search) with one.
import { fp16ToFp32 } from "./fp16";
import {
  scaleK4, minK4, quantizeScalesK4Ref, quantizeScalesK4Weighted, requantizeK4, quantizeRowsK,
} from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 176;
const OFF_D: usize = 0, OFF_DMIN: usize = 2, OFF_SCALES: usize = 4, OFF_QH: usize = 16, OFF_QS: usize = 48;
const NMAX = 31;

const L = memory.data(QK_K, 16);

/** Requantize every sub-block with its final scale and min, then pack low nibbles and high bits. */
function requantizeAndPack(x: usize, y: usize): void {
  requantizeK4(x, y, NMAX, L);
  // quant pair n (sub-blocks 2n, 2n+1): low nibbles into qs, the 16s bit into qh bits 2n, 2n+1
  const fifteen = i8x16.splat(15);
  const sixteen = i8x16.splat(16);
  for (let h = 0; h < 32; h += 16) {
    let qh = i8x16.splat(0);
    for (let n = 0; n < 4; ++n) {
      const l1 = v128.load(L + <usize>(64 * n + h));
      const l2 = v128.load(L + <usize>(64 * n + h + 32));
      const hi1 = i8x16.gt_u(l1, fifteen); // 0xFF where l1 > 15
      const hi2 = i8x16.gt_u(l2, fifteen);
      qh = v128.or(qh, v128.and(hi1, i32x4.splat(0x01010101 << (2 * n))));
      qh = v128.or(qh, v128.and(hi2, i32x4.splat(0x02020202 << (2 * n))));
      const lo1 = i8x16.sub(l1, v128.and(hi1, sixteen));
      const lo2 = i8x16.sub(l2, v128.and(hi2, sixteen));
      v128.store(y + OFF_QS + <usize>(32 * n + h), v128.or(lo1, i16x8.shl(lo2, 4)));
    }
    v128.store(y + OFF_QH + <usize>h, qh);
  }
}

/** quantize_row_q5_K_ref: make_qkx2_quants(…, -0.5, 0.1, 15) with weights av_x + |x|. */
function quantizeBlockRef(x: usize, y: usize): void {
  quantizeScalesK4Ref(x, y, NMAX, -0.5, 0.1, 15);
  requantizeAndPack(x, y);
}

/** quantize_row_q5_K_impl: the make_qp_quants scales are clamped with MIN(63, …) here (unlike Q4_K). */
function quantizeBlockImatrix(x: usize, y: usize, qw: usize): void {
  quantizeScalesK4Weighted(x, y, qw, NMAX, true);
  requantizeAndPack(x, y);
}

export function quantizeRowsQ5_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  quantizeRowsK(src, dst, nrows, ncols, imatrix, BLOCK_BYTES, quantizeBlockRef, quantizeBlockImatrix);
}

export function dequantizeQ5_K(src: usize, dst: usize, k: i32): void {
  const nb = k / QK_K;
  let out = dst;
  for (let i = 0; i < nb; ++i) {
    const x = src + <usize>i * BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x + OFF_D));
    const min = fp16ToFp32(load<u16>(x + OFF_DMIN));
    let ql = x + OFF_QS;
    const qh = x + OFF_QH;
    let u1: u32 = 1, u2: u32 = 2;
    for (let is = 0; is < 8; is += 2) {
      const d1 = d * <f32>scaleK4(is, x + OFF_SCALES);
      const m1 = min * <f32>minK4(is, x + OFF_SCALES);
      const d2 = d * <f32>scaleK4(is + 1, x + OFF_SCALES);
      const m2 = min * <f32>minK4(is + 1, x + OFF_SCALES);
      for (let l = 0; l < 32; ++l) {
        const q = (<u32>load<u8>(ql + <usize>l) & 0xF) + ((<u32>load<u8>(qh + <usize>l) & u1) ? 16 : 0);
        store<f32>(out, d1 * <f32>q - m1); out += 4;
      }
      for (let l = 0; l < 32; ++l) {
        const q = (<u32>load<u8>(ql + <usize>l) >> 4) + ((<u32>load<u8>(qh + <usize>l) & u2) ? 16 : 0);
        store<f32>(out, d2 * <f32>q - m2); out += 4;
      }
      ql += 32;
      u1 <<= 2; u2 <<= 2;
    }
  }
}
