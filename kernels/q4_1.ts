// Q4_1: blocks of 32 as {f16 d, f16 m, u8 qs[16]}; x ≈ q*d + m. Without imatrix:
// quantize_row_q4_1_ref (d = (max-min)/15, q = min(15, (int8_t)((x-min)/d + 0.5))). With imatrix:
// quantize_row_q4_1_impl (make_qkx3_quants, nmax 15).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import {
  blockMax, blockMin, isPlainScale, blockMinMax, blockWeights, castToInt8x4, L32, LAUX32, MIN_OUT, packBytes, packNibbles, rowSigma2, WEIGHT32,
} from "./legacy-common";
import { makeQkx3Quants } from "./quant-common";

const BLOCK_BYTES: usize = 20;

@inline
function quantizeElements(v: v128, min: v128, id: v128): v128 {
  const q = castToInt8x4(f32x4.add(f32x4.mul(f32x4.sub(v, min), id), f32x4.splat(0.5)));
  return v128.and(i32x4.min_s(q, i32x4.splat(15)), i32x4.splat(0xFF));
}

// When d is a normal float (x-min)/d is in [0, nmax] (within rounding): truncation alone gives the cast.
@inline
function quantizeElementsPlain(v: v128, min: v128, id: v128): v128 {
  return i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v, min), id), f32x4.splat(0.5))), i32x4.splat(15));
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
  const d: f32 = (blockMax - min) / <f32>15;
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  store<u16>(y, fp32ToFp16(d));
  store<u16>(y + 2, fp32ToFp16(min));
  const idv = f32x4.splat(id);
  const mv = f32x4.splat(min);
  const plain = isPlainScale(d);
  const lo = quantizeHalf(x, mv, idv, plain);
  const hi = quantizeHalf(x + 64, mv, idv, plain);
  v128.store(y + 4, v128.or(lo, i8x16.shl(hi, 4)));
}

// quantize_row_q4_1_impl for one row.
function quantizeRowWeighted(x: usize, y: usize, ncols: i32, qw: usize): void {
  const sigma2 = rowSigma2(x, ncols);
  const nblocks = ncols >> 5;
  for (let b = 0; b < nblocks; b++) {
    const xb = x + (<usize>b << 7);
    const yb = y + <usize>b * BLOCK_BYTES;
    blockWeights(xb, qw + (<usize>b << 7), sigma2, WEIGHT32);
    const d = makeQkx3Quants(32, 15, xb, WEIGHT32, L32, MIN_OUT, LAUX32, -0.9, 0.05, 36, false);
    store<u16>(yb, fp32ToFp16(d));
    store<u16>(yb + 2, fp32ToFp16(-load<f32>(MIN_OUT)));
    packNibbles(L32, yb + 4);
  }
}

export function quantizeRowsQ4_1(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix != 0) {
    const rowBytes = <usize>(ncols >> 5) * BLOCK_BYTES;
    for (let r = 0; r < nrows; r++) quantizeRowWeighted(src + ((<usize>r * <usize>ncols) << 2), dst + <usize>r * rowBytes, ncols, imatrix);
    return;
  }
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  for (let b: usize = 0; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
}

export function dequantizeQ4_1(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    const m = fp16ToFp32(load<u16>(x + 2));
    for (let j: usize = 0; j < 16; j++) {
      const q = <i32>load<u8>(x + 4 + j);
      store<f32>(y + (j << 2), <f32>(q & 0x0F) * d + m);
      store<f32>(y + ((j + 16) << 2), <f32>(q >> 4) * d + m);
    }
  }
}
