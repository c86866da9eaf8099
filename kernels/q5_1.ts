// Q5_1: blocks of 32 as {f16 d, f16 m, u32 qh, u8 qs[16]}; x ≈ q*d + m with 5-bit q. Without imatrix:
// quantize_row_q5_1_ref (d = (max-min)/31, q = (uint8_t)((x-min)/d + 0.5), no clamp). With imatrix:
// quantize_row_q5_1_impl (make_qkx3_quants, nmax 31).
import { fp16ToFp32, fp32ToFp16, fp32ToFp16x4 } from "./fp16";
import {
  beginWeightedRows, blockMax, blockMin, blockMinMax, GROUP_MAX, GROUP_MIN, groupMinMax, storeHalves4, fifthBits, gatherBlocksX4, isPlainScale, laneF32, LEVELS4, levelsToBytesX4,
  LT4, MIN4, quantizeHalfBlock, packQ5, SCALE4, WT4, XT4,
} from "./legacy-common";
import { makeQkxQuantsX4 } from "./quant-common";

const BLOCK_BYTES: usize = 24;

/** The quants of one half block: (uint8_t)((x - min)/d + 0.5), no clamp (min(31, …) only where it cannot bind). */
@inline
function quantizeHalf(x: usize, mv: v128, idv: v128, plain: bool): v128 {
  return quantizeHalfBlock(x, mv, idv, 0.5, 31, true, false, plain);
}

/** The quants of one block with minimum `min` and scale d (its f16 header written by the caller). */
@inline
function quantizeBlockBody(x: usize, y: usize, min: f32, d: f32): void {
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  const idv = f32x4.splat(id);
  const mv = f32x4.splat(min);
  const plain = isPlainScale(d);
  const lo = quantizeHalf(x, mv, idv, plain);
  const hi = quantizeHalf(x + 64, mv, idv, plain);
  store<u32>(y + 4, fifthBits(lo, hi));
  v128.store(y + 8, v128.or(v128.and(lo, i8x16.splat(0x0F)), i8x16.shl(hi, 4)));
}

function quantizeBlock(x: usize, y: usize): void {
  blockMinMax(x);
  const min = blockMin;
  const d: f32 = (blockMax - min) / <f32>31;
  store<u16>(y, fp32ToFp16(d));
  store<u16>(y + 2, fp32ToFp16(min));
  quantizeBlockBody(x, y, min, d);
}

// The four scales of a group, lane k = block k (kernels allocate nothing).
const GROUP_D: usize = memory.data(16, 16);

/** quantizeBlock for the four consecutive blocks at x: their scalars are computed four lanes at a time. */
function quantizeGroup(x: usize, y: usize): void {
  groupMinMax(x);
  const mn = v128.load(GROUP_MIN);
  const d = f32x4.div(f32x4.sub(v128.load(GROUP_MAX), mn), f32x4.splat(31));
  v128.store(GROUP_D, d);
  storeHalves4(y, BLOCK_BYTES, fp32ToFp16x4(d));
  storeHalves4(y + 2, BLOCK_BYTES, fp32ToFp16x4(mn));
  for (let k: usize = 0; k < 4; k++) {
    quantizeBlockBody(x + (k << 7), y + k * BLOCK_BYTES, load<f32>(GROUP_MIN + (k << 2)), load<f32>(GROUP_D + (k << 2)));
  }
}

// quantize_row_q5_1_impl for every row: make_qkx3_quants(32, 31, x, weight, L, &min, Laux, -0.9, 0.05, 36, false) over four blocks at a time.
function quantizeWeighted(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const total = nrows * (ncols >> 5);
  beginWeightedRows();
  for (let b0 = 0; b0 < total; b0 += 4) {
    gatherBlocksX4(src, ncols, imatrix, b0, total);
    makeQkxQuantsX4(32, 31, XT4, WT4, LT4, SCALE4, MIN4, -0.9, 0.05, 36, false);
    levelsToBytesX4();
    const lanes = min(4, total - b0);
    for (let k = 0; k < lanes; k++) {
      const yb = dst + <usize>(b0 + k) * BLOCK_BYTES;
      const L = LEVELS4 + (<usize>k << 5);
      store<u16>(yb, fp32ToFp16(laneF32(SCALE4, k)));
      store<u16>(yb + 2, fp32ToFp16(-laneF32(MIN4, k)));
      packQ5(L, yb + 4, yb + 8);
    }
  }
}

export function quantizeRowsQ5_1(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix != 0) {
    quantizeWeighted(src, dst, nrows, ncols, imatrix);
    return;
  }
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  let b: usize = 0;
  for (; b + 4 <= nblocks; b += 4) quantizeGroup(src + (b << 7), dst + b * BLOCK_BYTES);
  for (; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
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
