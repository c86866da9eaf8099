// Q4_K: super-blocks of 256 = 8 sub-blocks of 32, 4-bit quants with a 6-bit scale and min per
// sub-block (ggml block_q4_K: d, dmin, scales[12], qs[128] = 144 bytes).
// quantizeRowsQ4_K = ggml_quantize_chunk(Q4_K): quantize_row_q4_K_ref without an importance
// vector, quantize_row_q4_K_impl (weighted search) with one.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import {
  nearestInt, makeQpQuants, scaleK4, minK4, packScaleMinK4,
  transposeX4, levelsOfLaneX4, makeQkxQuantsX4, requantizeAsymX16,
} from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 144;
const OFF_D: usize = 0, OFF_DMIN: usize = 2, OFF_SCALES: usize = 4, OFF_QS: usize = 16;

const L = memory.data(QK_K, 16);
const Ls = memory.data(8);
const Lm = memory.data(8);
// transposed sub-block data: two groups of four sub-blocks (one per f32x4 lane), 32 v128 each
const XT = memory.data(64 * 16, 16);
const WT = memory.data(64 * 16, 16);
const QWT = memory.data(64 * 16, 16);
const LT = memory.data(64 * 16, 16);
const scales = memory.data(8 * 4, 16);
const mins = memory.data(8 * 4, 16);
const sw = memory.data(8 * 4, 16);

@inline function ldf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
@inline function ldv(p: usize, i: i32): v128 { return v128.load(p + (<usize>i << 4)); }
@inline function stv(p: usize, i: i32, v: v128): void { v128.store(p + (<usize>i << 4), v); }

/** Requantize every sub-block with its final (fp16-rounded) scale and min, then pack the nibbles. */
function requantizeAndPack(x: usize, y: usize): void {
  const dAll = fp16ToFp32(load<u16>(y + OFF_D));
  const mAll = fp16ToFp32(load<u16>(y + OFF_DMIN));
  for (let j = 0; j < 8; ++j) {
    const d = dAll * <f32>scaleK4(j, y + OFF_SCALES);
    if (d == 0) {
      // skipped by the reference: the sub-block keeps its search levels
      levelsOfLaneX4(LT + <usize>((j >> 2) * 512), 32, j & 3, L + <usize>(32 * j));
      continue;
    }
    const dm = mAll * <f32>minK4(j, y + OFF_SCALES);
    requantizeAsymX16(x + <usize>(128 * j), 32, d, dm, 15, L + <usize>(32 * j));
  }
  const q = y + OFF_QS;
  for (let j = 0; j < QK_K; j += 64) {
    for (let l = 0; l < 32; l += 16) {
      const lo = v128.load(L + <usize>(j + l));
      const hi = v128.load(L + <usize>(j + l + 32));
      v128.store(q + <usize>(j / 2 + l), v128.or(lo, i16x8.shl(hi, 4)));
    }
  }
}

/** The sub-block search of quantize_row_q4_K_ref: weights av_x + |x|, make_qkx2_quants(…, -1, 0.1, 20). */
function searchRef(x: usize): void {
  for (let g = 0; g < 2; ++g) {
    const off = <usize>(g * 512);
    const xT = XT + off, wT = WT + off;
    transposeX4(x + off, 32, xT);
    let sumX2 = f32x4.splat(0);
    for (let l = 0; l < 32; ++l) { const v = ldv(xT, l); sumX2 = f32x4.add(sumX2, f32x4.mul(v, v)); }
    const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(32)));
    for (let l = 0; l < 32; ++l) stv(wT, l, f32x4.add(avX, f32x4.abs(ldv(xT, l))));
    makeQkxQuantsX4(32, 15, xT, wT, LT + off, scales + <usize>(g * 16), mins + <usize>(g * 16), -1.0, 0.1, 20, false);
  }
}

/** The sub-block search of quantize_row_q4_K_impl: weights qw*sqrt(sigma2 + x^2), make_qkx3_quants(…, -0.9, 0.05, 36). */
function searchImatrix(x: usize, qw: usize): void {
  let sumX2: f32 = 0;
  for (let l = 0; l < QK_K; ++l) sumX2 += ldf(x, l) * ldf(x, l);
  const sigma2 = f32x4.splat(<f32>2 * sumX2 / <f32>QK_K);
  for (let g = 0; g < 2; ++g) {
    const off = <usize>(g * 512);
    const xT = XT + off, wT = WT + off, qwT = QWT + off;
    transposeX4(x + off, 32, xT);
    transposeX4(qw + off, 32, qwT);
    let sumw = f32x4.splat(0);
    for (let l = 0; l < 32; ++l) {
      const v = ldv(xT, l);
      const w = f32x4.mul(ldv(qwT, l), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v))));
      stv(wT, l, w);
      sumw = f32x4.add(sumw, w);
    }
    v128.store(sw + <usize>(g * 16), sumw);
    makeQkxQuantsX4(32, 15, xT, wT, LT + off, scales + <usize>(g * 16), mins + <usize>(g * 16), -0.9, 0.05, 36, false);
  }
}

function quantizeBlockRef(x: usize, y: usize): void {
  searchRef(x);
  let maxScale: f32 = 0;
  let maxMin: f32 = 0;
  for (let j = 0; j < 8; ++j) {
    const scale = ldf(scales, j);
    if (scale > maxScale) maxScale = scale;
    const min = ldf(mins, j);
    if (min > maxMin) maxMin = min;
  }
  const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0;
  const invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0;
  for (let j = 0; j < 8; ++j) {
    let ls = nearestInt(invScale * ldf(scales, j)) & 0xFF;
    let lm = nearestInt(invMin * ldf(mins, j)) & 0xFF;
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    packScaleMinK4(j, y + OFF_SCALES, ls, lm);
  }
  store<u16>(y + OFF_D, fp32ToFp16(maxScale / <f32>63));
  store<u16>(y + OFF_DMIN, fp32ToFp16(maxMin / <f32>63));
  requantizeAndPack(x, y);
}

function quantizeBlockImatrix(x: usize, y: usize, qw: usize): void {
  searchImatrix(x, qw);
  const dBlock = makeQpQuants(8, 63, scales, Ls, sw);
  const mBlock = makeQpQuants(8, 63, mins, Lm, sw);
  for (let j = 0; j < 8; ++j) {
    // no MIN(63, …) here in the reference (unlike Q5_K)
    packScaleMinK4(j, y + OFF_SCALES, <i32>load<u8>(Ls + <usize>j), <i32>load<u8>(Lm + <usize>j));
  }
  store<u16>(y + OFF_D, fp32ToFp16(dBlock));
  store<u16>(y + OFF_DMIN, fp32ToFp16(mBlock));
  requantizeAndPack(x, y);
}

export function quantizeRowsQ4_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nb = ncols / QK_K;
  for (let r = 0; r < nrows; ++r) {
    for (let i = 0; i < nb; ++i) {
      const x = src + ((<usize>r * <usize>ncols + <usize>(i * QK_K)) << 2);
      const y = dst + (<usize>r * <usize>nb + <usize>i) * BLOCK_BYTES;
      if (imatrix) quantizeBlockImatrix(x, y, imatrix + (<usize>(i * QK_K) << 2));
      else quantizeBlockRef(x, y);
    }
  }
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
