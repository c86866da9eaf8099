// IQ3_XXS (super-blocks of 256: {f16 d, u8 qs[64] grid indices, u32 scales_and_signs[8]}) and IQ3_S
// ({f16 d, u8 qs[64], u8 qh[8], u8 signs[32], u8 scales[4]}): groups of four |x| on a lattice of
// 256 / 512 points, eight groups per sub-block of 32 with a 4-bit scale each.
// Both are ggml's quantize_row_iq3_xxs_impl(256, …) / quantize_row_iq3_s_impl(32, …): per sub-block a
// search over 31 (19) trial scales, each rounding every group to the lattice and, off the lattice,
// to the best of its listed neighbours (iq3_find_best_neighbour). The trial scales run four
// sub-blocks at a time, one per lane; a neighbour search tests four candidates at a time, each
// candidate's distance in ggml's order, the first smallest in list order winning as there.
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
// lattice, else -1 - (first << 4 | blocks): the list of u as `blocks` blocks of four candidates from
// block `first` on. A block holds the candidates' positions 2l+1 as f32, coordinate-major (four
// v128), and their grid indices (four i32). Lists are padded to whole blocks with NaN positions,
// whose distance is NaN and so never below the best.
const XXS_LIST_BLOCKS: i32 = 6038; // Σ ceil(n/4) over the lists: fixed by the grids
const S_LIST_BLOCKS: i32 = 7427;
const SEARCH_MAP = memory.data(2 * 4096 * 4, 16);
const CAND_POS = memory.data((XXS_LIST_BLOCKS + S_LIST_BLOCKS) * 64, 16);
const CAND_IDX = memory.data((XXS_LIST_BLOCKS + S_LIST_BLOCKS) * 16, 16);
let searchBuilt: i32 = 0;

function buildSearch(s: i32): void {
  const lattice = s == 0 ? LATTICE_IQ3XXS : LATTICE_IQ3S;
  const map = latticeMap(lattice);
  const nbr = latticeNeighbours(lattice);
  const pos = latticePositions(lattice);
  const smap = SEARCH_MAP + (<usize>s << 14);
  let blk = s == 0 ? 0 : XXS_LIST_BLOCKS;
  const end = s == 0 ? XXS_LIST_BLOCKS : XXS_LIST_BLOCKS + S_LIST_BLOCKS;
  for (let u = 0; u < 4096; u++) {
    const m = load<i32>(map + (<usize>u << 2));
    if (m >= 0) {
      store<i32>(smap + (<usize>u << 2), m);
      continue;
    }
    const list = nbr + (<usize>(-m - 1) << 1);
    const n = <i32>load<u16>(list);
    const nb = (n + 3) >> 2;
    if (nb > 15 || blk + nb > end) unreachable();
    store<i32>(smap + (<usize>u << 2), -1 - ((blk << 4) | nb));
    for (let c = 0; c < nb * 4; c++) {
      const b = <usize>(blk + (c >> 2));
      const lane = <usize>(c & 3) << 2;
      const gi = c < n ? <i32>load<u16>(list + 2 + (<usize>c << 1)) : -1;
      for (let i = 0; i < 4; i++) {
        const q: f32 = gi >= 0 ? <f32>load<i8>(pos + <usize>(gi * 4 + i)) : NaN;
        store<f32>(CAND_POS + (b << 6) + (<usize>i << 4) + lane, q);
      }
      store<i32>(CAND_IDX + (b << 4) + lane, gi);
    }
    blk += nb;
  }
  if (blk != end) unreachable();
}

@inline function searchMap(s: i32): usize {
  if ((searchBuilt & (1 << s)) == 0) {
    buildSearch(s);
    searchBuilt |= 1 << s;
  }
  return SEARCH_MAP + (<usize>s << 14);
}

/**
 * iq3_find_best_neighbour for the off-lattice entry `entry` of the search map: the grid index of the
 * listed point with the smallest Σ w[i]*(scale*q[i] - x[i])², the first in list order among equal
 * ones; -1 when no distance is below FLT_MAX (where ggml's assert fires).
 */
function bestNeighbour(entry: i32, xv: usize, wv: usize, scale: f32): i32 {
  const code = -1 - entry;
  const first = <usize>(code >> 4);
  const nb = code & 15;
  const s = f32x4.splat(scale);
  const x0 = v128.load32_splat(xv), x1 = v128.load32_splat(xv + 4), x2 = v128.load32_splat(xv + 8), x3 = v128.load32_splat(xv + 12);
  const w0 = v128.load32_splat(wv), w1 = v128.load32_splat(wv + 4), w2 = v128.load32_splat(wv + 8), w3 = v128.load32_splat(wv + 12);
  let best = f32x4.splat(FLT_MAX);
  let at = i32x4.splat(-1);
  let cur = i32x4(0, 1, 2, 3);
  let p = CAND_POS + (first << 6);
  for (let b = 0; b < nb; b++) {
    const d0 = f32x4.sub(f32x4.mul(s, v128.load(p)), x0);
    let d2 = f32x4.mul(f32x4.mul(w0, d0), d0);
    const d1 = f32x4.sub(f32x4.mul(s, v128.load(p, 16)), x1);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w1, d1), d1));
    const dd2 = f32x4.sub(f32x4.mul(s, v128.load(p, 32)), x2);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w2, dd2), dd2));
    const d3 = f32x4.sub(f32x4.mul(s, v128.load(p, 48)), x3);
    d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w3, d3), d3));
    const lt = f32x4.lt(d2, best);
    best = v128.bitselect(d2, best, lt);
    at = v128.bitselect(cur, at, lt);
    cur = i32x4.add(cur, i32x4.splat(4));
    p += 64;
  }
  // each lane holds the first smallest of its candidates (never NaN); the list's first smallest
  // is the lowest position among the lanes holding the smallest value
  let m = f32x4.min(best, v128.shuffle<f32>(best, best, 2, 3, 0, 1));
  m = f32x4.min(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2));
  let c = v128.bitselect(at, i32x4.splat(i32.MAX_VALUE), f32x4.eq(best, m));
  c = i32x4.min_s(c, v128.shuffle<i32>(c, c, 2, 3, 0, 1));
  c = i32x4.min_s(c, v128.shuffle<i32>(c, c, 1, 0, 3, 2));
  const k = i32x4.extract_lane(c, 0);
  if (k < 0) return -1;
  return load<i32>(CAND_IDX + (first << 4) + (<usize>k << 2));
}

// ---- scratch of one group of four sub-blocks (kernels allocate nothing) ----
const XV = memory.data(4 * 32 * 4, 16); // |x| per sub-block (one sign-flipped for IQ3_XXS parity)
const WV = memory.data(4 * 32 * 4, 16); // weights
const WA = memory.data(4 * 32 * 4, 16); // sqrt(weights): the neighbour search's weights
const XT = memory.data(32 * 16, 16); // XV transposed: value j of the four sub-blocks in one v128
const WT = memory.data(32 * 16, 16); // WV transposed
const WXT = memory.data(32 * 16, 16); // w*x transposed
const LAUX = memory.data(32 * 16, 16); // levels of the trial scale, transposed (i32 lanes)
const LBEST = memory.data(32 * 16, 16); // levels of the best scale so far, transposed
const MAXS = memory.data(16, 16);
const TSCALE = memory.data(16, 16);
const USCR = memory.data(16, 16);
const ACTIVE = memory.data(4 * 4, 16); // i32 per lane: the sub-block is searched
const ON_AUX = memory.data(4 * 8, 16); // per lane, per group: the trial scale's point is on the lattice
const ON_GRID = memory.data(4 * 8, 16); // same for the best scale
const LS = memory.data(32, 16); // one sub-block's final levels (i8)

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

function transpose4x32(src: usize, dst: usize): void {
  for (let i = 0; i < 32; i += 4) {
    const p = src + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p + 128), c = v128.load(p + 256), d = v128.load(p + 384);
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

@inline function codesOf(s: i32): usize {
  return s == 0 ? IQ3XXS_CODES : IQ3S_CODES;
}

/**
 * Weights, |x|, signs and max of sub-block `lane` of the group at x (sub-block sb of the super-block);
 * returns whether the reference searches it (max ≥ GROUP_MAX_EPS_IQ3_XXS, or max != 0 for IQ3_S).
 */
function prepareSubBlock(xxs: bool, xb: usize, qw: usize, sigma2: f32, lane: i32, sb: i32): bool {
  const off = <usize>lane << 7;
  const xv = XV + off, wv = WV + off, wa = WA + off;
  for (let i = 0; i < 32; ++i) {
    const x = ldf(xb, i);
    const w: f32 = qw != 0 ? ldf(qw, i) * Mathf.sqrt(sigma2 + x * x) : x * x;
    stf(wv, i, w);
    stf(wa, i, Mathf.sqrt(w));
  }
  const signs = SUB_SIGNS + (<usize>sb << 2);
  for (let k = 0; k < 4; ++k) {
    let nflip = 0;
    let s = 0;
    for (let i = 0; i < 8; ++i) {
      const x = ldf(xb, 8 * k + i);
      if (x >= 0) stf(xv, 8 * k + i, x);
      else {
        stf(xv, 8 * k + i, -x);
        ++nflip;
        s |= 1 << i;
      }
    }
    if (xxs && (nflip & 1) != 0) {
      // an even number of minus signs is stored: flip the group's least important value
      let imin = 0;
      let min: f32 = ldf(wv, 8 * k) * ldf(xb, 8 * k) * ldf(xb, 8 * k);
      for (let i = 1; i < 8; ++i) {
        const ax: f32 = ldf(wv, 8 * k + i) * ldf(xb, 8 * k + i) * ldf(xb, 8 * k + i);
        if (ax < min) {
          min = ax;
          imin = i;
        }
      }
      stf(xv, 8 * k + imin, -ldf(xv, 8 * k + imin));
      s ^= 1 << imin;
    }
    store<u8>(signs + <usize>k, <u8>(xxs ? s & 127 : s));
  }
  let max = ldf(xv, 0);
  for (let i = 1; i < 32; ++i) {
    const v = ldf(xv, i);
    max = max > v ? max : v;
  }
  stf(MAXS, lane, max);
  const active = xxs ? !(max < GROUP_MAX_EPS_IQ3_XXS) : max != 0;
  store<i32>(ACTIVE + (<usize>lane << 2), active ? 1 : 0);
  return active;
}

/** The levels of grid point gi into lane `lane` of the transposed levels at lt, group k. */
@inline function setLevels(codes: usize, gi: i32, lt: usize, k: i32, lane: i32): void {
  const code = <i32>load<u16>(codes + (<usize>gi << 1));
  const p = lt + (<usize>(4 * k) << 4) + (<usize>lane << 2);
  store<i32>(p, code & 7);
  store<i32>(p, (code >> 3) & 7, 16);
  store<i32>(p, (code >> 6) & 7, 32);
  store<i32>(p, (code >> 9) & 7, 48);
}

/**
 * The trial-scale search of four sub-blocks (sb0..sb0+3 of the super-block at xbl), one per lane,
 * then each one's refinement and final scale. Results in SCALES, SUB_ACTIVE, SUB_SIGNS, SUB_GRID.
 */
function searchGroup(xxs: bool, xbl: usize, qwbl: usize, sigma2: f32, sb0: i32): void {
  const s = xxs ? 0 : 1;
  const smap = searchMap(s);
  const codes = codesOf(s);
  let anyActive = false;
  for (let lane = 0; lane < 4; ++lane) {
    const sb = sb0 + lane;
    const a = prepareSubBlock(xxs, xbl + (<usize>sb << 7), qwbl != 0 ? qwbl + (<usize>sb << 7) : 0, sigma2, lane, sb);
    store<u8>(SUB_ACTIVE + <usize>sb, a ? 1 : 0);
    anyActive = anyActive || a;
  }
  if (!anyActive) {
    for (let lane = 0; lane < 4; ++lane) stf(SCALES, sb0 + lane, 0);
    return;
  }
  transpose4x32(XV, XT);
  transpose4x32(WV, WT);
  for (let j = 0; j < 32; ++j) stv(WXT, j, f32x4.mul(ldv(WT, j), ldv(XT, j)));
  const zero = f32x4.splat(0);
  for (let j = 0; j < 32; ++j) stv(LBEST, j, zero);
  memory.fill(ON_GRID, xxs ? 1 : 0, 32);
  const maxv = v128.load(MAXS);
  let scale = f32x4.div(maxv, f32x4.splat(15));
  let best = zero;
  const nscale = xxs ? 15 : 9;
  const seven = i32x4.splat(7);
  for (let is = -nscale; is <= nscale; ++is) {
    const id = f32x4.div(f32x4.splat(<f32>15 + <f32>is * <f32>0.2), maxv);
    v128.store(TSCALE, f32x4.div(f32x4.splat(1), id));
    for (let k = 0; k < 8; ++k) {
      let u = i32x4.splat(0);
      for (let i = 0; i < 4; ++i) {
        const j = 4 * k + i;
        let l = nearestIntX4(f32x4.mul(f32x4.splat(0.5), f32x4.sub(f32x4.mul(id, ldv(XT, j)), f32x4.splat(1))));
        l = i32x4.max_s(zero, i32x4.min_s(seven, l));
        stv(LAUX, j, l);
        u = v128.or(u, i32x4.shl(l, 3 * i));
      }
      v128.store(USCR, u);
      for (let lane = 0; lane < 4; ++lane) {
        if (load<i32>(ACTIVE + (<usize>lane << 2)) == 0) continue;
        const e = load<i32>(smap + (<usize>load<i32>(USCR + (<usize>lane << 2)) << 2));
        store<u8>(ON_AUX + <usize>(lane * 8 + k), e >= 0 ? 1 : 0);
        if (e >= 0) continue;
        const off = (<usize>lane << 7) + (<usize>k << 4);
        const gi = bestNeighbour(e, XV + off, WA + off, ldf(TSCALE, lane));
        if (gi < 0) {
          aborts = true;
          continue;
        }
        setLevels(codes, gi, LAUX, k, lane);
      }
    }
    let sumqx = zero, sumq2 = zero;
    for (let j = 0; j < 32; ++j) {
      const q = f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(ldv(LAUX, j), 1), i32x4.splat(1)));
      sumqx = f32x4.add(sumqx, f32x4.mul(ldv(WXT, j), q));
      sumq2 = f32x4.add(sumq2, f32x4.mul(f32x4.mul(ldv(WT, j), q), q));
    }
    const upd = v128.and(f32x4.gt(sumq2, zero), f32x4.gt(f32x4.mul(sumqx, sumqx), f32x4.mul(best, sumq2)));
    if (!v128.any_true(upd)) continue;
    scale = v128.bitselect(f32x4.div(sumqx, sumq2), scale, upd);
    best = v128.bitselect(f32x4.mul(scale, sumqx), best, upd);
    for (let j = 0; j < 32; ++j) stv(LBEST, j, v128.bitselect(ldv(LAUX, j), ldv(LBEST, j), upd));
    const m = i32x4.bitmask(upd);
    for (let lane = 0; lane < 4; ++lane) {
      if ((m & (1 << lane)) != 0) store<u64>(ON_GRID + <usize>(lane * 8), load<u64>(ON_AUX + <usize>(lane * 8)));
    }
  }
  v128.store(TSCALE, scale);
  for (let lane = 0; lane < 4; ++lane) {
    const sb = sb0 + lane;
    if (load<i32>(ACTIVE + (<usize>lane << 2)) == 0) {
      stf(SCALES, sb, 0);
      continue;
    }
    for (let j = 0; j < 32; ++j) store<i8>(LS + <usize>j, <i8>load<i32>(LBEST + (<usize>j << 4) + (<usize>lane << 2)));
    finishSubBlock(xxs, smap, codes, lane, sb, ldf(TSCALE, lane));
  }
}

/**
 * One sub-block after the trial scales (levels in LS, lane `lane` of the scratch): groups off the
 * lattice are rounded again with the best scale (IQ3_S redoes every group), the scale refitted,
 * a negative scale made positive with the signs flipped; grid indices and scale stored for sb.
 */
function finishSubBlock(xxs: bool, smap: usize, codes: usize, lane: i32, sb: i32, scale: f32): void {
  const off = <usize>lane << 7;
  const xv = XV + off, wv = WV + off, wa = WA + off;
  const on = ON_GRID + <usize>(lane * 8);
  let notOnGrid = 0;
  for (let k = 0; k < 8; ++k) if (load<u8>(on + <usize>k) == 0) ++notOnGrid;
  if (notOnGrid > 0 && scale > 0) {
    const id: f32 = <f32>1 / scale;
    for (let k = 0; k < 8; ++k) {
      if (xxs && load<u8>(on + <usize>k) != 0) continue;
      let u = 0;
      for (let i = 0; i < 4; ++i) {
        let l = nearestInt(<f32>0.5 * (id * ldf(xv, 4 * k + i) - <f32>1));
        l = max(0, min(7, l));
        u |= l << (3 * i);
      }
      let gi = load<i32>(smap + (<usize>u << 2));
      if (gi < 0) {
        gi = bestNeighbour(gi, xv + (<usize>k << 4), wa + (<usize>k << 4), scale);
        if (gi < 0) {
          aborts = true;
          gi = 0;
        }
      }
      const code = <i32>load<u16>(codes + (<usize>gi << 1));
      for (let i = 0; i < 4; ++i) store<i8>(LS + <usize>(4 * k + i), <i8>((code >> (3 * i)) & 7));
    }
    let sumqx: f32 = 0, sumq2: f32 = 0;
    for (let i = 0; i < 32; ++i) {
      const w = ldf(wv, i);
      const li: i32 = 2 * <i32>load<i8>(LS + <usize>i) + 1;
      const q = <f32>li;
      sumqx += w * ldf(xv, i) * q;
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
  const sigma2 = superBlockSigma2(x);
  searchGroup(true, x, qw, sigma2, 0);
  searchGroup(true, x, qw, sigma2, 4);
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
  const sigma2 = superBlockSigma2(x);
  searchGroup(false, x, qw, sigma2, 0);
  searchGroup(false, x, qw, sigma2, 4);
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
