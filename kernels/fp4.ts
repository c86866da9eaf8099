// MXFP4 and NVFP4: E2M1 values (kvalues_mxfp4 = 2 × the FP4 value) with a power-of-two E8M0 scale
// per block of 32 (MXFP4) or an unsigned E4M3 scale per sub-block of 16 in blocks of 64 (NVFP4):
// quantize_row_mxfp4_ref / quantize_row_nvfp4_ref. Both ignore the importance matrix.
//   MXFP4: {u8 e, u8 qs[16]}; element j in the low nibble of qs[j], j+16 in the high one.
//   NVFP4: {u8 d[4], u8 qs[32]}; sub-block s, element j in the low nibble of qs[8s + j], j+8 in the high one.
// Each element's nibble is best_index_mxfp4: the first of the 16 table values v minimizing
// |v*d - x|. Elements are independent, so four go through it at once, mostly in closed form.

const MX_BLOCK_BYTES: usize = 17;
const NV_BLOCK_BYTES: usize = 36;

// The table's magnitudes, in the table's order (indices 0..7; 9..15 are their negatives).
const KV_MAG: StaticArray<f32> = [0, 1, 2, 3, 4, 6, 8, 12];
const KVALUES: StaticArray<i8> = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

// The midpoints between neighbouring magnitudes, in units of d, and v*d for the seven nonzero
// magnitudes of the current scale (static: kernels allocate nothing).
const KV_MIDS: StaticArray<f32> = [0.5, 1.5, 2.5, 3.5, 5, 7, 10];
const MIDS: usize = memory.data(8 * 16, 16);
const SCALED: usize = memory.data(8 * 16, 16);

/**
 * Prepares bestIndex16 for the scale d. For every x with |x| <= 24d (all of MXFP4, NVFP4 unless its
 * scale saturated) the search has a closed form: with a = |x| between neighbouring table values
 * P_i < P_i+1 (each at most twice the one before), a - P_i and P_i+1 - a are exact (Sterbenz), so
 * the later value wins exactly when a > (P_i + P_i+1)/2, and the farther values' errors stay larger
 * after rounding; below d/2, d - a rounds to at least d/2 > a. The midpoints times d are exact (a
 * few-bit significand times d's). Returns whether the closed form holds for the block's amax.
 */
@inline
function setScale(d: f32, amax: f32): bool {
  // d = 0 (an NVFP4 scale that underflowed): every error is |x|, index 0 wins, and the search says so;
  // a table value that overflows to Inf (MXFP4 blocks near FLT_MAX) never wins, its midpoint is finite
  const top = <f32>12 * d;
  if (d > 0 && top < Infinity && amax <= <f32>2 * top) {
    for (let i = 0; i < 7; i++) v128.store(MIDS + (<usize>i << 4), f32x4.splat(unchecked(KV_MIDS[i]) * d));
    return true;
  }
  for (let i = 1; i < 8; i++) v128.store(SCALED + (<usize>i << 4), f32x4.splat(unchecked(KV_MAG[i]) * d));
  return false;
}

/** The sign of x picks index j or 8 + j (a zero magnitude stays index 0, the first of the two zeros). */
@inline
function signedIndex(v: v128, idx: v128): v128 {
  const negative = v128.andnot(i32x4.lt_s(v, i32x4.splat(0)), i32x4.eq(idx, i32x4.splat(0)));
  return v128.or(idx, v128.and(negative, i32x4.splat(8)));
}

/**
 * best_index_mxfp4 of four floats at x under the scale set by setScale: the first of the 16 table
 * values v minimizing |v*d - x|. For x >= 0 (and -0) a negative table value is never strictly
 * closer than index 0, and for x < 0 a positive one is never: |(-v)*d - x| = |v*d - |x||, so the
 * search runs over the magnitudes of |x| and signedIndex adds the sign.
 */
@inline
function bestIndexSearch4(x: usize): v128 {
  const v = v128.load(x);
  const a = f32x4.abs(v);
  let best = a; // |0*d - |x||
  let idx = i32x4.splat(0);
  for (let i = 1; i < 8; i++) {
    const err = f32x4.abs(f32x4.sub(v128.load(SCALED + (<usize>i << 4)), a));
    const better = f32x4.lt(err, best);
    best = v128.bitselect(err, best, better);
    idx = v128.bitselect(i32x4.splat(i), idx, better);
  }
  return signedIndex(v, idx);
}

/** bestIndexSearch4 in closed form (setScale returned true): the number of midpoints below |x|. */
@inline
function bestIndexMids4(x: usize, m0: v128, m1: v128, m2: v128, m3: v128, m4: v128, m5: v128, m6: v128): v128 {
  const v = v128.load(x);
  const a = f32x4.abs(v);
  // each comparison is all ones (-1) where |x| lies above that midpoint
  let n = i32x4.add(f32x4.gt(a, m0), f32x4.gt(a, m1));
  n = i32x4.add(n, i32x4.add(f32x4.gt(a, m2), f32x4.gt(a, m3)));
  n = i32x4.add(n, i32x4.add(i32x4.add(f32x4.gt(a, m4), f32x4.gt(a, m5)), f32x4.gt(a, m6)));
  return signedIndex(v, i32x4.neg(n));
}

/** Sixteen nibbles of the floats at x, as bytes in order. */
@inline
function bestIndex16(x: usize, closed: bool): v128 {
  if (closed) {
    const m0 = v128.load(MIDS), m1 = v128.load(MIDS + 16), m2 = v128.load(MIDS + 32), m3 = v128.load(MIDS + 48);
    const m4 = v128.load(MIDS + 64), m5 = v128.load(MIDS + 80), m6 = v128.load(MIDS + 96);
    return i8x16.narrow_i16x8_u(
      i16x8.narrow_i32x4_u(bestIndexMids4(x, m0, m1, m2, m3, m4, m5, m6), bestIndexMids4(x + 16, m0, m1, m2, m3, m4, m5, m6)),
      i16x8.narrow_i32x4_u(bestIndexMids4(x + 32, m0, m1, m2, m3, m4, m5, m6), bestIndexMids4(x + 48, m0, m1, m2, m3, m4, m5, m6)),
    );
  }
  return i8x16.narrow_i16x8_u(
    i16x8.narrow_i32x4_u(bestIndexSearch4(x), bestIndexSearch4(x + 16)),
    i16x8.narrow_i32x4_u(bestIndexSearch4(x + 32), bestIndexSearch4(x + 48)),
  );
}

/** Largest |x| of n floats at x (n a multiple of 4); order-free for the finite rows kernels see. */
@inline
function absMaxN(x: usize, n: usize): f32 {
  let m = f32x4.abs(v128.load(x));
  for (let j: usize = 4; j < n; j += 4) m = f32x4.pmax(m, f32x4.abs(v128.load(x + (j << 2))));
  const h = f32x4.pmax(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmax(h, v128.shuffle<f32>(h, h, 1, 0, 3, 2)), 0);
}

// ---- MXFP4 ----

/** floorf(log2f(a)) for a finite a > 0, log2f correctly rounded (values just below a power of two can round up to it). */
@inline
function floorLog2f(a: f32): f32 {
  const bits = reinterpret<u32>(a);
  const exp = <i32>(bits >> 23);
  // a normal a with a mantissa below 0x7FF000 is 2^-12 or more below the next power of two: its log2
  // is then farther below that integer than any rounding of log2f, and the floor is the exponent
  if (exp != 0 && (bits & 0x7FFFFF) < 0x7FF000) return <f32>(exp - 127);
  return Mathf.floor(<f32>Math.log2(<f64>a));
}

/** ggml_e8m0_to_fp32_half. */
@inline
function e8m0Half(e: u32): f32 {
  return reinterpret<f32>(e < 2 ? <u32>0x00200000 << e : (e - 1) << 23);
}

function mxBlock(x: usize, y: usize): void {
  const amax = absMaxN(x, 32);
  // (uint8_t) of a float as x86 does it: convert to int32, keep the low byte (amax below 2^-125 gives
  // a negative exponent that wraps)
  const e: u32 = amax > 0 ? <u32>(<i32>(floorLog2f(amax) - <f32>2 + <f32>127)) & 0xFF : 0;
  store<u8>(y, <u8>e);
  const closed = setScale(e8m0Half(e), amax);
  const lo = bestIndex16(x, closed);
  const hi = bestIndex16(x + 64, closed);
  v128.store(y + 1, v128.or(lo, i8x16.shl(hi, 4)));
}

export function quantizeRowsMXFP4(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 5;
  for (let b: usize = 0; b < nblocks; b++) mxBlock(src + (b << 7), dst + b * MX_BLOCK_BYTES);
}

/** y[j] = kvalues[lo nibble]*d, y[j+n] = kvalues[hi nibble]*d for the 8 bytes at q (n = half, in floats). */
@inline
function dequantNibbles8(q: usize, d: v128, y: usize, half: usize): void {
  const table = v128.load(changetype<usize>(KVALUES));
  const bytes = v128.load64_zero(q);
  const lo = i8x16.swizzle(table, v128.and(bytes, i8x16.splat(0x0F)));
  const hi = i8x16.swizzle(table, i8x16.shr_u(bytes, 4));
  const lo16 = i16x8.extend_low_i8x16_s(lo);
  const hi16 = i16x8.extend_low_i8x16_s(hi);
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo16)), d));
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo16)), d), 16);
  v128.store(y + (half << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi16)), d));
  v128.store(y + (half << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi16)), d), 16);
}

export function dequantizeMXFP4(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * MX_BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = f32x4.splat(e8m0Half(<u32>load<u8>(x)));
    dequantNibbles8(x + 1, d, y, 16);
    dequantNibbles8(x + 9, d, y + 32, 16);
  }
}

// ---- NVFP4 ----

/** ggml_fp32_to_ue4m3: round half up on the 3 mantissa bits, saturating at 448 (0x7E). */
@inline
function fp32ToUe4m3(v: f32): u32 {
  if (!(v > 0)) return 0;
  if (v > <f32>448) v = 448;
  const bits = reinterpret<u32>(v);
  let exp = <i32>((bits >> 23) & 0xFF) - 127 + 7;
  if (exp <= 0) {
    // subnormal: man = round(v * 2^9)
    let man = <i32>(v * <f32>512 + <f32>0.5);
    if (man > 7) man = 7;
    return man < 1 ? 0 : <u32>man;
  }
  if (exp >= 15) return 0x7E;
  let man = <i32>((bits >> 20) & 7) + <i32>((bits >> 19) & 1);
  if (man > 7) {
    man = 0;
    exp++;
    if (exp >= 15) return 0x7E;
  }
  return <u32>((exp << 3) | man);
}

/** ggml_ue4m3_to_fp32: the scale halved (the table holds doubled values); bit 7 is ignored, 0x7F reads as 0. */
@inline
function ue4m3ToFp32(u: u32): f32 {
  if (u == 0 || u == 0x7F) return 0;
  const exp = <i32>((u >> 3) & 0xF);
  const man = <i32>(u & 7);
  // ldexpf is exact here: a 4-bit significand times a power of two in the normal range
  const raw: f32 = exp == 0
    ? <f32>man * reinterpret<f32>(<u32>(127 - 9) << 23)
    : (<f32>1 + <f32>man / <f32>8) * reinterpret<f32>(<u32>(127 + exp - 7) << 23);
  return raw * <f32>0.5;
}

function nvBlock(x: usize, y: usize): void {
  for (let s: usize = 0; s < 4; s++) {
    const xb = x + (s << 6);
    const amax = absMaxN(xb, 16);
    const ue = fp32ToUe4m3(amax / <f32>6);
    store<u8>(y + s, <u8>ue);
    const closed = setScale(ue4m3ToFp32(ue), amax);
    // 8 low nibbles (xb[0..8)) and 8 high ones (xb[8..16)) in the two halves of one vector
    const n = bestIndex16(xb, closed);
    const packed = v128.or(n, i8x16.shl(v128.shuffle<u8>(n, n, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0), 4));
    v128.store64_lane(y + 4 + (s << 3), packed, 0);
  }
}

export function quantizeRowsNVFP4(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 6;
  for (let b: usize = 0; b < nblocks; b++) nvBlock(src + (b << 8), dst + b * NV_BLOCK_BYTES);
}

export function dequantizeNVFP4(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 6;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * NV_BLOCK_BYTES;
    const y = dst + (b << 8);
    for (let s: usize = 0; s < 4; s++) {
      const d = f32x4.splat(ue4m3ToFp32(<u32>load<u8>(x + s)));
      dequantNibbles8(x + 4 + (s << 3), d, y + (s << 6), 8);
    }
  }
}
