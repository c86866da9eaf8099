// Q5_0: blocks of 32 as {f16 d, u32 qh, u8 qs[16]}; 4 low bits as Q4_0's nibbles, bit 4 of element j
// in bit j of qh. Without imatrix: quantize_row_q5_0_ref (d = max/-16,
// q = min(31, (int8_t)(x/d + 16.5))). With imatrix: quantize_row_q5_0_impl (make_qx_quants, nmax 16).
import { fp16ToFp32, fp32ToFp16, fp32ToFp16x4 } from "./fp16";
import {
  beginWeightedRows, blockSignedAbsMax, GROUP_MAX, groupSignedAbsMax, storeHalves4, fifthBits, gatherBlocksX4, isPlainScale, laneF32, LEVELS4, levelsToBytesX4, LT4,
  quantizeHalfBlock, packQ5, SCALE4, WT4, XT4,
} from "./legacy-common";
import { makeQxQuantsX4 } from "./quant-common";

const BLOCK_BYTES: usize = 22;

/** The quants of one half block: min(31, (int8_t)(x/d + 16.5)). */
@inline
function quantizeHalf(x: usize, idv: v128, plain: bool): v128 {
  return quantizeHalfBlock(x, idv, idv, 16.5, 31, false, true, plain);
}

/** The quants of one block with scale d (its f16 header written by the caller). */
@inline
function quantizeBlockBody(x: usize, y: usize, d: f32): void {
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  const idv = f32x4.splat(id);
  const plain = isPlainScale(d);
  const lo = quantizeHalf(x, idv, plain);
  const hi = quantizeHalf(x + 64, idv, plain);
  store<u32>(y + 2, fifthBits(lo, hi));
  v128.store(y + 6, v128.or(v128.and(lo, i8x16.splat(0x0F)), i8x16.shl(hi, 4)));
}

function quantizeBlock(x: usize, y: usize): void {
  const max = blockSignedAbsMax(x);
  const d: f32 = max / <f32>-16;
  store<u16>(y, fp32ToFp16(d));
  quantizeBlockBody(x, y, d);
}

// The four scales of a group, lane k = block k (kernels allocate nothing).
const GROUP_D: usize = memory.data(16, 16);

/** quantizeBlock for the four consecutive blocks at x: their scales are computed four lanes at a time. */
function quantizeGroup(x: usize, y: usize): void {
  groupSignedAbsMax(x);
  const d = f32x4.div(v128.load(GROUP_MAX), f32x4.splat(-16));
  v128.store(GROUP_D, d);
  storeHalves4(y, BLOCK_BYTES, fp32ToFp16x4(d));
  for (let k: usize = 0; k < 4; k++) quantizeBlockBody(x + (k << 7), y + k * BLOCK_BYTES, load<f32>(GROUP_D + (k << 2)));
}

// quantize_row_q5_0_impl for every row: make_qx_quants(32, 16, x, L, 1, weight) over four blocks at a time.
function quantizeWeighted(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const total = nrows * (ncols >> 5);
  beginWeightedRows();
  for (let b0 = 0; b0 < total; b0 += 4) {
    gatherBlocksX4(src, ncols, imatrix, b0, total);
    makeQxQuantsX4(32, 16, XT4, WT4, LT4, SCALE4);
    levelsToBytesX4();
    const lanes = min(4, total - b0);
    for (let k = 0; k < lanes; k++) {
      const yb = dst + <usize>(b0 + k) * BLOCK_BYTES;
      const L = LEVELS4 + (<usize>k << 5);
      store<u16>(yb, fp32ToFp16(laneF32(SCALE4, k)));
      packQ5(L, yb + 2, yb + 6);
    }
  }
}

export function quantizeRowsQ5_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix != 0) {
    quantizeWeighted(src, dst, nrows, ncols, imatrix);
    return;
  }
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  let b: usize = 0;
  for (; b + 4 <= nblocks; b += 4) quantizeGroup(src + (b << 7), dst + b * BLOCK_BYTES);
  for (; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
}

export function dequantizeQ5_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    const qh = load<u32>(x + 2);
    for (let j: u32 = 0; j < 16; j++) {
      const q = <i32>load<u8>(x + 6 + j);
      const h0 = <i32>(((qh >> j) << 4) & 0x10);
      const h1 = <i32>((qh >> (j + 12)) & 0x10);
      store<f32>(y + (j << 2), <f32>(((q & 0x0F) | h0) - 16) * d);
      store<f32>(y + ((j + 16) << 2), <f32>(((q >> 4) | h1) - 16) * d);
    }
  }
}
