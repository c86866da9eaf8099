// IQ3_XXS (super-blocks of 256: {f16 d, u8 qs[64] grid indices, u32 scales_and_signs[8]}) and IQ3_S
// ({f16 d, u8 qs[64], u8 qh[8], u8 signs[32], u8 scales[4]}): groups of four |x| on a lattice of
// 256 / 512 points, eight groups per sub-block of 32 with a 4-bit scale each.
// Both are ggml's quantize_row_iq3_xxs_impl(256, …) / quantize_row_iq3_s_impl(32, …): per sub-block a
// search over 31 (19) trial scales, each rounding every group to the lattice and, off the lattice,
// to the best of its listed neighbours (iq3_find_best_neighbour). Here the trial scales run four at
// a time, one per lane (they are independent until the reference picks the best in order, which is
// done after, in order): a group's rounding, its neighbour search (once per distinct code word among
// the lanes) and the sums all take four scales per instruction, each lane in ggml's order.
// Without an importance vector the weights are x² (with one, qw*sqrt(sigma2 + x²)).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { nearestInt, nearestIntX4 } from "./quant-common";
import { IQ3S_CODES, IQ3XXS_CODES } from "./iq-grids";
import { LATTICE_IQ3S, LATTICE_IQ3XXS, latticeMap, latticeNeighbours, latticePositions, latticeValues } from "./iq-neighbours";

const XXS_BLOCK_BYTES: usize = 98;
const S_BLOCK_BYTES: usize = 110;
const FLT_MAX: f32 = 3.4028234663852886e38;
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;

// ---- neighbour lists in the layout the search reads ----
// Per lattice (0: IQ3_XXS, 1: IQ3_S) one i32 per code word u: the grid index when u is on the
// lattice, else -1 - (first << 6 | n): its n neighbours are candidates first..first+n-1, in ggml's
// order. A candidate is its positions 2l+1 as four f32 and its own code word (its levels l, 3 bits
// each) as an i32.
const XXS_CANDIDATES: i32 = 18985; // the lists' total length: fixed by the grids
const S_CANDIDATES: i32 = 24733;
const SEARCH_MAP = memory.data(2 * 4096 * 4, 16);
const CAND_POS = memory.data((XXS_CANDIDATES + S_CANDIDATES) * 16, 16);
const CAND_CODE = memory.data((XXS_CANDIDATES + S_CANDIDATES) * 4, 16);
let searchBuilt: i32 = 0;

@inline function codesOf(s: i32): usize {
  return s == 0 ? IQ3XXS_CODES : IQ3S_CODES;
}

function buildSearch(s: i32): void {
  const lattice = s == 0 ? LATTICE_IQ3XXS : LATTICE_IQ3S;
  const map = latticeMap(lattice);
  const nbr = latticeNeighbours(lattice);
  const pos = latticePositions(lattice);
  const codes = codesOf(s);
  const smap = SEARCH_MAP + (<usize>s << 14);
  let next = s == 0 ? 0 : XXS_CANDIDATES;
  const end = s == 0 ? XXS_CANDIDATES : XXS_CANDIDATES + S_CANDIDATES;
  for (let u = 0; u < 4096; u++) {
    const m = load<i32>(map + (<usize>u << 2));
    if (m >= 0) {
      store<i32>(smap + (<usize>u << 2), m);
      continue;
    }
    const list = nbr + (<usize>(-m - 1) << 1);
    const n = <i32>load<u16>(list);
    if (n == 0 || n > 63 || next + n > end) unreachable();
    store<i32>(smap + (<usize>u << 2), -1 - ((next << 6) | n));
    for (let c = 0; c < n; c++) {
      const gi = <i32>load<u16>(list + 2 + (<usize>c << 1));
      const at = <usize>(next + c);
      for (let i = 0; i < 4; i++) store<f32>(CAND_POS + (at << 4) + (<usize>i << 2), <f32>load<i8>(pos + <usize>(gi * 4 + i)));
      store<i32>(CAND_CODE + (at << 2), <i32>load<u16>(codes + (<usize>gi << 1)));
    }
    next += n;
  }
  if (next != end) unreachable();
}

@inline function searchMap(s: i32): usize {
  if ((searchBuilt & (1 << s)) == 0) {
    buildSearch(s);
    searchBuilt |= 1 << s;
  }
  return SEARCH_MAP + (<usize>s << 14);
}

/** Lanes (bits) of the last bestNeighbours whose search found a point (ggml asserts where none). */
let searchFound: i32 = 0;

/**
 * iq3_find_best_neighbour at four scales (one per lane) for the off-lattice entry `entry` of the
 * search map, group values x0..x3 and weights w0..w3 (splat): per lane the code word of the first
 * listed point with the smallest Σ w[i]*(scale*q[i] - x[i])² below FLT_MAX (searchFound says where
 * there was one).
 */
function bestNeighbours(entry: i32, scale: v128, x0: v128, x1: v128, x2: v128, x3: v128, w0: v128, w1: v128, w2: v128, w3: v128): v128 {
  const e = -1 - entry;
  const n = e & 63;
  let p = CAND_POS + (<usize>(e >> 6) << 4);
  let c = CAND_CODE + (<usize>(e >> 6) << 2);
  const fltMax = f32x4.splat(FLT_MAX);
  let best = fltMax;
  let code = i32x4.splat(0);
  for (let j = 0; j < n; j++) {
    const d0 = f32x4.sub(f32x4.mul(scale, v128.load32_splat(p)), x0);
    let d2 = f32x4.mul(f32x4.mul(w0, d0), d0);
    const d1 = f32x4.sub(f32x4.mul(scale, v128.load32_splat(p, 4)), x1);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w1, d1), d1));
    const dd2 = f32x4.sub(f32x4.mul(scale, v128.load32_splat(p, 8)), x2);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w2, dd2), dd2));
    const d3 = f32x4.sub(f32x4.mul(scale, v128.load32_splat(p, 12)), x3);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w3, d3), d3));
    const lt = f32x4.lt(d2, best);
    best = v128.bitselect(d2, best, lt);
    code = v128.bitselect(v128.load32_splat(c), code, lt);
    p += 16;
    c += 4;
  }
  searchFound = i32x4.bitmask(f32x4.lt(best, fltMax));
  return code;
}

// ---- scratch of one sub-block (kernels allocate nothing) ----
const XV = memory.data(32 * 4, 16); // |x| (one sign-flipped for IQ3_XXS parity)
const WV = memory.data(32 * 4, 16); // weights
const WA = memory.data(32 * 4, 16); // sqrt(weights): the neighbour search's weights
const MAX_SCALE_VECTORS = 8; // 31 trial scales, four a vector
const IDV = memory.data(MAX_SCALE_VECTORS * 16, 16); // 1/scale of the trial scales
const TSV = memory.data(MAX_SCALE_VECTORS * 16, 16); // the trial scales (1/id)
const SQX = memory.data(MAX_SCALE_VECTORS * 16, 16); // Σ w*x*q per trial scale
const SQ2 = memory.data(MAX_SCALE_VECTORS * 16, 16); // Σ w*q*q
const CODES = memory.data(MAX_SCALE_VECTORS * 8 * 16, 16); // code word per trial scale, per group
const ONV = memory.data(MAX_SCALE_VECTORS * 8 * 16, 16); // on the lattice (mask) per trial scale, per group
const USCR = memory.data(16, 16);
const LS = memory.data(32, 16); // the sub-block's levels (i8)
const ON_GRID = memory.data(8, 16); // per group: the best scale's point is on the lattice

// results for the eight sub-blocks of a super-block
const SCALES = memory.data(8 * 4, 16);
const SUB_ACTIVE = memory.data(8, 16);
const SUB_SIGNS = memory.data(8 * 4, 16);
const SUB_GRID = memory.data(8 * 8 * 2, 16); // grid index per group (u16)

/** Set when a row makes ggml's quantizer assert (its neighbour search finds nothing, or a NaN scale). */
let aborts: bool = false;

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function stf(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
@inline function ldv(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}
@inline function stv(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

/**
 * Weights, |x| and signs of sub-block sb at xb, into XV/WV/WA and SUB_SIGNS; returns its max |x|
 * (as the reference's MAX over the values in order).
 */
function prepareSubBlock(xxs: bool, xb: usize, qw: usize, sigma2: f32, sb: i32): f32 {
  for (let i = 0; i < 32; ++i) {
    const x = ldf(xb, i);
    const w: f32 = qw != 0 ? ldf(qw, i) * Mathf.sqrt(sigma2 + x * x) : x * x;
    stf(WV, i, w);
    stf(WA, i, Mathf.sqrt(w));
  }
  const signs = SUB_SIGNS + (<usize>sb << 2);
  for (let k = 0; k < 4; ++k) {
    let nflip = 0;
    let s = 0;
    for (let i = 0; i < 8; ++i) {
      const x = ldf(xb, 8 * k + i);
      if (x >= 0) stf(XV, 8 * k + i, x);
      else {
        stf(XV, 8 * k + i, -x);
        ++nflip;
        s |= 1 << i;
      }
    }
    if (xxs && (nflip & 1) != 0) {
      // an even number of minus signs is stored: flip the group's least important value
      let imin = 0;
      let min: f32 = ldf(WV, 8 * k) * ldf(xb, 8 * k) * ldf(xb, 8 * k);
      for (let i = 1; i < 8; ++i) {
        const ax: f32 = ldf(WV, 8 * k + i) * ldf(xb, 8 * k + i) * ldf(xb, 8 * k + i);
        if (ax < min) {
          min = ax;
          imin = i;
        }
      }
      stf(XV, 8 * k + imin, -ldf(XV, 8 * k + imin));
      s ^= 1 << imin;
    }
    store<u8>(signs + <usize>k, <u8>(xxs ? s & 127 : s));
  }
  let max = ldf(XV, 0);
  for (let i = 1; i < 32; ++i) {
    const v = ldf(XV, i);
    max = max > v ? max : v;
  }
  return max;
}

/**
 * The trial scales of one prepared sub-block (max: its max |x|), then the best one's refinement:
 * grid indices and scale of sub-block sb into SUB_GRID and SCALES.
 */
function searchSubBlock(xxs: bool, max: f32, sb: i32): void {
  const smap = searchMap(xxs ? 0 : 1);
  const nscale = xxs ? 15 : 9;
  const count = 2 * nscale + 1;
  const nvec = (count + 3) >> 2;
  const maxv = f32x4.splat(max);
  for (let v = 0; v < nvec; v++) {
    // trial scale t = 4v + lane is the reference's is = t - nscale; the lanes past the last repeat it
    for (let lane = 0; lane < 4; lane++) {
      const is = min(4 * v + lane, count - 1) - nscale;
      stf(USCR, lane, <f32>15 + <f32>is * <f32>0.2);
    }
    const id = f32x4.div(v128.load(USCR), maxv);
    stv(IDV, v, id);
    stv(TSV, v, f32x4.div(f32x4.splat(1), id));
    stv(SQX, v, f32x4.splat(0));
    stv(SQ2, v, f32x4.splat(0));
  }
  const zero = i32x4.splat(0);
  const seven = i32x4.splat(7);
  const half = f32x4.splat(0.5);
  const one = f32x4.splat(1);
  for (let k = 0; k < 8; ++k) {
    const xp = XV + (<usize>k << 4), wp = WV + (<usize>k << 4), ap = WA + (<usize>k << 4);
    const x0 = v128.load32_splat(xp), x1 = v128.load32_splat(xp, 4), x2 = v128.load32_splat(xp, 8), x3 = v128.load32_splat(xp, 12);
    const a0 = v128.load32_splat(ap), a1 = v128.load32_splat(ap, 4), a2 = v128.load32_splat(ap, 8), a3 = v128.load32_splat(ap, 12);
    const w0 = v128.load32_splat(wp), w1 = v128.load32_splat(wp, 4), w2 = v128.load32_splat(wp, 8), w3 = v128.load32_splat(wp, 12);
    const wx0 = f32x4.mul(w0, x0), wx1 = f32x4.mul(w1, x1), wx2 = f32x4.mul(w2, x2), wx3 = f32x4.mul(w3, x3);
    for (let v = 0; v < nvec; v++) {
      const id = ldv(IDV, v);
      const l0 = i32x4.max_s(zero, i32x4.min_s(seven, nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, x0), one)))));
      const l1 = i32x4.max_s(zero, i32x4.min_s(seven, nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, x1), one)))));
      const l2 = i32x4.max_s(zero, i32x4.min_s(seven, nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, x2), one)))));
      const l3 = i32x4.max_s(zero, i32x4.min_s(seven, nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, x3), one)))));
      const u = v128.or(v128.or(l0, i32x4.shl(l1, 3)), v128.or(i32x4.shl(l2, 6), i32x4.shl(l3, 9)));
      let code = u;
      let on = zero;
      // once per distinct code word among the lanes
      v128.store(USCR, u);
      let pending = 15;
      while (pending != 0) {
        const uw = load<i32>(USCR + (<usize>ctz(pending) << 2));
        const same = i32x4.eq(u, i32x4.splat(uw));
        pending &= ~i32x4.bitmask(same);
        const e = load<i32>(smap + (<usize>uw << 2));
        if (e >= 0) {
          on = v128.or(on, same);
          continue;
        }
        const found = bestNeighbours(e, ldv(TSV, v), x0, x1, x2, x3, a0, a1, a2, a3);
        if ((i32x4.bitmask(same) & ~searchFound) != 0) aborts = true;
        code = v128.bitselect(found, code, same);
      }
      stv(CODES, v * 8 + k, code);
      stv(ONV, v * 8 + k, on);
      // Σ w*x*q and Σ w*q*q, coordinate by coordinate in the reference's order
      const q0 = f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(v128.and(code, seven), 1), i32x4.splat(1)));
      const q1 = f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(v128.and(i32x4.shr_u(code, 3), seven), 1), i32x4.splat(1)));
      const q2 = f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(v128.and(i32x4.shr_u(code, 6), seven), 1), i32x4.splat(1)));
      const q3 = f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(v128.and(i32x4.shr_u(code, 9), seven), 1), i32x4.splat(1)));
      let sqx = ldv(SQX, v);
      sqx = f32x4.add(sqx, f32x4.mul(wx0, q0));
      sqx = f32x4.add(sqx, f32x4.mul(wx1, q1));
      sqx = f32x4.add(sqx, f32x4.mul(wx2, q2));
      sqx = f32x4.add(sqx, f32x4.mul(wx3, q3));
      stv(SQX, v, sqx);
      let sq2 = ldv(SQ2, v);
      sq2 = f32x4.add(sq2, f32x4.mul(f32x4.mul(w0, q0), q0));
      sq2 = f32x4.add(sq2, f32x4.mul(f32x4.mul(w1, q1), q1));
      sq2 = f32x4.add(sq2, f32x4.mul(f32x4.mul(w2, q2), q2));
      sq2 = f32x4.add(sq2, f32x4.mul(f32x4.mul(w3, q3), q3));
      stv(SQ2, v, sq2);
    }
  }
  // the reference's pick, in order of the trial scales
  let best: f32 = 0;
  let scale: f32 = max / <f32>15;
  let bestT = -1;
  for (let t = 0; t < count; t++) {
    const sumqx = ldf(SQX, t), sumq2 = ldf(SQ2, t);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      bestT = t;
    }
  }
  if (bestT < 0) {
    memory.fill(LS, 0, 32);
    memory.fill(ON_GRID, xxs ? 1 : 0, 8);
  } else {
    const lane = <usize>(bestT & 3) << 2;
    const v = bestT >> 2;
    for (let k = 0; k < 8; k++) {
      const code = load<i32>(CODES + (<usize>(v * 8 + k) << 4) + lane);
      for (let i = 0; i < 4; i++) store<i8>(LS + <usize>(4 * k + i), <i8>((code >> (3 * i)) & 7));
      store<u8>(ON_GRID + <usize>k, load<i32>(ONV + (<usize>(v * 8 + k) << 4) + lane) != 0 ? 1 : 0);
    }
  }
  finishSubBlock(xxs, smap, sb, scale);
}

/**
 * One sub-block after the trial scales (levels in LS): groups off the lattice are rounded again
 * with the best scale (IQ3_S redoes every group), the scale refitted, a negative scale made
 * positive with the signs flipped; grid indices and scale stored for sb.
 */
function finishSubBlock(xxs: bool, smap: usize, sb: i32, scale: f32): void {
  let notOnGrid = 0;
  for (let k = 0; k < 8; ++k) if (load<u8>(ON_GRID + <usize>k) == 0) ++notOnGrid;
  if (notOnGrid > 0 && scale > 0) {
    const id: f32 = <f32>1 / scale;
    const sv = f32x4.splat(scale);
    for (let k = 0; k < 8; ++k) {
      if (xxs && load<u8>(ON_GRID + <usize>k) != 0) continue;
      let u = 0;
      for (let i = 0; i < 4; ++i) {
        let l = nearestInt(<f32>0.5 * (id * ldf(XV, 4 * k + i) - <f32>1));
        l = max(0, min(7, l));
        u |= l << (3 * i);
      }
      const e = load<i32>(smap + (<usize>u << 2));
      if (e < 0) {
        const xp = XV + (<usize>k << 4), ap = WA + (<usize>k << 4);
        const code = bestNeighbours(
          e, sv,
          v128.load32_splat(xp), v128.load32_splat(xp, 4), v128.load32_splat(xp, 8), v128.load32_splat(xp, 12),
          v128.load32_splat(ap), v128.load32_splat(ap, 4), v128.load32_splat(ap, 8), v128.load32_splat(ap, 12),
        );
        if (searchFound == 0) aborts = true;
        u = i32x4.extract_lane(code, 0);
      }
      for (let i = 0; i < 4; ++i) store<i8>(LS + <usize>(4 * k + i), <i8>((u >> (3 * i)) & 7));
    }
    let sumqx: f32 = 0, sumq2: f32 = 0;
    for (let i = 0; i < 32; ++i) {
      const w = ldf(WV, i);
      const li: i32 = 2 * <i32>load<i8>(LS + <usize>i) + 1;
      const q = <f32>li;
      sumqx += w * ldf(XV, i) * q;
      sumq2 += w * q * q;
    }
    if (sumq2 > 0) scale = sumqx / sumq2;
  }
  const signs = SUB_SIGNS + (<usize>sb << 2);
  if (scale < 0) {
    scale = -scale;
    for (let k = 0; k < 4; ++k) {
      const b = ~<i32>load<u8>(signs + <usize>k);
      store<u8>(signs + <usize>k, <u8>(xxs ? b & 127 : b));
    }
  }
  for (let k = 0; k < 8; ++k) {
    let u = 0;
    for (let i = 0; i < 4; ++i) u |= <i32>load<i8>(LS + <usize>(4 * k + i)) << (3 * i);
    // the levels always come from lattice points (or are all 0, itself a point)
    store<u16>(SUB_GRID + (<usize>(sb * 8 + k) << 1), <u16>load<i32>(smap + (<usize>u << 2)));
  }
  if (!(scale >= 0)) aborts = true;
  stf(SCALES, sb, scale);
}

/** The eight sub-blocks of the super-block at x (importance weights at qw, or 0). */
function searchSuperBlock(xxs: bool, x: usize, qw: usize): void {
  const sigma2 = superBlockSigma2(x);
  for (let sb = 0; sb < 8; ++sb) {
    const max = prepareSubBlock(xxs, x + (<usize>sb << 7), qw != 0 ? qw + (<usize>sb << 7) : 0, sigma2, sb);
    const active = xxs ? !(max < GROUP_MAX_EPS_IQ3_XXS) : max != 0;
    store<u8>(SUB_ACTIVE + <usize>sb, active ? 1 : 0);
    if (active) searchSubBlock(xxs, max, sb);
    else stf(SCALES, sb, 0);
  }
}

/** sigma2 of quantize_row_iq3_*_impl: 2*Σx²/QK_K, summed in order. */
function superBlockSigma2(x: usize): f32 {
  let sumx2: f32 = 0;
  for (let i = 0; i < 256; ++i) sumx2 += ldf(x, i) * ldf(x, i);
  return <f32>2 * sumx2 / <f32>256;
}

/** The largest scale of the searched sub-blocks, as the reference's MAX(max_scale, scale). */
function maxScale(): f32 {
  let m: f32 = 0;
  for (let ib = 0; ib < 8; ++ib) {
    if (load<u8>(SUB_ACTIVE + <usize>ib) == 0) continue;
    const s = ldf(SCALES, ib);
    m = m > s ? m : s;
  }
  return m;
}

function quantizeSuperBlockXXS(x: usize, qw: usize, y: usize): void {
  searchSuperBlock(true, x, qw);
  const qs = y + 2;
  const sas = y + 66;
  const maxs = maxScale();
  if (maxs == 0) {
    memory.fill(y, 0, XXS_BLOCK_BYTES);
    return;
  }
  const d: f32 = maxs / <f32>31;
  store<u16>(y, fp32ToFp16(d * <f32>1.0125));
  const id: f32 = <f32>1 / d;
  for (let ib = 0; ib < 8; ++ib) {
    let word: u32 = 0;
    if (load<u8>(SUB_ACTIVE + <usize>ib) != 0) {
      for (let k = 0; k < 8; ++k) store<u8>(qs + <usize>(8 * ib + k), <u8>load<u16>(SUB_GRID + (<usize>(ib * 8 + k) << 1)));
      const signs = SUB_SIGNS + (<usize>ib << 2);
      word = <u32>load<u8>(signs) | (<u32>load<u8>(signs, 1) << 7) | (<u32>load<u8>(signs, 2) << 14) | (<u32>load<u8>(signs, 3) << 21);
    } else {
      store<u64>(qs + <usize>(8 * ib), 0);
    }
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(15, l));
    store<u32>(sas + (<usize>ib << 2), word | (<u32>l << 28));
  }
}

function quantizeSuperBlockS(x: usize, qw: usize, y: usize): void {
  memory.fill(y, 0, S_BLOCK_BYTES);
  searchSuperBlock(false, x, qw);
  const qh = y + 66, signsOut = y + 74, scalesOut = y + 106;
  // the reference advances its qs and signs pointers only past sub-blocks it searched (an all-zero
  // sub-block leaves them where they are), while qh is indexed by sub-block
  let qs = y + 2;
  let signs = signsOut;
  for (let ib = 0; ib < 8; ++ib) {
    if (load<u8>(SUB_ACTIVE + <usize>ib) == 0) continue;
    let h = 0;
    for (let k = 0; k < 8; ++k) {
      const gi = <i32>load<u16>(SUB_GRID + (<usize>(ib * 8 + k) << 1));
      store<u8>(qs + <usize>k, <u8>(gi & 255));
      h |= (gi >> 8) << k;
    }
    store<u8>(qh + <usize>ib, <u8>h);
    qs += 8;
    store<u32>(signs, load<u32>(SUB_SIGNS + (<usize>ib << 2)));
    signs += 4;
  }
  const maxs = maxScale();
  if (maxs == 0) return;
  const d: f32 = maxs / <f32>31;
  store<u16>(y, fp32ToFp16(d * <f32>1.033));
  const id: f32 = <f32>1 / d;
  for (let ib = 0; ib < 8; ib += 2) {
    let l1 = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l1 = max(0, min(15, l1));
    let l2 = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib + 1) - <f32>1));
    l2 = max(0, min(15, l2));
    store<u8>(scalesOut + <usize>(ib >> 1), <u8>(l1 | (l2 << 4)));
  }
}

/** 1 + index of the first row on which ggml's quantizer would assert (nothing meaningful written there), or 0. */
export function quantizeRowsIQ3_XXS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): i32 {
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * XXS_BLOCK_BYTES;
    aborts = false;
    for (let b = 0; b < nblocks; b++) {
      quantizeSuperBlockXXS(x + (<usize>b << 10), imatrix != 0 ? imatrix + (<usize>b << 10) : 0, y + <usize>b * XXS_BLOCK_BYTES);
    }
    if (aborts) return r + 1;
  }
  return 0;
}

export function quantizeRowsIQ3_S(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): i32 {
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * S_BLOCK_BYTES;
    aborts = false;
    for (let b = 0; b < nblocks; b++) {
      quantizeSuperBlockS(x + (<usize>b << 10), imatrix != 0 ? imatrix + (<usize>b << 10) : 0, y + <usize>b * S_BLOCK_BYTES);
    }
    if (aborts) return r + 1;
  }
  return 0;
}

// ksigns_iq2xs[i]: the seven stored signs plus the eighth that makes their number even
@inline function evenSigns(s7: i32): i32 {
  return s7 | ((popcnt(s7) & 1) << 7);
}

/**
 * db * grid[j] * (±1): the compiled reference flips the sign bit for the -1 (a NaN scale comes out
 * with its sign flipped too), so a negation, not a multiplication.
 */
@inline function signedValue(db: f32, g: i32, negative: bool): f32 {
  const v = db * <f32>g;
  return negative ? -v : v;
}

export function dequantizeIQ3_XXS(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ3XXS);
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * XXS_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    let y = dst + (b << 10);
    for (let ib = 0; ib < 8; ib++) {
      const qs = x + 2 + (<usize>ib << 3);
      const aux = load<u32>(x + 66 + (<usize>ib << 2));
      const db: f32 = d * (<f32>0.5 + <f32>(aux >> 28)) * <f32>0.5;
      for (let l = 0; l < 4; l++) {
        const signs = evenSigns(<i32>((aux >> (7 * l)) & 127));
        const g1 = grid + (<usize>load<u8>(qs + <usize>(2 * l)) << 2);
        const g2 = grid + (<usize>load<u8>(qs + <usize>(2 * l + 1)) << 2);
        for (let j = 0; j < 4; j++) {
          store<f32>(y + (<usize>j << 2), signedValue(db, <i32>load<u8>(g1 + <usize>j), (signs & (1 << j)) != 0));
          store<f32>(y + (<usize>(j + 4) << 2), signedValue(db, <i32>load<u8>(g2 + <usize>j), (signs & (1 << (j + 4))) != 0));
        }
        y += 32;
      }
    }
  }
}

export function dequantizeIQ3_S(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ3S);
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * S_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    let y = dst + (b << 10);
    for (let ib = 0; ib < 8; ib++) {
      const sc = <i32>load<u8>(x + 106 + <usize>(ib >> 1));
      const ls: i32 = 1 + 2 * ((ib & 1) != 0 ? sc >> 4 : sc & 0xf);
      const db: f32 = d * <f32>ls;
      const qs = x + 2 + (<usize>ib << 3);
      const qh = <i32>load<u8>(x + 66 + <usize>ib);
      const signs = x + 74 + (<usize>ib << 2);
      for (let l = 0; l < 4; l++) {
        const s = <i32>load<u8>(signs + <usize>l);
        const g1 = grid + (<usize>(<i32>load<u8>(qs + <usize>(2 * l)) | ((qh << (8 - 2 * l)) & 256)) << 2);
        const g2 = grid + (<usize>(<i32>load<u8>(qs + <usize>(2 * l + 1)) | ((qh << (7 - 2 * l)) & 256)) << 2);
        for (let j = 0; j < 4; j++) {
          store<f32>(y + (<usize>j << 2), signedValue(db, <i32>load<u8>(g1 + <usize>j), (s & (1 << j)) != 0));
          store<f32>(y + (<usize>(j + 4) << 2), signedValue(db, <i32>load<u8>(g2 + <usize>j), (s & (1 << (j + 4))) != 0));
        }
        y += 32;
      }
    }
  }
}
