// Lane helpers shared by the legacy block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): one block of 32
// floats is eight f32x4 vectors. Only order-free reductions (max, min) run across lanes; where the
// reference's scan order still shows (which element wins a tie, the sign of a zero) it is resolved
// by looking for the first element, as the scalar loop would.

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

/** Largest |x| of a 32-float block. */
@inline
export function blockAbsMax(x: usize): f32 {
  // pmax (one maxps) is exact here: magnitudes are never NaN (the caller rejects non-finite rows)
  let m = f32x4.pmax(f32x4.abs(v128.load(x)), f32x4.abs(v128.load(x, 16)));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 32)), f32x4.abs(v128.load(x, 48))));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 64)), f32x4.abs(v128.load(x, 80))));
  m = f32x4.pmax(m, f32x4.pmax(f32x4.abs(v128.load(x, 96)), f32x4.abs(v128.load(x, 112))));
  return Mathf.max(Mathf.max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), Mathf.max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
}

/**
 * The reference's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` from amax = max = 0:
 * the signed value of the first element with the largest magnitude, or +0 when all are zero.
 */
export function blockSignedAbsMax(x: usize): f32 {
  const amax = blockAbsMax(x);
  if (amax == 0) return 0;
  const target = f32x4.splat(amax);
  for (let k = 0; k < 8; k++) {
    const hit = i32x4.bitmask(f32x4.eq(f32x4.abs(v128.load(x + (<usize>k << 4))), target));
    if (hit != 0) return load<f32>(x + (<usize>(k * 4 + ctz(hit)) << 2));
  }
  return 0; // not reached: amax is one of the elements
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

// Results of blockMinMax (static: kernels allocate nothing).
export let blockMin: f32 = 0;
export let blockMax: f32 = 0;

/**
 * The reference's min/max scan (`if (v < min) min = v; if (v > max) max = v;` from ±FLT_MAX):
 * min and max are order-free except for the sign of a zero result, which is the first zero's.
 */
export function blockMinMax(x: usize): void {
  // pmin/pmax are the reference's own `v < min ? v : min` per lane (single instructions); the sign of
  // a zero result is fixed below
  let lo = f32x4.pmin(v128.load(x), v128.load(x, 16));
  let hi = f32x4.pmax(v128.load(x), v128.load(x, 16));
  for (let k = 2; k < 8; k += 2) {
    const a = v128.load(x + (<usize>k << 4));
    const b = v128.load(x + (<usize>k << 4), 16);
    lo = f32x4.pmin(lo, f32x4.pmin(a, b));
    hi = f32x4.pmax(hi, f32x4.pmax(a, b));
  }
  let mn = Mathf.min(Mathf.min(f32x4.extract_lane(lo, 0), f32x4.extract_lane(lo, 1)), Mathf.min(f32x4.extract_lane(lo, 2), f32x4.extract_lane(lo, 3)));
  let mx = Mathf.max(Mathf.max(f32x4.extract_lane(hi, 0), f32x4.extract_lane(hi, 1)), Mathf.max(f32x4.extract_lane(hi, 2), f32x4.extract_lane(hi, 3)));
  if (mn == 0) mn = firstEqual(x, 0);
  if (mx == 0) mx = firstEqual(x, 0);
  blockMin = mn;
  blockMax = mx;
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

/** sum of x² over the row, in order, divided by its length: the impl functions' sigma2. */
export function rowSigma2(x: usize, n: i32): f32 {
  let sumX2: f32 = 0;
  for (let j = 0; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    sumX2 += v * v;
  }
  return sumX2 / <f32>n;
}

/** weight[j] = qw[j] * sqrtf(sigma2 + x[j]²) for one block of 32 (lane-wise, no reduction). */
@inline
export function blockWeights(x: usize, qw: usize, sigma2: f32, weight: usize): void {
  const s = f32x4.splat(sigma2);
  for (let k: usize = 0; k < 128; k += 16) {
    const v = v128.load(x + k);
    v128.store(weight + k, f32x4.mul(v128.load(qw + k), f32x4.sqrt(f32x4.add(s, f32x4.mul(v, v)))));
  }
}

/** Scratch for the weighted paths (kernels allocate nothing). */
export const WEIGHT32: usize = memory.data(128, 16);
export const L32: usize = memory.data(32, 16);
export const LAUX32: usize = memory.data(32, 16);
export const MIN_OUT: usize = memory.data(4, 4);

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
