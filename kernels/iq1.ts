// IQ1_S (super-blocks of 256: {f16 d, u8 qs[32], u16 qh[8]}) and IQ1_M ({u8 qs[32], u8 qh[16],
// u8 scales[8]}, the f16 super-block scale spread over the scales' top nibbles): groups of 8
// values on the 2048-point IQ1S lattice (coordinates -1, 0, 1) shifted by ±IQ1S_DELTA, with a 3-bit
// scale per block of 32 (IQ1_S) or 16 (IQ1_M). ggml's quantize_row_iq1_s_impl /
// quantize_row_iq1_m_impl: for each block the values are sorted, every split of the sorted values
// into {-1, 0, 1} is scored (both shifts; IQ1_M: a shift per half-block, four combinations), and
// groups whose code is off the lattice go to their nearest neighbour (iq1_find_best_neighbour2).
//
// Where the work is, and how it keeps the reference's arithmetic:
// - IQ1_S split search: sumqx/sumq2 come from prefix sums, so each split is a few operations;
//   four consecutive second boundaries are scored in lanes and only a group with a lane that
//   beats the best so far is replayed in order, lane by lane, as the scalar loop would.
// - IQ1_M split search: the reference re-adds all 16 terms per split in sorted order, for four
//   shift combinations; those four are the lanes of one vector (the per-lane operations are the
//   scalar ones), and the sums over the first boundary's prefix and the middle segment are carried
//   from split to split (they are the same partial sums), so only the last segment is re-added.
// - Neighbour search: each coordinate's three possible terms w*diff*diff are computed once and
//   four neighbours are scored in lanes, picking the first minimum as the scalar loop does.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { IQ1S_CODES, IQ1S_SIZE } from "./iq-grids";
import { LATTICE_IQ1S, latticeMap, latticeNeighbours, latticeValues } from "./iq-neighbours";
import { nearestInt } from "./quant-common";

const QK_K: i32 = 256;
const S_BLOCK_BYTES: usize = 50;
const M_BLOCK_BYTES: usize = 56;
const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;
const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
const DELTA: f32 = 0.125; // IQ1S_DELTA = IQ1M_DELTA
const FLT_MAX: f32 = 3.4028234663852886e38;

/** quantize()'s code for a row the reference aborts on (GGML_ASSERT): -(2 + row index). */
export const ERR_ROW_ABORTS: i32 = -2;

// x_p = {-1 + Δ, Δ, 1 + Δ}, x_m = {-1 - Δ, -Δ, 1 - Δ}; lane 3 is padding
const XP: usize = memory.data<f32>([-1 + DELTA, DELTA, 1 + DELTA, 0]);
const XM: usize = memory.data<f32>([-1 - DELTA, -DELTA, 1 - DELTA, 0]);

// Scratch (kernels allocate nothing)
const W: usize = memory.data(32 * 4, 16);
const ORDER: usize = memory.data(32 * 4, 16);
const SUMX: usize = memory.data(40 * 4, 16);
const SUMW: usize = memory.data(40 * 4, 16);
const LV: usize = memory.data(32, 16);
const SCALES: usize = memory.data(16 * 4, 16);
const SHIFTS: usize = memory.data(16 * 4, 16);
const INDEX: usize = memory.data(4 * 4, 16);
const NT: usize = memory.data(8 * 16, 16); // neighbour search: per coordinate the terms for levels 0..2
const TX: usize = memory.data(3 * 16 * 16, 16); // IQ1_M: per segment and sorted position, sumqx terms
const TQ: usize = memory.data(3 * 16 * 16, 16); // … and sumq2 terms
const P4: usize = memory.data(256 * 4, 16); // neighbour search: partial sums after 4 coordinates
const LANES_X: usize = memory.data(16, 16);
const LANES_Q: usize = memory.data(16, 16);
const TAIL_XP: usize = memory.data(40 * 4, 16); // IQ1_S search: last-segment terms per i2
const TAIL_XM: usize = memory.data(40 * 4, 16);
const TAIL_QP: usize = memory.data(40 * 4, 16);
const TAIL_QM: usize = memory.data(40 * 4, 16);
const LANES_SX: usize = memory.data(16, 16);
const LANES_SQ: usize = memory.data(16, 16);
const LANES_MX: usize = memory.data(16, 16);
const LANES_MQ: usize = memory.data(16, 16);

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function stf(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
@inline function ldi(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}
@inline function sti(p: usize, i: i32, v: i32): void {
  store<i32>(p + (<usize>i << 2), v);
}
@inline function toF32(v: i32): f32 {
  return <f32>v;
}
@inline function gridCode(g: i32): i32 {
  return <i32>load<u16>(IQ1S_CODES + (<usize>g << 1));
}

// ggml's kmap_q2xs / kneighbors_q2xs of the IQ1S grid (kernels/iq-neighbours.ts), and the
// neighbour lists again with each neighbour's code instead of its index, for the search to read
// four at a time: NB_CODES_AT[u] is where the list of code u starts (the count, then the codes).
// Only codes with every level in 0..2 are looked up, so only theirs are copied.
const KMAP_SIZE: i32 = 43692;
const NB_CODES_CAPACITY: i32 = 327721 + 4513; // neighbours of the 4513 such codes off the grid, and their counts
const NB_CODES: usize = memory.data(NB_CODES_CAPACITY * 2 + 16, 16);
const NB_CODES_AT: usize = memory.data(KMAP_SIZE * 4, 16);
let kmap: usize = 0;
let kneighbours: usize = 0;

function tablesReady(): void {
  if (kmap != 0) return;
  const map = latticeMap(LATTICE_IQ1S);
  const lists = latticeNeighbours(LATTICE_IQ1S);
  let at = 0;
  for (let u = 0; u < KMAP_SIZE; u++) {
    if ((u & (u >> 1) & 0x5555) != 0) continue; // a level 3
    const m = load<i32>(map + (<usize>u << 2));
    if (m >= 0) continue;
    const nb = lists + (<usize>(-m - 1) << 1);
    const n = <i32>load<u16>(nb);
    if (at + 1 + n > NB_CODES_CAPACITY) unreachable();
    sti(NB_CODES_AT, u, at);
    store<u16>(NB_CODES + (<usize>at << 1), <u16>n);
    for (let j = 1; j <= n; j++) store<u16>(NB_CODES + (<usize>(at + j) << 1), <u16>gridCode(<i32>load<u16>(nb + (<usize>j << 1))));
    at += 1 + n;
  }
  kneighbours = lists;
  kmap = map;
}

/** kmap_q2xs[u]: the grid index of code u, or < 0 when u is off the grid. */
@inline
function iq1sGridIndex(u: i32): i32 {
  return load<i32>(kmap + (<usize>u << 2));
}

/** The neighbour list of an off-grid code u (u16 count, then grid indices). */
@inline
function iq1sNeighbours(u: i32): usize {
  return kneighbours + (<usize>(-load<i32>(kmap + (<usize>u << 2)) - 1) << 1);
}

/** The codes of the neighbours of iq1sNeighbours(u), at the same positions. */
@inline
function iq1sNeighbourCodes(u: i32): usize {
  return NB_CODES + (<usize>ldi(NB_CODES_AT, u) << 1);
}

/**
 * ORDER[0..n) = indices of xb[0..n) sorted ascending by value, equal values in index order (what
 * glibc's qsort, a merge sort, gives with iq1_sort_helper): index i goes to rank
 * #{j < i : x[j] <= x[i]} + #{j > i : x[j] < x[i]}, counted four j at a time.
 */
function sortOrder(xb: usize, n: i32): void {
  const iota = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);
  for (let c = 0; c < n; c += 4) {
    // the chunk holding i: lanes before i count <=, lanes after count <
    const own = v128.load(xb + (<usize>c << 2));
    for (let l = 0; l < 4; l++) {
      const i = c + l;
      const xi = f32x4.splat(ldf(xb, i));
      const before = i32x4.lt_s(iota, i32x4.splat(l));
      let cnt = i32x4.sub(i32x4.splat(0), v128.bitselect(f32x4.le(own, xi), f32x4.lt(own, xi), before));
      for (let v = 0; v < c; v += 4) cnt = i32x4.sub(cnt, f32x4.le(v128.load(xb + (<usize>v << 2)), xi));
      for (let v = c + 4; v < n; v += 4) cnt = i32x4.sub(cnt, f32x4.lt(v128.load(xb + (<usize>v << 2)), xi));
      const rank = i32x4.extract_lane(cnt, 0) + i32x4.extract_lane(cnt, 1) + i32x4.extract_lane(cnt, 2) + i32x4.extract_lane(cnt, 3);
      sti(ORDER, rank, i);
    }
  }
}

/** max |xb[i]| (values are finite, so the lane-wise maximum is the reference's MAX loop's). */
function absMax(xb: usize, n: i32): f32 {
  let m = f32x4.abs(v128.load(xb));
  for (let v = 4; v < n; v += 4) m = f32x4.pmax(m, f32x4.abs(v128.load(xb + (<usize>v << 2))));
  const a = f32x4.extract_lane(m, 0), b = f32x4.extract_lane(m, 1), c = f32x4.extract_lane(m, 2), d = f32x4.extract_lane(m, 3);
  const ab = a > b ? a : b, cd = c > d ? c : d;
  return ab > cd ? ab : cd;
}

/** weight[i] = qw[i]*sqrtf(sigma2 + x²), or x² without an importance vector (IQ1_M only); lane-wise. */
function blockWeights(xb: usize, qw: usize, n: i32, sigma2: f32): void {
  const s2 = f32x4.splat(sigma2);
  for (let v = 0; v < n; v += 4) {
    const at = <usize>v << 2;
    const x = v128.load(xb + at);
    const x2 = f32x4.mul(x, x);
    v128.store(W + at, qw != 0 ? f32x4.mul(v128.load(qw + at), f32x4.sqrt(f32x4.add(s2, x2))) : x2);
  }
}

/**
 * iq1_find_best_neighbour2 for the off-grid code u of the 8 values at xval (weights w, levels xx):
 * the grid index, or -1 where the reference's assert fires.
 */
function bestNeighbour(u: i32, xval: usize, w: usize, scale: f32, xx: usize): i32 {
  // NT lane l of coordinate i: w*diff*diff for level l, exactly the scalar terms; lane 3 (padding) +inf
  const xxv = v128.load(xx);
  const sv = f32x4.splat(scale);
  for (let i = 0; i < 8; i++) {
    const diff = f32x4.sub(f32x4.mul(sv, xxv), f32x4.splat(ldf(xval, i)));
    const t = f32x4.mul(f32x4.mul(f32x4.splat(ldf(w, i)), diff), diff);
    v128.store(NT + (<usize>i << 4), f32x4.replace_lane(t, 3, Infinity));
  }
  // the partial sums after the first four coordinates depend on their levels alone: all 81 of
  // them (the scalar loop's first four additions, from 0), at P4[code & 0xff]; lanes: level of coordinate 0
  const zero = f32x4.splat(0);
  const p1 = f32x4.add(zero, v128.load(NT));
  const t1 = NT + 16, t2 = NT + 32, t3 = NT + 48;
  for (let b = 0; b < 3; b++) {
    const p2 = f32x4.add(p1, f32x4.splat(ldf(t1, b)));
    for (let c = 0; c < 3; c++) {
      const p3 = f32x4.add(p2, f32x4.splat(ldf(t2, c)));
      const at = P4 + (<usize>((b << 2) | (c << 4)) << 2);
      v128.store(at, f32x4.add(p3, f32x4.splat(ldf(t3, 0))));
      v128.store(at, f32x4.add(p3, f32x4.splat(ldf(t3, 1))), 64 << 2);
      v128.store(at, f32x4.add(p3, f32x4.splat(ldf(t3, 2))), 128 << 2);
    }
  }
  const nt4 = v128.load(NT, 64), nt5 = v128.load(NT, 80), nt6 = v128.load(NT, 96), nt7 = v128.load(NT, 112);
  const nb = iq1sNeighbours(u);
  const codes = iq1sNeighbourCodes(u);
  const n = <i32>load<u16>(nb);
  const nv = i32x4.splat(n);
  let bestV = f32x4.splat(FLT_MAX);
  let bestJ = i32x4.splat(-1);
  const lanes = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);
  const byteOffsets = i32x4.splat(0x03020100);
  const byteScale = i32x4.splat(0x04040404);
  const three = i32x4.splat(3);
  for (let j = 1; j <= n; j += 4) {
    // four codes; lanes past the list get code 0xffff: level 3 (+inf) in the last coordinates
    const jv = i32x4.add(lanes, i32x4.splat(j));
    const c = v128.bitselect(
      i32x4.extend_low_i16x8_u(v128.load64_zero(codes + (<usize>j << 1))), i32x4.splat(0xffff), i32x4.le_s(jv, nv));
    const lo = v128.and(c, i32x4.splat(0xff));
    let d2 = f32x4.splat(load<f32>(P4 + (<usize>i32x4.extract_lane(lo, 0) << 2)));
    d2 = f32x4.replace_lane(d2, 1, load<f32>(P4 + (<usize>i32x4.extract_lane(lo, 1) << 2)));
    d2 = f32x4.replace_lane(d2, 2, load<f32>(P4 + (<usize>i32x4.extract_lane(lo, 2) << 2)));
    d2 = f32x4.replace_lane(d2, 3, load<f32>(P4 + (<usize>i32x4.extract_lane(lo, 3) << 2)));
    const i4 = i32x4.add(i32x4.mul(v128.and(i32x4.shr_u(c, 8), three), byteScale), byteOffsets);
    d2 = f32x4.add(d2, i8x16.swizzle(nt4, i4));
    const i5 = i32x4.add(i32x4.mul(v128.and(i32x4.shr_u(c, 10), three), byteScale), byteOffsets);
    d2 = f32x4.add(d2, i8x16.swizzle(nt5, i5));
    const i6 = i32x4.add(i32x4.mul(v128.and(i32x4.shr_u(c, 12), three), byteScale), byteOffsets);
    d2 = f32x4.add(d2, i8x16.swizzle(nt6, i6));
    const i7 = i32x4.add(i32x4.mul(v128.and(i32x4.shr_u(c, 14), three), byteScale), byteOffsets);
    d2 = f32x4.add(d2, i8x16.swizzle(nt7, i7));
    const upd = f32x4.lt(d2, bestV);
    bestV = v128.bitselect(d2, bestV, upd);
    bestJ = v128.bitselect(jv, bestJ, upd);
  }
  // the scalar scan keeps the first strict minimum: the smallest value, then the earliest position
  v128.store(LANES_X, bestV);
  v128.store(LANES_Q, bestJ);
  let best: f32 = FLT_MAX;
  let bj = -1;
  for (let k = 0; k < 4; k++) {
    const jk = ldi(LANES_Q, k);
    if (jk < 0) continue;
    const vk = ldf(LANES_X, k);
    if (vk < best || (vk == best && jk < bj)) { best = vk; bj = jk; }
  }
  if (bj >= 0) return <i32>load<u16>(nb + (<usize>bj << 1));
  return fullGridFallback(xval, w, scale, xx);
}

/**
 * The reference's second loop over the whole grid, reached only when no neighbour scores below
 * FLT_MAX (overflowing magnitudes). It reads xval[grid index] (sic), past the group; that is
 * reproduced as far as linear memory goes.
 */
function fullGridFallback(xval: usize, w: usize, scale: f32, xx: usize): i32 {
  const memEnd = <usize>memory.size() << 16;
  let best: f32 = FLT_MAX;
  let gi = -1;
  for (let i = 0; i < IQ1S_SIZE; i++) {
    const code = gridCode(i);
    const at = xval + (<usize>i << 2);
    const xi: f32 = at + 4 <= memEnd ? load<f32>(at) : 0;
    let d2: f32 = 0;
    for (let j = 0; j < 8; j++) {
      const q = ldf(xx, (code >> (2 * j)) & 3);
      const diff = scale * q - xi;
      d2 += ldf(w, j) * diff * diff;
    }
    if (d2 < best) { best = d2; gi = i; }
  }
  return gi;
}

/**
 * The grid index g of L[8k..8k+8) when it is on the grid, else -2 - (its best neighbour), so
 * -1 when the neighbour search fails (where the reference aborts).
 */
@inline
function groupIndex(k: i32, xb: usize, scale: f32, xx: usize): i32 {
  let u = 0;
  for (let j = 0; j < 8; j++) u |= <i32>load<u8>(LV + <usize>(8 * k + j)) << (2 * j);
  const g = iq1sGridIndex(u);
  if (g >= 0) return g;
  return -2 - bestNeighbour(u, xb + (<usize>(8 * k) << 2), W + (<usize>(8 * k) << 2), scale, xx);
}

// ---------------------------------------------------------------- IQ1_S

let bestScore: f32 = 0;
let bestScale: f32 = 0;
let bestI1 = -1;
let bestI2 = -1;
let bestShift = 0;

/** One candidate of a split search: the reference's test and update, on its sums. */
@inline
function trySplit(sumqx: f32, sumq2: f32, i1: i32, i2: i32, shift: i32): void {
  if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2) {
    bestScale = sumqx / sumq2;
    bestScore = bestScale * sumqx;
    bestI1 = i1; bestI2 = i2; bestShift = shift;
  }
}

/** The split search of one IQ1_S block (SUMX/SUMW filled): sets bestScale, bestI1/2, bestShift. */
function searchSplitsS(max: f32): void {
  bestScore = -FLT_MAX; bestScale = max; bestI1 = -1; bestI2 = -1; bestShift = 0;
  const xp = v128.load(XP), xm = v128.load(XM);
  const p0 = f32x4.splat(f32x4.extract_lane(xp, 0)), p1 = f32x4.splat(f32x4.extract_lane(xp, 1)), p2 = f32x4.splat(f32x4.extract_lane(xp, 2));
  const m0 = f32x4.splat(f32x4.extract_lane(xm, 0)), m2 = f32x4.splat(f32x4.extract_lane(xm, 2));
  const zero = f32x4.splat(0);
  const sx0 = ldf(SUMX, 0), sw0 = ldf(SUMW, 0);
  const sx32 = f32x4.splat(ldf(SUMX, 32)), sw32 = f32x4.splat(ldf(SUMW, 32));
  // the last segment's terms depend on i2 alone: computed once per i2 (NaN past 32, from the padding)
  for (let i2: usize = 0; i2 < 36; i2 += 4) {
    const cx = f32x4.sub(sx32, v128.load(SUMX + (i2 << 2)));
    const cw = f32x4.sub(sw32, v128.load(SUMW + (i2 << 2)));
    v128.store(TAIL_XP + (i2 << 2), f32x4.mul(cx, p2));
    v128.store(TAIL_XM + (i2 << 2), f32x4.mul(cx, m2));
    v128.store(TAIL_QP + (i2 << 2), f32x4.mul(f32x4.mul(cw, p2), p2));
    v128.store(TAIL_QM + (i2 << 2), f32x4.mul(f32x4.mul(cw, m2), m2));
  }
  for (let i1 = 0; i1 <= 32; i1++) {
    const sx1s = ldf(SUMX, i1), sw1s = ldf(SUMW, i1);
    const sx1 = f32x4.splat(sx1s), sw1 = f32x4.splat(sw1s);
    const ax = f32x4.splat(sx1s - sx0), aw = f32x4.splat(sw1s - sw0);
    const apx = f32x4.mul(ax, p0), amx = f32x4.mul(ax, m0);
    const apq = f32x4.mul(f32x4.mul(aw, p0), p0), amq = f32x4.mul(f32x4.mul(aw, m0), m0);
    for (let i2 = i1; i2 <= 32; i2 += 4) {
      const at = <usize>i2 << 2;
      const bx = f32x4.sub(v128.load(SUMX + at), sx1);
      const bw = f32x4.sub(v128.load(SUMW + at), sw1);
      // x_m[1] = -x_p[1]: the middle terms of the minus shift are the plus shift's, negated for sumqx
      const mx = f32x4.mul(bx, p1), mq = f32x4.mul(f32x4.mul(bw, p1), p1);
      const qxp = f32x4.add(f32x4.add(apx, mx), v128.load(TAIL_XP + at));
      const q2p = f32x4.add(f32x4.add(apq, mq), v128.load(TAIL_QP + at));
      const qxm = f32x4.add(f32x4.sub(amx, mx), v128.load(TAIL_XM + at));
      const q2m = f32x4.add(f32x4.add(amq, mq), v128.load(TAIL_QM + at));
      const best = f32x4.splat(bestScore);
      // a superset of the candidates that pass (sumq2 > 0 is left to the replay); lanes past
      // i2 = 32 read the NaN padding of SUMX/SUMW and never pass
      const okp = f32x4.gt(f32x4.mul(qxp, qxp), f32x4.mul(best, q2p));
      const okm = f32x4.gt(f32x4.mul(qxm, qxm), f32x4.mul(best, q2m));
      if (!v128.any_true(v128.or(okp, okm))) continue;
      // some lane beats the best so far: replay the four in the reference's order (a new best
      // may be a rounding below the old one, so every lane is tested again against it)
      v128.store(LANES_SX, qxp); v128.store(LANES_SQ, q2p);
      v128.store(LANES_MX, qxm); v128.store(LANES_MQ, q2m);
      const lanes = min(4, 33 - i2);
      for (let l = 0; l < lanes; l++) {
        trySplit(ldf(LANES_SX, l), ldf(LANES_SQ, l), i1, i2 + l, 1);
        trySplit(ldf(LANES_MX, l), ldf(LANES_MQ, l), i1, i2 + l, -1);
      }
    }
  }
}

/** quantize_row_iq1_s_impl for the super-block at x (importance weights qw) into y; 0 or -1 (abort). */
function quantizeSuperBlockS(x: usize, qw: usize, y: usize): i32 {
  memory.fill(y, 0, S_BLOCK_BYTES);
  let maxScale: f32 = 0;
  let sumx2: f32 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 += ldf(x, i) * ldf(x, i);
  const sigma2: f32 = <f32>2 * sumx2 / <f32>QK_K;
  for (let ib = 0; ib < 8; ib++) {
    const xb = x + (<usize>ib << 7);
    blockWeights(xb, qw + (<usize>ib << 7), 32, sigma2);
    const max = absMax(xb, 32);
    if (max < GROUP_MAX_EPS_IQ1_S) {
      stf(SCALES, ib, 0); sti(SHIFTS, ib, 1);
      continue;
    }
    sortOrder(xb, 32);
    stf(SUMX, 0, 0); stf(SUMW, 0, 0);
    for (let j = 0; j < 32; j++) {
      const i = ldi(ORDER, j);
      stf(SUMX, j + 1, ldf(SUMX, j) + ldf(W, i) * ldf(xb, i));
      stf(SUMW, j + 1, ldf(SUMW, j) + ldf(W, i));
    }
    for (let j = 33; j < 40; j++) { stf(SUMX, j, NaN); stf(SUMW, j, NaN); }
    searchSplitsS(max);
    let scale = bestScale;
    let shift = bestShift;
    if (bestI1 < 0 || bestI2 < 0 || shift == 0) {
      stf(SCALES, ib, 0); sti(SHIFTS, ib, 1);
      continue;
    }
    for (let j = 0; j < 32; j++) store<u8>(LV + <usize>ldi(ORDER, j), j < bestI1 ? 0 : j < bestI2 ? 1 : 2);
    if (scale < 0) {
      for (let j = 0; j < 32; j++) store<u8>(LV + <usize>j, 2 - load<u8>(LV + <usize>j));
      scale = -scale; shift = -shift;
    }
    let allOnGrid = true;
    const xx = shift == 1 ? XP : XM;
    for (let k = 0; k < 4; k++) {
      let g = groupIndex(k, xb, scale, xx);
      if (g < 0) {
        allOnGrid = false;
        g = -2 - g;
        if (g < 0) return -1;
      }
      sti(INDEX, k, g);
    }
    if (!allOnGrid) {
      let sumqx: f32 = 0, sumq2: f32 = 0;
      for (let k = 0; k < 4; k++) {
        const code = gridCode(ldi(INDEX, k));
        for (let j = 0; j < 8; j++) {
          const w = ldf(W, 8 * k + j);
          const q = ldf(xx, (code >> (2 * j)) & 3);
          sumqx += w * q * ldf(xb, 8 * k + j);
          sumq2 += w * q * q;
        }
      }
      if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
    }
    let h = 0;
    for (let k = 0; k < 4; k++) {
      const g = ldi(INDEX, k);
      store<u8>(y + 2 + <usize>(4 * ib + k), <u8>(g & 255));
      h |= (g >> 8) << (3 * k);
    }
    store<u16>(y + 34 + (<usize>ib << 1), <u16>h);
    if (!(scale >= 0)) return -1;
    stf(SCALES, ib, scale); sti(SHIFTS, ib, shift);
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale == 0) return 0;
  const d: f32 = maxScale / <f32>15;
  store<u16>(y, fp32ToFp16(d * <f32>1.125));
  const id: f32 = <f32>1 / d;
  for (let ib = 0; ib < 8; ib++) {
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(7, l));
    if (ldi(SHIFTS, ib) == -1) l |= 8;
    const qh = y + 34 + (<usize>ib << 1);
    store<u16>(qh, load<u16>(qh) | <u16>(l << 12));
  }
  return 0;
}

export function quantizeRowsIQ1_S(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): i32 {
  tablesReady();
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * S_BLOCK_BYTES;
    for (let b = 0; b < nblocks; b++) {
      if (quantizeSuperBlockS(x + (<usize>b << 10), imatrix + (<usize>b << 10), y + <usize>b * S_BLOCK_BYTES) != 0) return ERR_ROW_ABORTS - r;
    }
  }
  return 0;
}

// ---------------------------------------------------------------- IQ1_M

/** The four shift combinations' coefficients for a value in the first / second half of a block. */
@inline
function coefficients(s: i32, firstHalf: bool): v128 {
  const p = ldf(XP, s), m = ldf(XM, s);
  // k = 0: +,+  1: +,-  2: -,+  3: -,-  (first half's shift, second half's)
  return firstHalf ? f32x4(p, p, m, m) : f32x4(p, m, p, m);
}

/** The split search of one IQ1_M block of 16 (W, ORDER filled): sets bestScale, bestI1/2, bestShift (= best_k). */
function searchSplitsM(xb: usize, max: f32): void {
  for (let j = 0; j < 16; j++) {
    const i = ldi(ORDER, j);
    const w = f32x4.splat(ldf(W, i));
    const xv = f32x4.splat(ldf(xb, i));
    for (let s = 0; s < 3; s++) {
      const c = coefficients(s, i < 8);
      const wc = f32x4.mul(w, c);
      const at = <usize>((s * 16 + j) << 4);
      v128.store(TX + at, f32x4.mul(wc, xv));
      v128.store(TQ + at, f32x4.mul(wc, c));
    }
  }
  bestScore = -FLT_MAX; bestScale = max; bestI1 = -1; bestI2 = -1; bestShift = -1;
  const zero = f32x4.splat(0);
  let px = zero, pq = zero; // segment-0 sums over j < i1
  for (let i1 = 0; i1 <= 16; i1++) {
    let rx = px, rq = pq; // … and segment-1 sums over i1 <= j < i2
    for (let i2 = i1; i2 <= 16; i2++) {
      let sx = rx, sq = rq;
      for (let j = i2; j < 16; j++) {
        const at = <usize>((32 + j) << 4);
        sx = f32x4.add(sx, v128.load(TX + at));
        sq = f32x4.add(sq, v128.load(TQ + at));
      }
      const ok = v128.and(f32x4.gt(sq, zero), f32x4.gt(f32x4.mul(sx, sx), f32x4.mul(f32x4.splat(bestScore), sq)));
      if (v128.any_true(ok)) {
        v128.store(LANES_X, sx);
        v128.store(LANES_Q, sq);
        for (let k = 0; k < 4; k++) {
          trySplit(ldf(LANES_X, k), ldf(LANES_Q, k), i1, i2, k);
        }
      }
      if (i2 < 16) {
        const at = <usize>((16 + i2) << 4);
        rx = f32x4.add(rx, v128.load(TX + at));
        rq = f32x4.add(rq, v128.load(TQ + at));
      }
    }
    if (i1 < 16) {
      const at = <usize>(i1 << 4);
      px = f32x4.add(px, v128.load(TX + at));
      pq = f32x4.add(pq, v128.load(TQ + at));
    }
  }
}

/** Levels of half-block k (0, 1) under shift combination bestK. */
@inline
function levelsM(k: i32, bestK: i32): usize {
  return k == 0 ? (bestK < 2 ? XP : XM) : (bestK % 2 == 0 ? XP : XM);
}

const MASKS: usize = memory.data<u8>([0x00, 0x80, 0x08, 0x88]);

/** quantize_row_iq1_m_impl for the super-block at x (qw = 0: no importance vector) into y; 0 or -1 (abort). */
function quantizeSuperBlockM(x: usize, qw: usize, y: usize): i32 {
  memory.fill(y, 0, M_BLOCK_BYTES);
  const qs = y, qh = y + 32, sc = y + 48;
  let maxScale: f32 = 0;
  let sumx2: f32 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 += ldf(x, i) * ldf(x, i);
  const sigma2: f32 = <f32>2 * sumx2 / <f32>QK_K;
  for (let ib = 0; ib < 16; ib++) {
    const xb = x + (<usize>ib << 6);
    blockWeights(xb, qw != 0 ? qw + (<usize>ib << 6) : 0, 16, sigma2);
    const max = absMax(xb, 16);
    if (max < GROUP_MAX_EPS_IQ1_M) {
      stf(SCALES, ib, 0); sti(SHIFTS, ib, 0);
      continue;
    }
    sortOrder(xb, 16);
    searchSplitsM(xb, max);
    let scale = bestScale;
    let bestK = bestShift;
    if (bestI1 < 0 || bestI2 < 0 || bestK < 0) {
      stf(SCALES, ib, 0); sti(SHIFTS, ib, 0);
      continue;
    }
    for (let j = 0; j < 16; j++) store<u8>(LV + <usize>ldi(ORDER, j), j < bestI1 ? 0 : j < bestI2 ? 1 : 2);
    if (scale < 0) {
      for (let j = 0; j < 16; j++) store<u8>(LV + <usize>j, 2 - load<u8>(LV + <usize>j));
      scale = -scale;
      bestK = 3 - bestK;
    }
    let allOnGrid = true;
    for (let k = 0; k < 2; k++) {
      let g = groupIndex(k, xb, scale, levelsM(k, bestK));
      if (g < 0) {
        allOnGrid = false;
        g = -2 - g;
        if (g < 0) return -1;
      }
      sti(INDEX, k, g);
    }
    if (!allOnGrid) {
      let sumqx: f32 = 0, sumq2: f32 = 0;
      for (let k = 0; k < 2; k++) {
        const xx = levelsM(k, bestK);
        const code = gridCode(ldi(INDEX, k));
        for (let j = 0; j < 8; j++) {
          const w = ldf(W, 8 * k + j);
          const q = ldf(xx, (code >> (2 * j)) & 3);
          sumqx += w * q * ldf(xb, 8 * k + j);
          sumq2 += w * q * q;
        }
      }
      if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
    }
    const g0 = ldi(INDEX, 0), g1 = ldi(INDEX, 1);
    store<u8>(qs + <usize>(2 * ib), <u8>(g0 & 255));
    store<u8>(qs + <usize>(2 * ib + 1), <u8>(g1 & 255));
    store<u8>(qh + <usize>ib, <u8>((g0 >> 8) | ((g1 >> 8) << 4)));
    if (!(scale >= 0)) return -1;
    stf(SCALES, ib, scale); sti(SHIFTS, ib, bestK);
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale == 0) return 0;
  let d: f32 = maxScale / <f32>15;
  const id: f32 = <f32>1 / d;
  let sumqx: f32 = 0, sumq2: f32 = 0;
  for (let ib = 0; ib < 16; ib++) {
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(7, l));
    const scp = sc + (<usize>(ib >> 2) << 1);
    store<u16>(scp, load<u16>(scp) | <u16>(l << (3 * (ib & 3))));
    const shift = ldi(SHIFTS, ib);
    const qhb = <i32>(load<u8>(qh + <usize>ib) | load<u8>(MASKS + <usize>shift));
    store<u8>(qh + <usize>ib, <u8>qhb);
    const xb = x + (<usize>ib << 6);
    blockWeights(xb, qw != 0 ? qw + (<usize>ib << 6) : 0, 16, sigma2);
    const mult = toF32(2 * l + 1);
    for (let k = 0; k < 2; k++) {
      const xx = levelsM(k, shift);
      const code = gridCode(<i32>load<u8>(qs + <usize>(2 * ib + k)) + ((qhb << (8 - 4 * k)) & 0x700));
      for (let j = 0; j < 8; j++) {
        const w = ldf(W, 8 * k + j);
        const q = ldf(xx, (code >> (2 * j)) & 3) * mult;
        sumqx += w * q * ldf(xb, 8 * k + j);
        sumq2 += w * q * q;
      }
    }
  }
  if (sumq2 > 0) d = sumqx / sumq2;
  const s = <i32>fp32ToFp16(d * <f32>1.1125);
  store<u16>(sc, load<u16>(sc) | <u16>((s & 0x000f) << 12));
  store<u16>(sc + 2, load<u16>(sc + 2) | <u16>((s & 0x00f0) << 8));
  store<u16>(sc + 4, load<u16>(sc + 4) | <u16>((s & 0x0f00) << 4));
  store<u16>(sc + 6, load<u16>(sc + 6) | <u16>(s & 0xf000));
  return 0;
}

export function quantizeRowsIQ1_M(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): i32 {
  tablesReady();
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * M_BLOCK_BYTES;
    for (let b = 0; b < nblocks; b++) {
      const qw = imatrix != 0 ? imatrix + (<usize>b << 10) : 0;
      if (quantizeSuperBlockM(x + (<usize>b << 10), qw, y + <usize>b * M_BLOCK_BYTES) != 0) return ERR_ROW_ABORTS - r;
    }
  }
  return 0;
}

// ---------------------------------------------------------------- dequantization

/** y[0..8) = dl*(grid[j] + delta) for grid point g. */
@inline
function dequantGroup(grid: usize, g: i32, dl: f32, delta: f32, y: usize): void {
  const bytes = v128.load64_zero(grid + (<usize>g << 3));
  const lo = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(bytes));
  const hi = i32x4.extend_high_i16x8_s(i16x8.extend_low_i8x16_s(bytes));
  const dv = f32x4.splat(dl), deltav = f32x4.splat(delta);
  v128.store(y, f32x4.mul(dv, f32x4.add(f32x4.convert_i32x4_s(lo), deltav)));
  v128.store(y, f32x4.mul(dv, f32x4.add(f32x4.convert_i32x4_s(hi), deltav)), 16);
}

export function dequantizeIQ1_S(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ1S); // iq1s_grid as bytes -1, 0, 1
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * S_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    for (let ib = 0; ib < 8; ib++) {
      const qh = <i32>load<u16>(x + 34 + (<usize>ib << 1));
      const dl: f32 = d * toF32(2 * ((qh >> 12) & 7) + 1);
      const delta: f32 = (qh & 0x8000) != 0 ? -DELTA : DELTA;
      for (let l = 0; l < 4; l++) {
        const g = <i32>load<u8>(x + 2 + <usize>(4 * ib + l)) | (((qh >> (3 * l)) & 7) << 8);
        dequantGroup(grid, g, dl, delta, dst + (b << 10) + <usize>((32 * ib + 8 * l) << 2));
      }
    }
  }
}

export function dequantizeIQ1_M(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ1S); // iq1s_grid as bytes -1, 0, 1
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * M_BLOCK_BYTES;
    const qs = x, qhp = x + 32, sc = x + 48;
    const sc0 = <i32>load<u16>(sc), sc1 = <i32>load<u16>(sc + 2), sc2 = <i32>load<u16>(sc + 4), sc3 = <i32>load<u16>(sc + 6);
    const scale16 = (sc0 >> 12) | ((sc1 >> 8) & 0x00f0) | ((sc2 >> 4) & 0x0f00) | (sc3 & 0xf000);
    const d = fp16ToFp32(<u16>scale16);
    for (let ib = 0; ib < 8; ib++) {
      const s = <i32>load<u16>(sc + (<usize>(ib >> 1) << 1));
      const dl1: f32 = d * toF32(2 * ((s >> (6 * (ib % 2))) & 0x7) + 1);
      const dl2: f32 = d * toF32(2 * ((s >> (6 * (ib % 2) + 3)) & 0x7) + 1);
      const h0 = <i32>load<u8>(qhp + <usize>(2 * ib)), h1 = <i32>load<u8>(qhp + <usize>(2 * ib + 1));
      const y = dst + (b << 10) + <usize>((32 * ib) << 2);
      const q = qs + <usize>(4 * ib);
      dequantGroup(grid, <i32>load<u8>(q) | ((h0 << 8) & 0x700), dl1, (h0 & 0x08) != 0 ? -DELTA : DELTA, y);
      dequantGroup(grid, <i32>load<u8>(q + 1) | ((h0 << 4) & 0x700), dl1, (h0 & 0x80) != 0 ? -DELTA : DELTA, y + 32);
      dequantGroup(grid, <i32>load<u8>(q + 2) | ((h1 << 8) & 0x700), dl2, (h1 & 0x08) != 0 ? -DELTA : DELTA, y + 64);
      dequantGroup(grid, <i32>load<u8>(q + 3) | ((h1 << 4) & 0x700), dl2, (h1 & 0x80) != 0 ? -DELTA : DELTA, y + 96);
    }
  }
}
