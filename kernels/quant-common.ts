// Shared helpers of ggml-quants.c's K-quant (and imatrix legacy) quantizers, re-implemented bit for
// bit: same f32 operations in the same order (C evaluates these float expressions in float on
// x86-64/SSE, no FMA in the reference build), same integer truncations and clamps.
//
// All functions work on pointers into linear memory:
//   x, weights, qw : f32 arrays          L, Laux : i8/u8 arrays (one byte per element)
// and allocate nothing (scratch is static).
//
// First half: scalar ports of the helpers that run once per super-block (make_qp_quants, the
// K4 scale packing). Second half: 4-lane forms of make_qkx2/qkx3_quants, make_qx_quants and
// make_q3_quants, one independent group per lane, each lane doing the reference's operations in
// its order (checked against llama.cpp by test/kernels-kquant-diff.test.ts and
// test/kernels-legacy-diff.test.ts).
//
// Last: the pieces Q4_K and Q5_K share (same 8×32 layout and scale packing, different nmax and
// search constants) and the row driver of all K-quants.

import { fp16ToFp32, fp32ToFp16 } from "./fp16";

/** ggml's GROUP_MAX_EPS: a group whose largest |x| is below this is treated as all zero. */
export const GROUP_MAX_EPS: f32 = 1e-15;

// 1.5 * 2^23: adding it leaves round-half-even(v) in the low mantissa bits for |v| <= 2^22.
const MAGIC: f32 = 12582912.0;

/**
 * ggml's nearest_int: round half to even through the 12582912 magic float. Reproduced literally
 * (including its wrap-around for |v| > 4194303, where the reference's assert is compiled out), so
 * out-of-range values give the same garbage the reference then clamps.
 */
@inline
export function nearestInt(v: f32): i32 {
  const bits = reinterpret<i32>(v + MAGIC);
  return (bits & 0x007fffff) - 0x00400000;
}

/** The 4-lane form of nearestInt (lane-wise identical to the scalar form). */
@inline
export function nearestIntX4(v: v128): v128 {
  const t = f32x4.add(v, f32x4.splat(MAGIC));
  return i32x4.sub(v128.and(t, i32x4.splat(0x007fffff)), i32x4.splat(0x00400000));
}

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function stf(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
@inline function ldu8(p: usize, i: i32): i32 {
  return <i32>load<u8>(p + <usize>i);
}
@inline function st8(p: usize, i: i32, v: i32): void {
  store<u8>(p + <usize>i, <u8>v);
}
@inline function clampI(v: i32, lo: i32, hi: i32): i32 {
  // MAX(lo, MIN(hi, v))
  const a = v < hi ? v : hi;
  return lo > a ? lo : a;
}

/** make_qx_quants' default weight for element value xi (rmseType already made positive). */
@inline
function qxWeight(rmseType: i32, xi: f32): f32 {
  if (rmseType == 1) return xi * xi;
  if (rmseType == 2) return 1;
  if (rmseType == 3) return Mathf.abs(xi);
  return Mathf.sqrt(Mathf.abs(xi));
}

/**
 * make_qp_quants: quantize n non-negative values (sub-block scales or mins) to [0, nmax] with
 * weights quantWeights; L is u8 (values truncated to a byte exactly as the reference's uint8_t).
 */
export function makeQpQuants(n: i32, nmax: i32, x: usize, L: usize, quantWeights: usize): f32 {
  let max: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const xi = ldf(x, i);
    max = max > xi ? max : xi;
  }
  if (max < GROUP_MAX_EPS) {
    for (let i = 0; i < n; ++i) st8(L, i, 0);
    return 0;
  }
  let iscale: f32 = <f32>nmax / max;
  for (let i = 0; i < n; ++i) st8(L, i, nearestInt(iscale * ldf(x, i)));
  const scale: f32 = <f32>1 / iscale;
  let bestMse: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const diff = ldf(x, i) - scale * <f32>ldu8(L, i);
    bestMse += ldf(quantWeights, i) * diff * diff;
  }
  for (let is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const iscaleIs: f32 = (<f32>0.1 * <f32>is + <f32>nmax) / max;
    const scaleIs: f32 = <f32>1 / iscaleIs;
    let mse: f32 = 0;
    for (let i = 0; i < n; ++i) {
      const xi = ldf(x, i);
      let l = nearestInt(iscaleIs * xi);
      l = nmax < l ? nmax : l;
      const diff = xi - scaleIs * <f32>l;
      mse += ldf(quantWeights, i) * diff * diff;
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  return refineQpQuants(n, nmax, x, L, quantWeights, iscale);
}

/**
 * The end of make_qp_quants once its scale search chose `iscale`: quantize at it, then up to five
 * passes moving single levels while that raises sumlx²/suml2; returns sumlx/suml2 (0 when suml2 is 0).
 */
export function refineQpQuants(n: i32, nmax: i32, x: usize, L: usize, quantWeights: usize, iscale: f32): f32 {
  let sumlx: f32 = 0;
  let suml2: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const xi = ldf(x, i);
    let l = nearestInt(iscale * xi);
    l = nmax < l ? nmax : l;
    st8(L, i, l);
    const w = ldf(quantWeights, i);
    const fl = <f32>l;
    sumlx += w * xi * fl;
    suml2 += w * fl * fl;
  }
  for (let itry = 0; itry < 5; ++itry) {
    let nChanged = 0;
    for (let i = 0; i < n; ++i) {
      const xi = ldf(x, i);
      const w = ldf(quantWeights, i);
      const li = <f32>ldu8(L, i);
      let slx = sumlx - w * xi * li;
      let sl2 = suml2 - w * li * li;
      if (slx > 0 && sl2 > 0) {
        let newL = nearestInt(xi * sl2 / slx);
        newL = nmax < newL ? nmax : newL;
        if (newL != ldu8(L, i)) {
          const fn = <f32>newL;
          slx += w * xi * fn;
          sl2 += w * fn * fn;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            st8(L, i, newL);
            sumlx = slx;
            suml2 = sl2;
            ++nChanged;
          }
        }
      }
    }
    if (!nChanged) break;
  }
  return suml2 > 0 ? sumlx / suml2 : 0;
}

/** get_scale_min_k4: the 6-bit scale of sub-block j from the 12-byte packed K4/K5 scales at q. */
@inline
export function scaleK4(j: i32, q: usize): i32 {
  if (j < 4) return ldu8(q, j) & 63;
  return (ldu8(q, j + 4) & 0xF) | ((ldu8(q, j - 4) >> 6) << 4);
}

/** get_scale_min_k4: the 6-bit min of sub-block j from the 12-byte packed K4/K5 scales at q. */
@inline
export function minK4(j: i32, q: usize): i32 {
  if (j < 4) return ldu8(q, j + 4) & 63;
  return (ldu8(q, j + 4) >> 4) | ((ldu8(q, j) >> 6) << 4);
}

/** Pack 6-bit scale ls and min lm of sub-block j (0..7) into the 12-byte K4/K5 layout at q, as
 * quantize_row_q4_K/q5_K do; call for j = 0..7 in order (j >= 4 ORs into bytes set by j < 4). */
@inline
export function packScaleMinK4(j: i32, q: usize, ls: i32, lm: i32): void {
  if (j < 4) {
    st8(q, j, ls);
    st8(q, j + 4, lm);
  } else {
    st8(q, j + 4, (ls & 0xF) | ((lm & 0xF) << 4));
    st8(q, j - 4, ldu8(q, j - 4) | ((ls >> 4) << 6));
    st8(q, j, ldu8(q, j) | ((lm >> 4) << 6));
  }
}

// ---------------------------------------------------------------------------------------------
// 4-lane forms: four independent sub-blocks at once, one per f32x4 lane. Every lane performs
// exactly the reference function's operations in its order (sums stay sequential per lane);
// branches become per-lane masks. Data is "transposed": element i of the four sub-blocks is the
// v128 at xT + 16*i.

const LAUX_X4 = memory.data(32 * 16, 16);
const W2_X4 = memory.data(32 * 16, 16);
const WX_X4 = memory.data(32 * 16, 16);
const WXL_X4 = memory.data(32 * 16, 16);
const WLL_X4 = memory.data(32 * 16, 16);

@inline function ldv(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}
@inline function stv(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

/** Transpose four consecutive groups of n floats (n a multiple of 4) at src into n v128 at dst. */
export function transposeX4(src: usize, n: i32, dst: usize): void {
  const stride = <usize>n << 2;
  for (let i = 0; i < n; i += 4) {
    const p = src + (<usize>i << 2);
    const a = v128.load(p);
    const b = v128.load(p + stride);
    const c = v128.load(p + 2 * stride);
    const d = v128.load(p + 3 * stride);
    const t0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
    const t1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
    const t2 = v128.shuffle<i32>(c, d, 0, 4, 1, 5);
    const t3 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
    stv(dst, i, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
    stv(dst, i + 1, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7));
    stv(dst, i + 2, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5));
    stv(dst, i + 3, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7));
  }
}

/** The levels of one lane (sub-block) of transposed f32 levels LT, as bytes at L: for the
 * sub-blocks whose requantization the reference skips (d == 0) and which keep the search's levels. */
export function levelsOfLaneX4(LT: usize, n: i32, lane: i32, L: usize): void {
  const col = LT + (<usize>lane << 2);
  for (let i = 0; i < n; ++i) store<u8>(L + <usize>i, <u8><i32>load<f32>(col + (<usize>i << 4)));
}

/** Per lane, the first element of largest |x| among n transposed values (0 if all are 0), as
 * make_qx_quants/make_q3_quants' max scan finds it; its |.| is that scan's amax. */
@inline
function signedAbsMaxX4(xT: usize, n: i32): v128 {
  let max = f32x4.splat(0);
  let amax = max;
  for (let i = 0; i < n; ++i) {
    const x = ldv(xT, i);
    const ax = f32x4.abs(x);
    const gt = f32x4.gt(ax, amax);
    amax = v128.bitselect(ax, amax, gt);
    max = v128.bitselect(x, max, gt);
  }
  return max;
}

/**
 * levelX4 for arguments known to satisfy |v| <= 2^22 (make_qx_quants: |iscale*x| <= nmax + 0.9):
 * the magic-number rounding then equals round-half-even exactly, so the level can stay a float.
 */
@inline
function boundedLevelX4(v: v128, lo: v128, hi: v128): v128 {
  const magic = f32x4.splat(MAGIC);
  return f32x4.pmax(f32x4.pmin(f32x4.sub(f32x4.add(v, magic), magic), hi), lo);
}

/** MAX(lo, MIN(hi, nearest_int(v))) per lane, as f32 (any v, including the reference's wrap-around). */
@inline
function levelX4(v: v128, lo: v128, hi: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.max_s(i32x4.min_s(nearestIntX4(v), hi), lo));
}

/**
 * make_qkx2_quants (and make_qkx3_quants with explicit weights, identical then) for four groups:
 * xT, wT: n transposed values / weights. Writes the chosen levels (as f32) to LT, the four scales
 * to outScale and the four -min to outMin (one v128 each).
 */
export function makeQkxQuantsX4(
  n: i32, nmax: i32, xT: usize, wT: usize, LT: usize, outScale: usize, outMin: usize,
  rmin: f32, rdelta: f32, nstep: i32, useMad: bool,
): void {
  const zero = f32x4.splat(0);
  const ilo = i32x4.splat(0);
  const ihi = i32x4.splat(nmax);
  const nmaxF = f32x4.splat(<f32>nmax);
  let min = ldv(xT, 0);
  let max = min;
  let sumW = ldv(wT, 0);
  let sumX = f32x4.mul(sumW, min);
  for (let i = 1; i < n; ++i) {
    const x = ldv(xT, i);
    const w = ldv(wT, i);
    min = f32x4.pmin(min, x); // if (x < min) min = x
    max = f32x4.pmax(max, x); // if (x > max) max = x
    sumW = f32x4.add(sumW, w);
    sumX = f32x4.add(sumX, f32x4.mul(w, x));
  }
  min = f32x4.pmin(min, zero); // if (min > 0) min = 0
  const flat = f32x4.eq(max, min);
  let iscale = f32x4.div(nmaxF, f32x4.sub(max, min));
  let scale = f32x4.div(f32x4.splat(1), iscale);
  let best = zero;
  for (let i = 0; i < n; ++i) {
    const x = ldv(xT, i);
    const l = levelX4(f32x4.mul(iscale, f32x4.sub(x, min)), ilo, ihi);
    stv(LT, i, l);
    let diff = f32x4.sub(f32x4.add(f32x4.mul(scale, l), min), x);
    diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
    best = f32x4.add(best, f32x4.mul(ldv(wT, i), diff));
  }
  for (let is = 0; is <= nstep; ++is) {
    // (max - min) with the current min: it moves when a better fit is found
    iscale = f32x4.div(f32x4.splat(rmin + rdelta * <f32>is + <f32>nmax), f32x4.sub(max, min));
    let sumL = zero, sumL2 = zero, sumXL = zero;
    for (let i = 0; i < n; ++i) {
      const x = ldv(xT, i);
      const l = levelX4(f32x4.mul(iscale, f32x4.sub(x, min)), ilo, ihi);
      stv(LAUX_X4, i, l);
      const wl = f32x4.mul(ldv(wT, i), l);
      sumL = f32x4.add(sumL, wl);
      sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l));
      sumXL = f32x4.add(sumXL, f32x4.mul(wl, x));
    }
    const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL));
    const dPos = f32x4.gt(D, zero);
    if (!v128.any_true(dPos)) continue;
    let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D);
    let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D);
    const minPos = f32x4.gt(thisMin, zero);
    thisMin = v128.bitselect(zero, thisMin, minPos);
    thisScale = v128.bitselect(f32x4.div(sumXL, sumL2), thisScale, minPos);
    let err = zero;
    for (let i = 0; i < n; ++i) {
      let diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, ldv(LAUX_X4, i)), thisMin), ldv(xT, i));
      diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
      err = f32x4.add(err, f32x4.mul(ldv(wT, i), diff));
    }
    const upd = v128.and(dPos, f32x4.lt(err, best));
    if (!v128.any_true(upd)) continue;
    for (let i = 0; i < n; ++i) stv(LT, i, v128.bitselect(ldv(LAUX_X4, i), ldv(LT, i), upd));
    best = v128.bitselect(err, best, upd);
    scale = v128.bitselect(thisScale, scale, upd);
    min = v128.bitselect(thisMin, min, upd);
  }
  if (v128.any_true(flat)) {
    // max == min: all levels 0, scale 0 (min keeps its clamped value)
    for (let i = 0; i < n; ++i) stv(LT, i, v128.andnot(ldv(LT, i), flat));
    scale = v128.andnot(scale, flat);
  }
  v128.store(outScale, scale);
  v128.store(outMin, f32x4.neg(min));
}

/**
 * make_qx_quants with rmse_type 1 for four groups: weights wT (transposed), or x*x when wT = 0.
 * Writes the levels l + nmax (as f32) to LT and the four scales to outScale.
 */
export function makeQxQuantsX4(n: i32, nmax: i32, xT: usize, wT: usize, LT: usize, outScale: usize): void {
  const zero = f32x4.splat(0);
  const lo = f32x4.splat(<f32>(-nmax));
  const hi = f32x4.splat(<f32>(nmax - 1));
  const bias = f32x4.splat(<f32>nmax);
  const max = signedAbsMaxX4(xT, n);
  const tiny = f32x4.lt(f32x4.abs(max), f32x4.splat(GROUP_MAX_EPS));
  let iscale = f32x4.div(f32x4.splat(<f32>(-nmax)), max);
  let sumlx = zero;
  let suml2 = zero;
  for (let i = 0; i < n; ++i) {
    const x = ldv(xT, i);
    const l = boundedLevelX4(f32x4.mul(iscale, x), lo, hi);
    stv(LT, i, f32x4.add(l, bias));
    const w = wT ? ldv(wT, i) : f32x4.mul(x, x);
    const wx = f32x4.mul(w, x);
    stv(W2_X4, i, w);
    stv(WX_X4, i, wx);
    sumlx = f32x4.add(sumlx, f32x4.mul(wx, l));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l));
  }
  let scale = v128.and(f32x4.div(sumlx, suml2), f32x4.ne(suml2, zero));
  let best = f32x4.mul(scale, sumlx);
  for (let is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.splat(-(<f32>nmax + <f32>0.1 * <f32>is)), max);
    sumlx = zero;
    suml2 = zero;
    for (let i = 0; i < n; ++i) {
      const l = boundedLevelX4(f32x4.mul(iscale, ldv(xT, i)), lo, hi);
      const w = ldv(W2_X4, i);
      sumlx = f32x4.add(sumlx, f32x4.mul(ldv(WX_X4, i), l));
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l));
    }
    const upd = v128.and(f32x4.gt(suml2, zero), f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)));
    if (!v128.any_true(upd)) continue;
    for (let i = 0; i < n; ++i) {
      const l = boundedLevelX4(f32x4.mul(iscale, ldv(xT, i)), lo, hi);
      stv(LT, i, v128.bitselect(f32x4.add(l, bias), ldv(LT, i), upd));
    }
    scale = v128.bitselect(f32x4.div(sumlx, suml2), scale, upd);
    best = v128.bitselect(f32x4.mul(scale, sumlx), best, upd);
  }
  if (v128.any_true(tiny)) {
    for (let i = 0; i < n; ++i) stv(LT, i, v128.andnot(ldv(LT, i), tiny));
    scale = v128.andnot(scale, tiny);
  }
  v128.store(outScale, scale);
}

/** Narrow four i32x4 levels (each 0..255 after bias) into 16 bytes at dst. */
@inline
function storeLevels16(dst: usize, a: v128, b: v128, c: v128, d: v128): void {
  v128.store(dst, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(a, b), i16x8.narrow_i32x4_s(c, d)));
}

// @inline: called once per sub-block of 16 or 32, where the call would cost as much as the work
/** The requantization step of Q2_K/Q4_K/Q5_K: L[i] = MAX(0, MIN(nmax, nearest_int((x[i] + m)/d))), n a multiple of 16. */
@inline
export function requantizeAsymX16(x: usize, n: i32, d: f32, m: f32, nmax: i32, L: usize): void {
  const dv = f32x4.splat(d);
  const mv = f32x4.splat(m);
  const lo = i32x4.splat(0);
  const hi = i32x4.splat(nmax);
  for (let i = 0; i < n; i += 16) {
    const p = x + (<usize>i << 2);
    const a = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(f32x4.add(v128.load(p), mv), dv)), hi), lo);
    const b = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(f32x4.add(v128.load(p, 16), mv), dv)), hi), lo);
    const c = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(f32x4.add(v128.load(p, 32), mv), dv)), hi), lo);
    const e = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(f32x4.add(v128.load(p, 48), mv), dv)), hi), lo);
    storeLevels16(L + <usize>i, a, b, c, e);
  }
}

/** The requantization step of Q3_K/Q6_K: L[i] = MAX(lo, MIN(hi, nearest_int(x[i]/d))) + bias, n a multiple of 16. */
@inline
export function requantizeSymX16(x: usize, n: i32, d: f32, lo: i32, hi: i32, bias: i32, L: usize): void {
  const dv = f32x4.splat(d);
  const lov = i32x4.splat(lo);
  const hiv = i32x4.splat(hi);
  const bv = i32x4.splat(bias);
  for (let i = 0; i < n; i += 16) {
    const p = x + (<usize>i << 2);
    const a = i32x4.add(i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(v128.load(p), dv)), hiv), lov), bv);
    const b = i32x4.add(i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(v128.load(p, 16), dv)), hiv), lov), bv);
    const c = i32x4.add(i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(v128.load(p, 32), dv)), hiv), lov), bv);
    const e = i32x4.add(i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.div(v128.load(p, 48), dv)), hiv), lov), bv);
    storeLevels16(L + <usize>i, a, b, c, e);
  }
}

/**
 * make_q3_quants(n, nmax, x, L, true) for four sub-blocks: the per-element refinement passes run in
 * every lane at once, each lane updating only while its own reference loop would still run.
 * Writes the levels l + nmax (as f32) to LT and the four scales to outScale.
 */
export function makeQ3QuantsX4(n: i32, nmax: i32, xT: usize, LT: usize, outScale: usize): void {
  const zero = f32x4.splat(0);
  const ilo = i32x4.splat(-nmax);
  const ihi = i32x4.splat(nmax - 1);
  const max = signedAbsMaxX4(xT, n);
  const tiny = f32x4.lt(f32x4.abs(max), f32x4.splat(GROUP_MAX_EPS));
  const iscale = f32x4.div(f32x4.splat(<f32>(-nmax)), max);
  let sumlx = zero;
  let suml2 = zero;
  const lo = f32x4.splat(<f32>(-nmax));
  const hi = f32x4.splat(<f32>(nmax - 1));
  for (let i = 0; i < n; ++i) {
    const x = ldv(xT, i);
    const l = boundedLevelX4(f32x4.mul(iscale, x), lo, hi); // |iscale*x| <= nmax
    stv(LT, i, l);
    const w = f32x4.mul(x, x);
    const wx = f32x4.mul(w, x);
    stv(W2_X4, i, w);
    stv(WX_X4, i, wx);
    // the terms element i contributes to the sums at its current level, kept up to date below
    const wxl = f32x4.mul(wx, l);
    const wll = f32x4.mul(f32x4.mul(w, l), l);
    stv(WXL_X4, i, wxl);
    stv(WLL_X4, i, wll);
    sumlx = f32x4.add(sumlx, wxl);
    suml2 = f32x4.add(suml2, wll);
  }
  let active = v128.not(tiny);
  for (let itry = 0; itry < 5; ++itry) {
    let changed = i32x4.splat(0);
    for (let i = 0; i < n; ++i) {
      const x = ldv(xT, i);
      const w = ldv(W2_X4, i);
      const wx = ldv(WX_X4, i);
      const li = ldv(LT, i);
      let slx = f32x4.sub(sumlx, ldv(WXL_X4, i));
      let sl2 = f32x4.sub(suml2, ldv(WLL_X4, i));
      const newL = levelX4(f32x4.div(f32x4.mul(x, sl2), slx), ilo, ihi);
      // lanes where the reference reaches its improvement test; usually none
      const candidate = v128.and(v128.and(active, f32x4.gt(slx, zero)), f32x4.ne(newL, li));
      if (!v128.any_true(candidate)) continue;
      const wxn = f32x4.mul(wx, newL);
      const wnn = f32x4.mul(f32x4.mul(w, newL), newL);
      slx = f32x4.add(slx, wxn);
      sl2 = f32x4.add(sl2, wnn);
      const better = v128.and(
        f32x4.gt(sl2, zero),
        f32x4.gt(f32x4.mul(f32x4.mul(slx, slx), suml2), f32x4.mul(f32x4.mul(sumlx, sumlx), sl2)),
      );
      const upd = v128.and(candidate, better);
      if (!v128.any_true(upd)) continue;
      stv(LT, i, v128.bitselect(newL, li, upd));
      stv(WXL_X4, i, v128.bitselect(wxn, ldv(WXL_X4, i), upd));
      stv(WLL_X4, i, v128.bitselect(wnn, ldv(WLL_X4, i), upd));
      sumlx = v128.bitselect(slx, sumlx, upd);
      suml2 = v128.bitselect(sl2, suml2, upd);
      changed = v128.or(changed, upd);
    }
    active = v128.and(active, changed);
    if (!v128.any_true(active)) break;
  }
  const bias = f32x4.splat(<f32>nmax);
  for (let i = 0; i < n; ++i) stv(LT, i, v128.andnot(f32x4.add(ldv(LT, i), bias), tiny));
  const scale = v128.and(f32x4.div(sumlx, suml2), f32x4.gt(suml2, zero));
  v128.store(outScale, v128.andnot(scale, tiny));
}

const IS_SUMLX = memory.data(20 * 4, 16);
const IS_SUML2 = memory.data(20 * 4, 16);
const IS_ISCALE = memory.data(20 * 4, 16);
// the 18 trial scales of make_qx_quants (is = -9..-1, 1..9), padded to 20 lanes
const IS_VALUES: StaticArray<i32> = [-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9];

/**
 * make_qx_quants(n, nmax, x, L, rmse_type, qw) for rmse_type >= 1 (the full search) on one group
 * (Q3_K's super-block scales): the 18 trial scales' sums do not depend on each other, so they are
 * computed four trial scales at a time (one per lane, each sum sequential over i as in the
 * reference); the reference's in-order "is this trial better" chain then runs on the finished sums.
 */
export function makeQxQuantsIsX4(n: i32, nmax: i32, x: usize, L: usize, rmseType: i32, qw: usize): f32 {
  let max: f32 = 0;
  let amax: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const xi = ldf(x, i);
    const ax = Mathf.abs(xi);
    if (ax > amax) { amax = ax; max = xi; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; ++i) st8(L, i, 0);
    return 0;
  }
  let iscale: f32 = <f32>(-nmax) / max;
  let sumlx: f32 = 0;
  let suml2: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const xi = ldf(x, i);
    const l = clampI(nearestInt(iscale * xi), -nmax, nmax - 1);
    st8(L, i, l + nmax);
    const w: f32 = qw ? ldf(qw, i) : qxWeight(rmseType, xi);
    const fl = <f32>l;
    sumlx += w * xi * fl;
    suml2 += w * fl * fl;
  }
  let scale: f32 = suml2 != 0 ? sumlx / suml2 : 0;
  let best: f32 = scale * sumlx;
  for (let k = 0; k < 20; ++k) {
    stf(IS_ISCALE, k, -(<f32>nmax + <f32>0.1 * <f32>unchecked(IS_VALUES[k])) / max);
  }
  const lo = f32x4.splat(<f32>(-nmax));
  const hi = f32x4.splat(<f32>(nmax - 1));
  for (let g = 0; g < 5; ++g) {
    const isv = v128.load(IS_ISCALE + <usize>(g * 16));
    let sx = f32x4.splat(0);
    let s2 = f32x4.splat(0);
    for (let i = 0; i < n; ++i) {
      const xi = ldf(x, i);
      const w: f32 = qw ? ldf(qw, i) : qxWeight(rmseType, xi);
      const l = boundedLevelX4(f32x4.mul(isv, f32x4.splat(xi)), lo, hi);
      sx = f32x4.add(sx, f32x4.mul(f32x4.splat(w * xi), l));
      s2 = f32x4.add(s2, f32x4.mul(f32x4.mul(f32x4.splat(w), l), l));
    }
    v128.store(IS_SUMLX + <usize>(g * 16), sx);
    v128.store(IS_SUML2 + <usize>(g * 16), s2);
  }
  let chosen = -1;
  for (let k = 0; k < 18; ++k) {
    const sx = ldf(IS_SUMLX, k);
    const s2 = ldf(IS_SUML2, k);
    if (s2 > 0 && sx * sx > best * s2) {
      chosen = k;
      scale = sx / s2;
      best = scale * sx;
    }
  }
  if (chosen >= 0) {
    iscale = ldf(IS_ISCALE, chosen);
    for (let i = 0; i < n; ++i) {
      st8(L, i, nmax + clampI(nearestInt(iscale * ldf(x, i)), -nmax, nmax - 1));
    }
  }
  return scale;
}

/** sum of x[i]² for i < n, sequentially (the *_impl searches' sumx2). */
@inline
export function sumOfSquares(x: usize, n: i32): f32 {
  let sumX2: f32 = 0;
  for (let i = 0; i < n; ++i) sumX2 += ldf(x, i) * ldf(x, i);
  return sumX2;
}

/**
 * The *_impl searches' weights qw*sqrt(sigma2 + x²) for four sub-blocks of n: transposes x and qw
 * into xT and qwT, writes the weights to wT and their per-lane sums (in order) to outSumW.
 */
@inline
export function importanceWeightsX4(x: usize, qw: usize, n: i32, sigma2: v128, xT: usize, qwT: usize, wT: usize, outSumW: usize): void {
  transposeX4(x, n, xT);
  transposeX4(qw, n, qwT);
  let sumw = f32x4.splat(0);
  for (let l = 0; l < n; ++l) {
    const v = ldv(xT, l);
    const w = f32x4.mul(ldv(qwT, l), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v))));
    stv(wT, l, w);
    sumw = f32x4.add(sumw, w);
  }
  v128.store(outSumW, sumw);
}

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K: super-blocks of 8 sub-blocks of 32, a 6-bit scale and min each packed by
// packScaleMinK4, d at byte 0, dmin at byte 2, scales at byte 4. The two formats differ only in
// nmax (15 / 31), the reference search's make_qkx2_quants constants, the MIN(63, …) of the
// weighted path (Q5_K only) and how the quants are packed (left to each kernel file).

const K4_OFF_D: usize = 0, K4_OFF_DMIN: usize = 2, K4_OFF_SCALES: usize = 4;
// transposed sub-block data: two groups of four sub-blocks (one per f32x4 lane), 32 v128 each
const K4_XT = memory.data(64 * 16, 16);
const K4_WT = memory.data(64 * 16, 16);
const K4_QWT = memory.data(64 * 16, 16);
const K4_LT = memory.data(64 * 16, 16);
const K4_SCALES = memory.data(8 * 4, 16);
const K4_MINS = memory.data(8 * 4, 16);
const K4_SUMW = memory.data(8 * 4, 16);
const K4_LS = memory.data(8);
const K4_LM = memory.data(8);

/** quantize_row_q4_K/q5_K_ref's sub-block search: weights av_x + |x|, make_qkx2_quants(32, nmax, …, rmin, rdelta, nstep). */
function searchK4Ref(x: usize, nmax: i32, rmin: f32, rdelta: f32, nstep: i32): void {
  for (let g = 0; g < 2; ++g) {
    const off = <usize>(g * 512);
    const xT = K4_XT + off, wT = K4_WT + off;
    transposeX4(x + off, 32, xT);
    let sumX2 = f32x4.splat(0);
    for (let l = 0; l < 32; ++l) { const v = ldv(xT, l); sumX2 = f32x4.add(sumX2, f32x4.mul(v, v)); }
    const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(32)));
    for (let l = 0; l < 32; ++l) stv(wT, l, f32x4.add(avX, f32x4.abs(ldv(xT, l))));
    makeQkxQuantsX4(32, nmax, xT, wT, K4_LT + off, K4_SCALES + <usize>(g * 16), K4_MINS + <usize>(g * 16), rmin, rdelta, nstep, false);
  }
}

/** quantize_row_q4_K/q5_K_impl's sub-block search: weights qw*sqrt(sigma2 + x²), make_qkx3_quants(32, nmax, …, -0.9, 0.05, 36). */
function searchK4Weighted(x: usize, qw: usize, nmax: i32): void {
  const sigma2 = f32x4.splat(<f32>2 * sumOfSquares(x, 256) / <f32>256);
  for (let g = 0; g < 2; ++g) {
    const off = <usize>(g * 512);
    importanceWeightsX4(x + off, qw + off, 32, sigma2, K4_XT + off, K4_QWT + off, K4_WT + off, K4_SUMW + <usize>(g * 16));
    makeQkxQuantsX4(32, nmax, K4_XT + off, K4_WT + off, K4_LT + off, K4_SCALES + <usize>(g * 16), K4_MINS + <usize>(g * 16), -0.9, 0.05, 36, false);
  }
}

/** The reference path's scales: search, then the 6-bit scales and mins relative to the largest, d and dmin. */
export function quantizeScalesK4Ref(x: usize, y: usize, nmax: i32, rmin: f32, rdelta: f32, nstep: i32): void {
  searchK4Ref(x, nmax, rmin, rdelta, nstep);
  let maxScale: f32 = 0;
  let maxMin: f32 = 0;
  for (let j = 0; j < 8; ++j) {
    const scale = ldf(K4_SCALES, j);
    if (scale > maxScale) maxScale = scale;
    const min = ldf(K4_MINS, j);
    if (min > maxMin) maxMin = min;
  }
  const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0;
  const invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0;
  for (let j = 0; j < 8; ++j) {
    let ls = nearestInt(invScale * ldf(K4_SCALES, j)) & 0xFF;
    let lm = nearestInt(invMin * ldf(K4_MINS, j)) & 0xFF;
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    packScaleMinK4(j, y + K4_OFF_SCALES, ls, lm);
  }
  store<u16>(y + K4_OFF_D, fp32ToFp16(maxScale / <f32>63));
  store<u16>(y + K4_OFF_DMIN, fp32ToFp16(maxMin / <f32>63));
}

/** The weighted path's scales: search, then make_qp_quants over the scales and the mins (clamped to 63 if clampTo63, as Q5_K does; Q4_K does not). */
export function quantizeScalesK4Weighted(x: usize, y: usize, qw: usize, nmax: i32, clampTo63: bool): void {
  searchK4Weighted(x, qw, nmax);
  const dBlock = makeQpQuants(8, 63, K4_SCALES, K4_LS, K4_SUMW);
  const mBlock = makeQpQuants(8, 63, K4_MINS, K4_LM, K4_SUMW);
  for (let j = 0; j < 8; ++j) {
    let ls = ldu8(K4_LS, j);
    let lm = ldu8(K4_LM, j);
    if (clampTo63) {
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
    }
    packScaleMinK4(j, y + K4_OFF_SCALES, ls, lm);
  }
  store<u16>(y + K4_OFF_D, fp32ToFp16(dBlock));
  store<u16>(y + K4_OFF_DMIN, fp32ToFp16(mBlock));
}

/** Requantize every sub-block with its final (fp16-rounded) scale and min into the 256 levels at L. */
@inline
export function requantizeK4(x: usize, y: usize, nmax: i32, L: usize): void {
  const dAll = fp16ToFp32(load<u16>(y + K4_OFF_D));
  const mAll = fp16ToFp32(load<u16>(y + K4_OFF_DMIN));
  for (let j = 0; j < 8; ++j) {
    const d = dAll * <f32>scaleK4(j, y + K4_OFF_SCALES);
    if (d == 0) {
      // skipped by the reference: the sub-block keeps its search levels
      levelsOfLaneX4(K4_LT + <usize>((j >> 2) * 512), 32, j & 3, L + <usize>(32 * j));
      continue;
    }
    const dm = mAll * <f32>minK4(j, y + K4_OFF_SCALES);
    requantizeAsymX16(x + <usize>(128 * j), 32, d, dm, nmax, L + <usize>(32 * j));
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * ggml_quantize_chunk's loop for a K-quant: each row's super-blocks of 256, through the reference
 * block quantizer without an importance vector, the weighted one (with the block's slice of it) with one.
 */
@inline
export function quantizeRowsK(
  src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize, blockBytes: usize,
  quantizeRef: (x: usize, y: usize) => void,
  quantizeWeighted: (x: usize, y: usize, qw: usize) => void,
): void {
  const nb = ncols / 256;
  for (let r = 0; r < nrows; ++r) {
    for (let i = 0; i < nb; ++i) {
      const x = src + ((<usize>r * <usize>ncols + <usize>(i * 256)) << 2);
      const y = dst + (<usize>r * <usize>nb + <usize>i) * blockBytes;
      if (imatrix) quantizeWeighted(x, y, imatrix + (<usize>(i * 256) << 2));
      else quantizeRef(x, y);
    }
  }
}
