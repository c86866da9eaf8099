// Q5_1: blocks of 32 as {f16 d, f16 m, u32 qh, u8 qs[16]}; x ≈ q*d + m with 5-bit q. Without imatrix:
// quantize_row_q5_1_ref (d = (max-min)/31, q = (uint8_t)((x-min)/d + 0.5), no clamp). With imatrix:
// quantize_row_q5_1_impl (make_qkx3_quants, nmax 31).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import {
  blockMax, blockMin, isPlainScale, blockMinMax, blockWeights, castToInt8x4, fifthBits, L32, LAUX32, MIN_OUT, packBytes, packQ5, rowSigma2, WEIGHT32,
} from "./legacy-common";
import { makeQkx3Quants } from "./quant-common";

const BLOCK_BYTES: usize = 24;

@inline
function quantizeElements(v: v128, min: v128, id: v128): v128 {
  // (uint8_t) keeps the same low byte as (int8_t)
  const q = castToInt8x4(f32x4.add(f32x4.mul(f32x4.sub(v, min), id), f32x4.splat(0.5)));
  return v128.and(q, i32x4.splat(0xFF));
}

// When d is a normal float (x-min)/d is in [0, nmax] (within rounding): truncation alone gives the cast.
@inline
function quantizeElementsPlain(v: v128, min: v128, id: v128): v128 {
  return i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v, min), id), f32x4.splat(0.5))), i32x4.splat(31));
}

@inline
function quantizeHalf(x: usize, mv: v128, idv: v128, plain: bool): v128 {
  if (plain) {
    return packBytes(
      quantizeElementsPlain(v128.load(x), mv, idv), quantizeElementsPlain(v128.load(x, 16), mv, idv),
      quantizeElementsPlain(v128.load(x, 32), mv, idv), quantizeElementsPlain(v128.load(x, 48), mv, idv));
  }
  return packBytes(
    quantizeElements(v128.load(x), mv, idv), quantizeElements(v128.load(x, 16), mv, idv),
    quantizeElements(v128.load(x, 32), mv, idv), quantizeElements(v128.load(x, 48), mv, idv));
}

function quantizeBlock(x: usize, y: usize): void {
  blockMinMax(x);
  const min = blockMin;
  const d: f32 = (blockMax - min) / <f32>31;
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  store<u16>(y, fp32ToFp16(d));
  store<u16>(y + 2, fp32ToFp16(min));
  const idv = f32x4.splat(id);
  const mv = f32x4.splat(min);
  const plain = isPlainScale(d);
  const lo = quantizeHalf(x, mv, idv, plain);
  const hi = quantizeHalf(x + 64, mv, idv, plain);
  store<u32>(y + 4, fifthBits(lo, hi));
  v128.store(y + 8, v128.or(v128.and(lo, i8x16.splat(0x0F)), i8x16.shl(hi, 4)));
}

// quantize_row_q5_1_impl for one row.
function quantizeRowWeighted(x: usize, y: usize, ncols: i32, qw: usize): void {
  const sigma2 = rowSigma2(x, ncols);
  const nblocks = ncols >> 5;
  for (let b = 0; b < nblocks; b++) {
    const xb = x + (<usize>b << 7);
    const yb = y + <usize>b * BLOCK_BYTES;
    blockWeights(xb, qw + (<usize>b << 7), sigma2, WEIGHT32);
    const d = makeQkx3Quants(32, 31, xb, WEIGHT32, L32, MIN_OUT, LAUX32, -0.9, 0.05, 36, false);
    store<u16>(yb, fp32ToFp16(d));
    store<u16>(yb + 2, fp32ToFp16(-load<f32>(MIN_OUT)));
    packQ5(L32, yb + 4, yb + 8);
  }
}

export function quantizeRowsQ5_1(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix != 0) {
    const rowBytes = <usize>(ncols >> 5) * BLOCK_BYTES;
    for (let r = 0; r < nrows; r++) quantizeRowWeighted(src + ((<usize>r * <usize>ncols) << 2), dst + <usize>r * rowBytes, ncols, imatrix);
    return;
  }
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  for (let b: usize = 0; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
}

export function dequantizeQ5_1(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    const m = fp16ToFp32(load<u16>(x + 2));
    const qh = load<u32>(x + 4);
    for (let j: u32 = 0; j < 16; j++) {
      const q = <i32>load<u8>(x + 8 + j);
      const h0 = <i32>(((qh >> j) << 4) & 0x10);
      const h1 = <i32>((qh >> (j + 12)) & 0x10);
      store<f32>(y + (j << 2), <f32>((q & 0x0F) | h0) * d + m);
      store<f32>(y + ((j + 16) << 2), <f32>((q >> 4) | h1) * d + m);
    }
  }
}
