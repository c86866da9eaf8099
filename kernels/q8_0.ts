// Q8_0: blocks of 32 as {f16 d, int8 qs[32]}; d = amax/127, q = roundf(x/d).
// ggml's quantize_q8_0 ignores the importance vector and always runs quantize_row_q8_0_ref.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { blockAbsMax, isPlainScale, castToInt8x4, packBytes, roundHalfAwayx4 } from "./legacy-common";

const BLOCK_BYTES: usize = 34;

@inline
function quantizeElements(v: v128, id: v128): v128 {
  return v128.and(castToInt8x4(roundHalfAwayx4(f32x4.mul(v, id))), i32x4.splat(0xFF));
}

// When d is a normal float |x/d| <= 127 (within rounding): roundf then truncation gives the cast.
@inline
function quantizeElementsPlain(v: v128, id: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(roundHalfAwayx4(f32x4.mul(v, id)));
}

@inline
function quantizeHalf(x: usize, idv: v128, plain: bool): v128 {
  if (plain) {
    // signed narrowing keeps -127..127 as they are
    return i8x16.narrow_i16x8_s(
      i16x8.narrow_i32x4_s(quantizeElementsPlain(v128.load(x), idv), quantizeElementsPlain(v128.load(x, 16), idv)),
      i16x8.narrow_i32x4_s(quantizeElementsPlain(v128.load(x, 32), idv), quantizeElementsPlain(v128.load(x, 48), idv)));
  }
  return packBytes(
    quantizeElements(v128.load(x), idv), quantizeElements(v128.load(x, 16), idv),
    quantizeElements(v128.load(x, 32), idv), quantizeElements(v128.load(x, 48), idv));
}

function quantizeBlock(x: usize, y: usize): void {
  const amax = blockAbsMax(x);
  const d: f32 = amax / <f32>127;
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  store<u16>(y, fp32ToFp16(d));
  const idv = f32x4.splat(id);
  const plain = isPlainScale(d);
  v128.store(y + 2, quantizeHalf(x, idv, plain));
  v128.store(y + 18, quantizeHalf(x + 64, idv, plain));
}

export function quantizeRowsQ8_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  for (let b: usize = 0; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
}

export function dequantizeQ8_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    for (let j: usize = 0; j < 32; j++) store<f32>(y + (j << 2), <f32>load<i8>(x + 2 + j) * d);
  }
}
