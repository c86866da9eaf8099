// Q4_0: blocks of 32 as {f16 d, u8 qs[16]}; element j in the low nibble of qs[j], j+16 in the high one.
// Without imatrix: quantize_row_q4_0_ref (d = max/-8, q = min(15, (int8_t)(x/d + 8.5))).
// With imatrix: quantize_row_q4_0_impl (make_qx_quants weighted by qw*sqrt(sigma2 + x²)).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { blockSignedAbsMax, isPlainScale, blockWeights, castToInt8x4, L32, packBytes, packNibbles, rowSigma2, WEIGHT32 } from "./legacy-common";
import { makeQxQuants } from "./quant-common";

const BLOCK_BYTES: usize = 18;

@inline
function quantizeElements(v: v128, id: v128): v128 {
  const q = castToInt8x4(f32x4.add(f32x4.mul(v, id), f32x4.splat(8.5)));
  return v128.and(i32x4.min_s(q, i32x4.splat(15)), i32x4.splat(0xFF));
}

// When d is a normal float |x/d| <= nmax (within rounding), so the sum is in [0, 2*nmax + 1]:
// truncation alone gives the cast.
@inline
function quantizeElementsPlain(v: v128, id: v128): v128 {
  return i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v, id), f32x4.splat(8.5))), i32x4.splat(15));
}

@inline
function quantizeHalf(x: usize, idv: v128, plain: bool): v128 {
  if (plain) {
    return packBytes(
      quantizeElementsPlain(v128.load(x), idv), quantizeElementsPlain(v128.load(x, 16), idv),
      quantizeElementsPlain(v128.load(x, 32), idv), quantizeElementsPlain(v128.load(x, 48), idv));
  }
  return packBytes(
    quantizeElements(v128.load(x), idv), quantizeElements(v128.load(x, 16), idv),
    quantizeElements(v128.load(x, 32), idv), quantizeElements(v128.load(x, 48), idv));
}

function quantizeBlock(x: usize, y: usize): void {
  const max = blockSignedAbsMax(x);
  const d: f32 = max / <f32>-8;
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  store<u16>(y, fp32ToFp16(d));
  const idv = f32x4.splat(id);
  const plain = isPlainScale(d);
  const lo = quantizeHalf(x, idv, plain);
  const hi = quantizeHalf(x + 64, idv, plain);
  v128.store(y + 2, v128.or(lo, i8x16.shl(hi, 4)));
}

// quantize_row_q4_0_impl for one row.
function quantizeRowWeighted(x: usize, y: usize, ncols: i32, qw: usize): void {
  const sigma2 = rowSigma2(x, ncols);
  const nblocks = ncols >> 5;
  for (let b = 0; b < nblocks; b++) {
    const xb = x + (<usize>b << 7);
    const yb = y + <usize>b * BLOCK_BYTES;
    blockWeights(xb, qw + (<usize>b << 7), sigma2, WEIGHT32);
    const d = makeQxQuants(32, 8, xb, L32, 1, WEIGHT32);
    store<u16>(yb, fp32ToFp16(d));
    packNibbles(L32, yb + 2);
  }
}

export function quantizeRowsQ4_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix != 0) {
    const rowBytes = <usize>(ncols >> 5) * BLOCK_BYTES;
    for (let r = 0; r < nrows; r++) quantizeRowWeighted(src + ((<usize>r * <usize>ncols) << 2), dst + <usize>r * rowBytes, ncols, imatrix);
    return;
  }
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  for (let b: usize = 0; b < nblocks; b++) quantizeBlock(src + (b << 7), dst + b * BLOCK_BYTES);
}

export function dequantizeQ4_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    for (let j: usize = 0; j < 16; j++) {
      const q = <i32>load<u8>(x + 2 + j);
      store<f32>(y + (j << 2), <f32>((q & 0x0F) - 8) * d);
      store<f32>(y + ((j + 16) << 2), <f32>((q >> 4) - 8) * d);
    }
  }
}
