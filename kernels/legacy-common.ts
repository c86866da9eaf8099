// Lane helpers shared by the block-of-32 formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): one block of
// 32 floats is eight f32x4 vectors. Only order-free reductions (max, min) run across lanes; where
// the reference's scan order still shows (which element wins a tie, the sign of a zero) it is
// resolved by looking for the first element, as the scalar loop would. The searches (imatrix paths,
// IQ4_NL) and the per-block scalars of Q4_1/Q5_1 run four blocks at once instead, one per lane.

export const BLOCK32: i32 = 32;

// C's (int8_t)/(uint8_t) cast of a float as x86 compiles it: cvttss2si, then keep the low byte.
// NaN and values outside int32 give 0x80000000, whose low byte is 0; trunc_sat gives 0x7FFFFFFF for
// positive overflow, so those lanes are cleared. Returns the low byte sign-extended, per i32 lane.
@inline
export function castToInt8x4(f: v128): v128 {
  let t = i32x4.trunc_sat_f32x4_s(f);
  t = v128.andnot(t, f32x4.ge(f, f32x4.splat(2147483648.0)));
  return i32x4.shr_s(i32x4.shl(t, 24), 24);
}

/**
 * True when the scale d is zero or a finite normal float: then x*(1/d) stays within the format's
 * range and a plain truncation gives the reference's cast; a subnormal or infinite d can make it
 * overflow, and only then is castToInt8x4 needed.
 */
@inline
export function isPlainScale(d: f32): bool {
  const a = Mathf.abs(d);
  return a == 0 || (a >= reinterpret<f32>(<u32>0x00800000) && a <= reinterpret<f32>(<u32>0x7F7FFFFF));
}

/** C's roundf (half away from zero) on four lanes: floor(|x|), +1 when the fraction is >= 0.5, sign back. */
@inline
export function roundHalfAwayx4(x: v128): v128 {
  const a = f32x4.abs(x);
  const t = f32x4.floor(a);
  // a - t is exact (the fraction of a float), and so is t + 1 when a fraction exists
  const up = v128.and(f32x4.ge(f32x4.sub(a, t), f32x4.splat(0.5)), f32x4.splat(1.0));
  return v128.or(f32x4.add(t, up), v128.and(x, i32x4.splat(0x80000000)));
}

// Horizontal max/min of four lanes by shuffles (pmax/pmin are single maxps/minps instructions,
// where extracting lanes into Mathf.max would cost the scalar NaN/-0 handling of f32.max). Exact
// for the non-NaN values they see; which of +0/-0 wins is fixed by the callers where it shows.
@inline
function maxOfLanes(v: v128): f32 {
  const m = f32x4.pmax(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmax(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2)), 0);
}

@inline
function minOfLanes(v: v128): f32 {
  const m = f32x4.pmin(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmin(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2)), 0);
}

/** Largest |x| of a 32-float block. */
@inline
export function blockAbsMax(x: usize): f32 {
  // magnitudes are never NaN (the caller rejects non-finite rows)
  let m = f32x4.pmax(f32x4.abs(v128.load(x)), f32x4.abs(v128.load(x, 16)));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 32)), f32x4.abs(v128.load(x, 48))));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 64)), f32x4.abs(v128.load(x, 80))));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 96)), f32x4.abs(v128.load(x, 112))));
  return maxOfLanes(m);
}

const LO_V: usize = memory.data(4 * 16, 16);
const HI_V: usize = memory.data(4 * 16, 16);

/** Lane-wise min and max over the 8 vectors of one block, stored as LO_V[k] / HI_V[k]. */
@inline
function blockLoHi(x: usize, k: usize): void {
  let lo = f32x4.pmin(v128.load(x), v128.load(x, 16));
  let hi = f32x4.pmax(v128.load(x), v128.load(x, 16));
  const a = v128.load(x, 32), b = v128.load(x, 48);
  lo = f32x4.pmin(lo, f32x4.pmin(a, b));
  hi = f32x4.pmax(hi, f32x4.pmax(a, b));
  const c = v128.load(x, 64), d = v128.load(x, 80);
  lo = f32x4.pmin(lo, f32x4.pmin(c, d));
  hi = f32x4.pmax(hi, f32x4.pmax(c, d));
  const e = v128.load(x, 96), f = v128.load(x, 112);
  v128.store(LO_V + (k << 4), f32x4.pmin(lo, f32x4.pmin(e, f)));
  v128.store(HI_V + (k << 4), f32x4.pmax(hi, f32x4.pmax(e, f)));
}

// Results of blockMinMax (static: kernels allocate nothing).
export let blockMin: f32 = 0;
export let blockMax: f32 = 0;

/** Signed min and max of the block into blockMin/blockMax (a zero result may have either sign). */
@inline
function rawMinMax(x: usize): void {
  blockLoHi(x, 0);
  blockMin = minOfLanes(v128.load(LO_V));
  blockMax = maxOfLanes(v128.load(HI_V));
}

/**
 * The reference's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` from amax = max = 0:
 * the signed value of the first element with the largest magnitude, or +0 when all are zero.
 */
export function blockSignedAbsMax(x: usize): f32 {
  rawMinMax(x);
  // only elements equal to the max (or the min) can have the largest magnitude; when both have
  // it, the first one in the block wins
  const hi = blockMax, lo = blockMin;
  if (hi > -lo) return hi;
  if (-lo > hi) return lo;
  if (hi == 0) return 0;
  const target = f32x4.splat(hi);
  for (let k = 0; k < 8; k++) {
    const hit = i32x4.bitmask(f32x4.eq(f32x4.abs(v128.load(x + (<usize>k << 4))), target));
    if (hit != 0) return load<f32>(x + (<usize>(k * 4 + ctz(hit)) << 2));
  }
  return 0; // not reached: hi is one of the magnitudes
}

/** Position of the first element of the block equal (==) to v; its bits carry the sign of a zero. */
@inline
function firstEqual(x: usize, v: f32): f32 {
  for (let j = 0; j < BLOCK32; j++) {
    const e = load<f32>(x + (<usize>j << 2));
    if (e == v) return e;
  }
  return v;
}

/**
 * The reference's min/max scan (`if (v < min) min = v; if (v > max) max = v;` from ±FLT_MAX) into
 * blockMin/blockMax: min and max are order-free except for the sign of a zero result, which is the
 * first zero's.
 */
export function blockMinMax(x: usize): void {
  rawMinMax(x);
  if (blockMin == 0) blockMin = firstEqual(x, 0);
  if (blockMax == 0) blockMax = firstEqual(x, 0);
}

// ---- four consecutive blocks at once for the per-block scalars (min, max, scale, f16 forms) ----

/** Per-lane results of groupMinMax: the four blocks' min and max (lane k = block k). */
export const GROUP_MIN: usize = memory.data(16, 16);
export const GROUP_MAX: usize = memory.data(16, 16);

/** blockLoHi for the four consecutive blocks at x, block k into LO_V[k] / HI_V[k]. */
@inline
function groupLoHi(x: usize): void {
  blockLoHi(x, 0);
  blockLoHi(x + 128, 1);
  blockLoHi(x + 256, 2);
  blockLoHi(x + 384, 3);
}

/** [op(v0), op(v1), op(v2), op(v3)] for four vectors, op = the min (isMin) or max of the lanes. */
@inline
function reduce4(v: usize, isMin: bool): v128 {
  const v0 = v128.load(v), v1 = v128.load(v, 16), v2 = v128.load(v, 32), v3 = v128.load(v, 48);
  const a = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), b = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
  const c = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5), d = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  const m01 = isMin ? f32x4.pmin(a, b) : f32x4.pmax(a, b);
  const m23 = isMin ? f32x4.pmin(c, d) : f32x4.pmax(c, d);
  const u = v128.shuffle<f32>(m01, m23, 0, 1, 4, 5), w = v128.shuffle<f32>(m01, m23, 2, 3, 6, 7);
  return isMin ? f32x4.pmin(u, w) : f32x4.pmax(u, w);
}

/** blockMinMax for the four consecutive blocks at x, into GROUP_MIN / GROUP_MAX (lane k = block k). */
export function groupMinMax(x: usize): void {
  groupLoHi(x);
  const mn = reduce4(LO_V, true);
  const mx = reduce4(HI_V, false);
  v128.store(GROUP_MIN, mn);
  v128.store(GROUP_MAX, mx);
  const zero = f32x4.splat(0);
  if (v128.any_true(v128.or(f32x4.eq(mn, zero), f32x4.eq(mx, zero)))) {
    // a zero min or max takes the sign of the block's first zero, as the reference's scan
    for (let k = 0; k < 4; k++) {
      const xb = x + (<usize>k << 7);
      if (load<f32>(GROUP_MIN + (<usize>k << 2)) == 0) store<f32>(GROUP_MIN + (<usize>k << 2), firstEqual(xb, 0));
      if (load<f32>(GROUP_MAX + (<usize>k << 2)) == 0) store<f32>(GROUP_MAX + (<usize>k << 2), firstEqual(xb, 0));
    }
  }
}

/** blockSignedAbsMax for the four consecutive blocks at x, into GROUP_MAX (lane k = block k). */
export function groupSignedAbsMax(x: usize): void {
  groupLoHi(x);
  const mn = reduce4(LO_V, true);
  const mx = reduce4(HI_V, false);
  const negMn = f32x4.neg(mn);
  // as in blockSignedAbsMax: the max when it is the larger magnitude, the min when that is
  v128.store(GROUP_MAX, v128.bitselect(mx, mn, f32x4.gt(mx, negMn)));
  const tie = f32x4.eq(mx, negMn);
  if (v128.any_true(tie)) {
    // both signs reach the largest magnitude (or the block is all zeros): the scalar rule decides
    const lanes = i32x4.bitmask(tie);
    for (let k = 0; k < 4; k++) {
      if ((lanes >> k) & 1) store<f32>(GROUP_MAX + (<usize>k << 2), blockSignedAbsMax(x + (<usize>k << 7)));
    }
  }
}

/** Store the low 16 bits of i32 lane k of h at y + k*stride, k = 0..3 (one f16 per block). */
@inline
export function storeHalves4(y: usize, stride: usize, h: v128): void {
  v128.store16_lane(y, h, 0);
  v128.store16_lane(y + stride, h, 2);
  v128.store16_lane(y + 2 * stride, h, 4);
  v128.store16_lane(y + 3 * stride, h, 6);
}

/**
 * trunc(v) as i32 per lane for 0 <= v < 2^23 (the plain-scale paths, where every value is a small
 * non-negative number): roundps and a magic add, cheaper than the saturating conversion.
 */
@inline
export function truncSmallX4(v: v128): v128 {
  const magic = f32x4.splat(8388608.0); // 2^23: an integer below it sits in the low mantissa bits
  return v128.and(f32x4.add(f32x4.trunc(v), magic), i32x4.splat(0x007FFFFF));
}

/** Four i32x4 vectors of values 0..255 → one i8x16 of bytes, in order. */
@inline
export function packBytes(a: v128, b: v128, c: v128, d: v128): v128 {
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, d));
}

/** Bit 4 of each of 32 quants (16 in lo, 16 in hi) as Q5's qh word: bit j for lo[j], bit 16+j for hi[j]. */
@inline
export function fifthBits(lo: v128, hi: v128): u32 {
  return (<u32>i8x16.bitmask(i8x16.shl(lo, 3))) | ((<u32>i8x16.bitmask(i8x16.shl(hi, 3))) << 16);
}

// ---- imatrix paths (quantize_row_q*_impl): per-row sigma2, per-block weights ----
// Blocks are searched four at a time, one block per f32x4 lane (each lane does its own block's
// scalar operations in the reference order). The blocks of a batch are consecutive in memory
// across rows, so a group of four may straddle rows: each lane has its own sigma2 and qw.

/**
 * One element vector of the reference quantizers: (int8_t)((v - min)*id + bias), clamped to qmax
 * (the _0 formats: no min; Q5_1's general path: no clamp, its (uint8_t) cast keeps the same low byte).
 * plain: d is a normal float, so the sum is in [0, 2*qmax + 1] and truncation alone gives the cast.
 */
@inline
function quantizeElementsX4(v: v128, mv: v128, idv: v128, bias: f32, qmax: i32, subtractMin: bool, clampCast: bool, plain: bool): v128 {
  const t = f32x4.add(f32x4.mul(subtractMin ? f32x4.sub(v, mv) : v, idv), f32x4.splat(bias));
  if (plain) return i32x4.min_s(truncSmallX4(t), i32x4.splat(qmax));
  const q = castToInt8x4(t);
  return v128.and(clampCast ? i32x4.min_s(q, i32x4.splat(qmax)) : q, i32x4.splat(0xFF));
}

/** The 16 quants (one byte each) of the half block at x (16 floats), as quantizeElementsX4 gives them. */
@inline
export function quantizeHalfBlock(x: usize, mv: v128, idv: v128, bias: f32, qmax: i32, subtractMin: bool, clampCast: bool, plain: bool): v128 {
  if (plain) {
    return packBytes(
      quantizeElementsX4(v128.load(x), mv, idv, bias, qmax, subtractMin, clampCast, true),
      quantizeElementsX4(v128.load(x, 16), mv, idv, bias, qmax, subtractMin, clampCast, true),
      quantizeElementsX4(v128.load(x, 32), mv, idv, bias, qmax, subtractMin, clampCast, true),
      quantizeElementsX4(v128.load(x, 48), mv, idv, bias, qmax, subtractMin, clampCast, true));
  }
  return packBytes(
    quantizeElementsX4(v128.load(x), mv, idv, bias, qmax, subtractMin, clampCast, false),
    quantizeElementsX4(v128.load(x, 16), mv, idv, bias, qmax, subtractMin, clampCast, false),
    quantizeElementsX4(v128.load(x, 32), mv, idv, bias, qmax, subtractMin, clampCast, false),
    quantizeElementsX4(v128.load(x, 48), mv, idv, bias, qmax, subtractMin, clampCast, false));
}

/** sum of x² over the row, in order, divided by its length: the impl functions' sigma2. */
export function rowSigma2(x: usize, n: i32): f32 {
  let sumX2: f32 = 0;
  for (let j = 0; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    sumX2 += v * v;
  }
  return sumX2 / <f32>n;
}

/** Transposed data of the four blocks of a group: element i of lane k at XT4 + 16*i + 4*k. */
export const XT4: usize = memory.data(32 * 16, 16);
/** Transposed weights qw*sqrt(sigma2 + x²) of the four blocks. */
export const WT4: usize = memory.data(32 * 16, 16);
/** Transposed levels (f32) the search chose. */
export const LT4: usize = memory.data(32 * 16, 16);
/** The four scales (and, for the min formats, the four -min) the search chose. */
export const SCALE4: usize = memory.data(16, 16);
export const MIN4: usize = memory.data(16, 16);
/** The chosen levels as bytes, 32 per block, block k at LEVELS4 + 32*k. */
export const LEVELS4: usize = memory.data(4 * 32, 16);

const QWT4: usize = memory.data(32 * 16, 16);
const SIGMA4: usize = memory.data(16, 16);

// sigma2 of the row last computed (a group's lanes share rows, so each row's sum is done once)
let sigmaRow: i32 = -1;
let sigmaValue: f32 = 0;

/** Call once per quantizeRows call before gatherBlocksX4 (forgets the cached row sigma2). */
export function beginWeightedRows(): void {
  sigmaRow = -1;
}

/** Transpose four groups of n floats (n a multiple of 4) at p0..p3 into n v128 at dst. */
export function transposeFrom4(p0: usize, p1: usize, p2: usize, p3: usize, n: i32, dst: usize): void {
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const a = v128.load(p0 + o);
    const b = v128.load(p1 + o);
    const c = v128.load(p2 + o);
    const d = v128.load(p3 + o);
    const t0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
    const t1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
    const t2 = v128.shuffle<i32>(c, d, 0, 4, 1, 5);
    const t3 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
    const q = dst + (<usize>i << 4);
    v128.store(q, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
    v128.store(q, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7), 16);
    v128.store(q, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5), 32);
    v128.store(q, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7), 48);
  }
}

/** Flat block index of lane k of the group starting at b0: past the end, the last block again
 * (a duplicate lane computes the same bytes and writes them to the same place). */
@inline
export function laneBlock(b0: i32, k: i32, total: i32): i32 {
  return min(b0 + k, total - 1);
}

/**
 * Load the group of four blocks b0..b0+3 (of `total` blocks of 32 in rows of ncols at src) into
 * XT4 and their impl weights qw[j]*sqrtf(sigma2 + x[j]²) into WT4.
 */
export function gatherBlocksX4(src: usize, ncols: i32, imatrix: usize, b0: i32, total: i32): void {
  const perRow = ncols >> 5;
  for (let k = 0; k < 4; k++) {
    const row = laneBlock(b0, k, total) / perRow;
    if (row != sigmaRow) {
      sigmaValue = rowSigma2(src + ((<usize>row * <usize>ncols) << 2), ncols);
      sigmaRow = row;
    }
    store<f32>(SIGMA4 + (<usize>k << 2), sigmaValue);
  }
  const b1 = laneBlock(b0, 1, total), b2 = laneBlock(b0, 2, total), b3 = laneBlock(b0, 3, total);
  transposeFrom4(src + (<usize>b0 << 7), src + (<usize>b1 << 7), src + (<usize>b2 << 7), src + (<usize>b3 << 7), 32, XT4);
  transposeFrom4(
    imatrix + (<usize>(b0 % perRow) << 7), imatrix + (<usize>(b1 % perRow) << 7),
    imatrix + (<usize>(b2 % perRow) << 7), imatrix + (<usize>(b3 % perRow) << 7), 32, QWT4);
  const s = v128.load(SIGMA4);
  for (let i: usize = 0; i < 32 * 16; i += 16) {
    const v = v128.load(XT4 + i);
    v128.store(WT4 + i, f32x4.mul(v128.load(QWT4 + i), f32x4.sqrt(f32x4.add(s, f32x4.mul(v, v)))));
  }
}

/** The transposed f32 levels LT4 (integers 0..255) as 32 bytes per block at LEVELS4. */
export function levelsToBytesX4(): void {
  // bytes come out element-major (e0 of lanes 0..3, e1 of lanes 0..3, …); regroup them lane-major
  const byLane = v128(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (let i: usize = 0; i < 32; i += 4) {
    const p = LT4 + (i << 4);
    const a = i32x4.trunc_sat_f32x4_u(v128.load(p));
    const b = i32x4.trunc_sat_f32x4_u(v128.load(p, 16));
    const c = i32x4.trunc_sat_f32x4_u(v128.load(p, 32));
    const d = i32x4.trunc_sat_f32x4_u(v128.load(p, 48));
    const bytes = i8x16.swizzle(packBytes(a, b, c, d), byLane);
    v128.store32_lane(LEVELS4 + i, bytes, 0);
    v128.store32_lane(LEVELS4 + i, bytes, 1, 32);
    v128.store32_lane(LEVELS4 + i, bytes, 2, 64);
    v128.store32_lane(LEVELS4 + i, bytes, 3, 96);
  }
}

/** Lane k of a v128 stored at p, as f32. */
@inline
export function laneF32(p: usize, k: i32): f32 {
  return load<f32>(p + (<usize>k << 2));
}

/** qs[j] = L[j] | L[j+16] << 4 from 32 byte quants at L (values < 16). */
@inline
export function packNibbles(L: usize, qs: usize): void {
  v128.store(qs, v128.or(v128.load(L), i8x16.shl(v128.load(L, 16), 4)));
}

/** Q5 layout from 32 byte quants (values < 32): low nibbles as packNibbles, bit 4 into the qh word. */
@inline
export function packQ5(L: usize, qh: usize, qs: usize): void {
  const lo = v128.load(L);
  const hi = v128.load(L, 16);
  const mask = i8x16.splat(0x0F);
  v128.store(qs, v128.or(v128.and(lo, mask), i8x16.shl(hi, 4)));
  store<u32>(qh, fifthBits(lo, hi));
}
