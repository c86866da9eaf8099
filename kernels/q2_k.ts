// Q2_K: super-blocks of 256 = 16 sub-blocks of 16, 2-bit quants with a 4-bit scale and min per
// sub-block (ggml block_q2_K: scales[16], qs[64], d, dmin = 84 bytes).
// quantizeRowsQ2_K = ggml_quantize_chunk(Q2_K): quantize_row_q2_K_ref without an importance
// vector, quantize_row_q2_K_impl (weighted search) with one.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import {
  nearestInt, makeQpQuants, transposeX4, levelsOfLaneX4, makeQkxQuantsX4, requantizeAsymX16,
  sumOfSquares, importanceWeightsX4, quantizeRowsK,
} from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 84;
const OFF_SCALES: usize = 0, OFF_QS: usize = 16, OFF_D: usize = 80, OFF_DMIN: usize = 82;

const L = memory.data(QK_K, 16);
const Ls = memory.data(16);
const Lm = memory.data(16);
// transposed sub-block data: four groups of four sub-blocks (one per f32x4 lane), 16 v128 each
const XT = memory.data(64 * 16, 16);
const WT = memory.data(64 * 16, 16);
const QWT = memory.data(64 * 16, 16);
const LT = memory.data(64 * 16, 16);
const scales = memory.data(16 * 4, 16);
const mins = memory.data(16 * 4, 16);
const sw = memory.data(16 * 4, 16);

@inline function ldf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
@inline function ldv(p: usize, i: i32): v128 { return v128.load(p + (<usize>i << 4)); }
@inline function stv(p: usize, i: i32, v: v128): void { v128.store(p + (<usize>i << 4), v); }

/** Requantize each sub-block with its final scale dAll*sc and min mAll*m, then pack 4 quants a byte. */
function requantizeAndPack(x: usize, y: usize, dAll: f32, mAll: f32): void {
  for (let j = 0; j < 16; ++j) {
    const sc = <i32>load<u8>(y + OFF_SCALES + <usize>j);
    const d = dAll * <f32>(sc & 0xF);
    if (d == 0) {
      // skipped by the reference: the sub-block keeps its search levels
      levelsOfLaneX4(LT + <usize>((j >> 2) * 256), 16, j & 3, L + <usize>(16 * j));
      continue;
    }
    const m = mAll * <f32>(sc >> 4);
    requantizeAsymX16(x + <usize>(64 * j), 16, d, m, 3, L + <usize>(16 * j));
  }
  packQuants2(y + OFF_QS);
}

@inline
function packQuants2(q: usize): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l += 16) {
      const p = L + <usize>(j + l);
      const v = v128.or(
        v128.or(v128.load(p), i16x8.shl(v128.load(p, 32), 2)),
        v128.or(i16x8.shl(v128.load(p, 64), 4), i16x8.shl(v128.load(p, 96), 6)),
      );
      v128.store(q + <usize>(j / 4 + l), v);
    }
  }
}

/** quantize_row_q2_K_ref's sub-block search: weights |x|, make_qkx2_quants(16, 3, …, -0.5, 0.1, 15, mad). */
function searchRef(x: usize): void {
  for (let g = 0; g < 4; ++g) {
    const off = <usize>(g * 256);
    const xT = XT + off, wT = WT + off;
    transposeX4(x + off, 16, xT);
    for (let l = 0; l < 16; ++l) stv(wT, l, f32x4.abs(ldv(xT, l)));
    makeQkxQuantsX4(16, 3, xT, wT, LT + off, scales + <usize>(g * 16), mins + <usize>(g * 16), -0.5, 0.1, 15, true);
  }
}

/** quantize_row_q2_K_impl's sub-block search: weights qw*sqrt(sigma2 + x^2), make_qkx3_quants(16, 3, …, -0.9, 0.05, 36). */
function searchImatrix(x: usize, qw: usize): void {
  const sigma2 = f32x4.splat(sumOfSquares(x, QK_K) / <f32>QK_K);
  for (let g = 0; g < 4; ++g) {
    const off = <usize>(g * 256);
    importanceWeightsX4(x + off, qw + off, 16, sigma2, XT + off, QWT + off, WT + off, sw + <usize>(g * 16));
    makeQkxQuantsX4(16, 3, XT + off, WT + off, LT + off, scales + <usize>(g * 16), mins + <usize>(g * 16), -0.9, 0.05, 36, false);
  }
}

function quantizeBlockRef(x: usize, y: usize): void {
  const q4scale: f32 = 15;
  let maxScale: f32 = 0;
  let maxMin: f32 = 0;
  searchRef(x);
  for (let j = 0; j < 16; ++j) {
    const scale = ldf(scales, j);
    if (scale > maxScale) maxScale = scale;
    const min = ldf(mins, j);
    if (min > maxMin) maxMin = min;
  }
  if (maxScale > 0) {
    const iscale = q4scale / maxScale;
    for (let j = 0; j < 16; ++j) store<u8>(y + OFF_SCALES + <usize>j, <u8>nearestInt(iscale * ldf(scales, j)));
    store<u16>(y + OFF_D, fp32ToFp16(maxScale / q4scale));
  } else {
    memory.fill(y + OFF_SCALES, 0, 16);
    store<u16>(y + OFF_D, fp32ToFp16(0));
  }
  if (maxMin > 0) {
    const iscale = q4scale / maxMin;
    for (let j = 0; j < 16; ++j) {
      const l = nearestInt(iscale * ldf(mins, j));
      const p = y + OFF_SCALES + <usize>j;
      store<u8>(p, <u8>(<i32>load<u8>(p) | (l << 4)));
    }
    store<u16>(y + OFF_DMIN, fp32ToFp16(maxMin / q4scale));
  } else {
    store<u16>(y + OFF_DMIN, fp32ToFp16(0));
  }
  requantizeAndPack(x, y, fp16ToFp32(load<u16>(y + OFF_D)), fp16ToFp32(load<u16>(y + OFF_DMIN)));
}

function quantizeBlockImatrix(x: usize, y: usize, qw: usize): void {
  searchImatrix(x, qw);
  const dm = makeQpQuants(16, 15, scales, Ls, sw);
  const mm = makeQpQuants(16, 15, mins, Lm, sw);
  store<u16>(y + OFF_D, fp32ToFp16(dm));
  store<u16>(y + OFF_DMIN, fp32ToFp16(mm));
  for (let j = 0; j < 16; ++j) {
    store<u8>(y + OFF_SCALES + <usize>j, load<u8>(Ls + <usize>j) | (load<u8>(Lm + <usize>j) << 4));
  }
  requantizeAndPack(x, y, fp16ToFp32(load<u16>(y + OFF_D)), fp16ToFp32(load<u16>(y + OFF_DMIN)));
}

export function quantizeRowsQ2_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  quantizeRowsK(src, dst, nrows, ncols, imatrix, BLOCK_BYTES, quantizeBlockRef, quantizeBlockImatrix);
}

export function dequantizeQ2_K(src: usize, dst: usize, k: i32): void {
  const nb = k / QK_K;
  let out = dst;
  for (let i = 0; i < nb; ++i) {
    const x = src + <usize>i * BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x + OFF_D));
    const min = fp16ToFp32(load<u16>(x + OFF_DMIN));
    let q = x + OFF_QS;
    let is: usize = 0;
    for (let n = 0; n < QK_K; n += 128) {
      for (let shift: u32 = 0; shift < 8; shift += 2) {
        for (let half: usize = 0; half < 32; half += 16) {
          const sc = <u32>load<u8>(x + OFF_SCALES + is++);
          const dl = d * <f32>(sc & 0xF);
          const ml = min * <f32>(sc >> 4);
          for (let l: usize = 0; l < 16; ++l) {
            store<f32>(out, dl * <f32>((<u32>load<u8>(q + half + l) >> shift) & 3) - ml);
            out += 4;
          }
        }
      }
      q += 32;
    }
  }
}
