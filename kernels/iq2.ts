// IQ2_XXS (super-blocks of 256: {f16 d, u32 q2[16]} = 66 bytes), IQ2_XS ({f16 d, u16 qs[32],
// u8 scales[8]} = 74 bytes) and IQ2_S ({f16 d, u8 qs[64], u8 qh[8], u8 scales[8]} = 82 bytes):
// groups of 8 magnitudes on an E8-like lattice of 256/512/1024 points (levels 8/25/43 when
// dequantized, positions 2l+1 while quantizing) plus their signs.
// quantizeRowsIQ2_* = ggml_quantize_chunk: quantize_row_iq2_xxs_impl / _xs_impl / quantize_row_iq2_s_impl,
// the lattice tables being iq2xs_init_impl's (iq-neighbours.ts).
//
// Where SIMD goes: iq2_find_best_neighbour scores four neighbours at once (one per lane, each
// lane's 8-term distance summed in the reference's order; the first smallest wins as in its
// strict-< scan), over neighbour lists laid out for it once per lattice; the trial scales' sums
// (and make_qp_quants' trial errors) run four trials at a time, one per lane; the per-element
// steps (weights, signs, rounding to levels) four elements at a time. Every sum over the
// elements of a block stays sequential, in the reference's order.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { GROUP_MAX_EPS, nearestInt, nearestIntX4, refineQpQuants, transposeX4 } from "./quant-common";
import { LATTICE_IQ2S, LATTICE_IQ2XS, LATTICE_IQ2XXS, latticeMap, latticeNeighbours, latticePositions, latticeValues } from "./iq-neighbours";

const QK_K = 256;
const XXS_BLOCK_BYTES: usize = 66;
const XS_BLOCK_BYTES: usize = 74;
const S_BLOCK_BYTES: usize = 82;
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;
const K_MAX_Q = 3;

// ksigns_iq2xs (ggml-common.h): 7 sign bits plus an eighth making their count even
const KSIGNS: usize = memory.data<u8>([
  0, 129, 130, 3, 132, 5, 6, 135, 136, 9, 10, 139, 12, 141, 142, 15,
  144, 17, 18, 147, 20, 149, 150, 23, 24, 153, 154, 27, 156, 29, 30, 159,
  160, 33, 34, 163, 36, 165, 166, 39, 40, 169, 170, 43, 172, 45, 46, 175,
  48, 177, 178, 51, 180, 53, 54, 183, 184, 57, 58, 187, 60, 189, 190, 63,
  192, 65, 66, 195, 68, 197, 198, 71, 72, 201, 202, 75, 204, 77, 78, 207,
  80, 209, 210, 83, 212, 85, 86, 215, 216, 89, 90, 219, 92, 221, 222, 95,
  96, 225, 226, 99, 228, 101, 102, 231, 232, 105, 106, 235, 108, 237, 238, 111,
  240, 113, 114, 243, 116, 245, 246, 119, 120, 249, 250, 123, 252, 125, 126, 255,
]);

// Scratch (kernels allocate nothing): one block of 32 (IQ2_XXS) or 16 (IQ2_XS/S) at a time.
const WEIGHT = memory.data(32 * 4, 16);
const WAUX = memory.data(32 * 4, 16);
const XVAL = memory.data(32 * 4, 16);
const L = memory.data(32, 16);
const SCALES = memory.data(16 * 4, 16);
const SIGNS = memory.data(4, 4);
const Q2 = memory.data(64, 16);

// The lattice of the type being quantized (set per call).
let gridMap: usize = 0;
let gridNbr: usize = 0;

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function stf(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}
@inline function ldi8(p: usize, i: i32): i32 {
  return <i32>load<i8>(p + <usize>i);
}
@inline function mapAt(u: i32): i32 {
  return load<i32>(gridMap + (<usize>u << 2));
}

// The neighbour lists as bestNeighbour reads them, built once per lattice from iq2xs_init_impl's:
// for every code word u whose levels are all 0..2 (the only ones the quantizers look up) and
// which is off the grid, its list in blocks of four neighbours (a short last block repeats the
// last one), a block holding the positions q = 2l+1 as f32, coordinate i of neighbour k at
// float 4i+k, so that a block is eight v128 of one coordinate each. BLOCK_AT[u] is the first
// block's index. Sizes: the lists' totals (the build traps on any other).
const BLOCKS_IQ2XXS: i32 = 30667;
const BLOCKS_IQ2XS: i32 = 47682;
const BLOCKS_IQ2S: i32 = 13591;
const KMAP_SIZE: i32 = 43692;
const BLK_IQ2XXS = memory.data(BLOCKS_IQ2XXS * 128, 16);
const BLK_IQ2XS = memory.data(BLOCKS_IQ2XS * 128, 16);
const BLK_IQ2S = memory.data(BLOCKS_IQ2S * 128, 16);
const BLOCK_AT_IQ2XXS = memory.data(KMAP_SIZE * 4, 4);
const BLOCK_AT_IQ2XS = memory.data(KMAP_SIZE * 4, 4);
const BLOCK_AT_IQ2S = memory.data(KMAP_SIZE * 4, 4);
// 4*l per coordinate of every grid point (8 bytes a point): l of all 8 by one shift and mask
const LEVEL4_IQ2XXS = memory.data(256 * 8, 8);
const LEVEL4_IQ2XS = memory.data(512 * 8, 8);
const LEVEL4_IQ2S = memory.data(1024 * 8, 8);
let blocksBuilt: i32 = 0;

let gridLevel4: usize = 0;
let gridBlocks: usize = 0;
let gridBlockAt: usize = 0;

function buildBlocks(lattice: i32, size: i32, capacity: i32, blocks: usize, blockAt: usize, level4: usize): void {
  const pos = latticePositions(lattice);
  const map = latticeMap(lattice);
  const nbr = latticeNeighbours(lattice);
  for (let i = 0; i < size * 8; ++i) store<u8>(level4 + <usize>i, <u8>((ldi8(pos, i) - 1) * 2));
  let count = 0;
  for (let u = 0; u < KMAP_SIZE; ++u) {
    const g = load<i32>(map + (<usize>u << 2));
    // any level 3 (bits 11): never looked up
    if (g >= 0 || (u & (u >> 1) & 0x5555) != 0) continue;
    store<i32>(blockAt + (<usize>u << 2), count);
    const list = nbr + (<usize>(-g - 1) << 1);
    const n = <i32>load<u16>(list);
    for (let j = 0; j < n; j += 4) {
      if (count >= capacity) unreachable();
      const blk = blocks + (<usize>count << 7);
      for (let k = 0; k < 4; ++k) {
        const p = pos + (<usize>load<u16>(list + 2 + (<usize>min(j + k, n - 1) << 1)) << 3);
        for (let i = 0; i < 8; ++i) store<f32>(blk + <usize>(16 * i + 4 * k), <f32>load<i8>(p + <usize>i));
      }
      count++;
    }
  }
  if (count != capacity) unreachable();
}

/**
 * iq2_find_best_neighbour for code word u (off the grid; its list at nbr: count, then grid
 * indices): the neighbour nearest to xval/scale under weights w, Σ w[i]*(scale*q[i] - xval[i])²
 * summed over i in order; the first of the smallest wins. Writes its levels (q-1)/2 to Lout and
 * returns its grid index. Four neighbours a step, one per lane, each lane doing the reference's
 * operations for its neighbour; per lane the first smaller distance wins, then the smallest of
 * the lanes, the earliest among equals.
 */
function bestNeighbour(u: i32, nbr: usize, xv: usize, wv: usize, scale: f32, Lout: usize): i32 {
  const n = <i32>load<u16>(nbr);
  let pos = 0;
  if (n > 1) {
    const sc = f32x4.splat(scale);
    const x0 = v128.load32_splat(xv), x1 = v128.load32_splat(xv, 4), x2 = v128.load32_splat(xv, 8), x3 = v128.load32_splat(xv, 12);
    const x4 = v128.load32_splat(xv, 16), x5 = v128.load32_splat(xv, 20), x6 = v128.load32_splat(xv, 24), x7 = v128.load32_splat(xv, 28);
    const w0 = v128.load32_splat(wv), w1 = v128.load32_splat(wv, 4), w2 = v128.load32_splat(wv, 8), w3 = v128.load32_splat(wv, 12);
    const w4 = v128.load32_splat(wv, 16), w5 = v128.load32_splat(wv, 20), w6 = v128.load32_splat(wv, 24), w7 = v128.load32_splat(wv, 28);
    let best = f32x4.splat(F32.MAX_VALUE);
    let bestAt = i32x4.splat(0);
    let at = i32x4(0, 1, 2, 3);
    const four = i32x4.splat(4);
    let blk = gridBlocks + (<usize>load<i32>(gridBlockAt + (<usize>u << 2)) << 7);
    for (let j = 0; j < n; j += 4) {
      let diff = f32x4.sub(f32x4.mul(sc, v128.load(blk)), x0);
      let d2 = f32x4.mul(f32x4.mul(w0, diff), diff);
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 16)), x1);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w1, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 32)), x2);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w2, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 48)), x3);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w3, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 64)), x4);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w4, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 80)), x5);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w5, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 96)), x6);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w6, diff), diff));
      diff = f32x4.sub(f32x4.mul(sc, v128.load(blk, 112)), x7);
      d2 = f32x4.add(d2, f32x4.mul(f32x4.mul(w7, diff), diff));
      const lt = f32x4.lt(d2, best);
      best = v128.bitselect(d2, best, lt);
      bestAt = v128.bitselect(at, bestAt, lt);
      at = i32x4.add(at, four);
      blk += 128;
    }
    // the smallest distance, and among the lanes holding it the earliest position (a repeated
    // last neighbour has the same distance as the original, later)
    let m = f32x4.pmin(best, v128.shuffle<i32>(best, best, 2, 3, 0, 1));
    m = f32x4.pmin(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2));
    let p = v128.bitselect(bestAt, i32x4.splat(0x7fffffff), f32x4.eq(best, m));
    p = i32x4.min_s(p, v128.shuffle<i32>(p, p, 2, 3, 0, 1));
    p = i32x4.min_s(p, v128.shuffle<i32>(p, p, 1, 0, 3, 2));
    pos = i32x4.extract_lane(p, 0);
  }
  // (a single neighbour, or no distance below FLT_MAX where ggml asserts: the first one)
  const g = <i32>load<u16>(nbr + 2 + (<usize>pos << 1));
  store<u64>(Lout, (load<u64>(gridLevel4 + (<usize>g << 3)) >> 2) & 0x0303030303030303);
  return g;
}

/**
 * Levels MAX(0, MIN(2, nearest_int(0.5f*(id*xval[i] - 1)))) of the 8 values at xv into Lout;
 * returns their code word Σ l_i << 2i.
 */
@inline function roundGroup(xv: usize, id: v128, Lout: usize): i32 {
  const half = f32x4.splat(0.5);
  const one = f32x4.splat(1);
  const zero = i32x4.splat(0);
  const top = i32x4.splat(K_MAX_Q - 1);
  const a = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, v128.load(xv)), one))), top), zero);
  const b = i32x4.max_s(i32x4.min_s(nearestIntX4(f32x4.mul(half, f32x4.sub(f32x4.mul(id, v128.load(xv, 16)), one))), top), zero);
  store<u64>(Lout, i64x2.extract_lane(i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a, b), a), 0));
  const s = i32x4.add(i32x4.mul(a, i32x4(1, 4, 16, 64)), i32x4.mul(b, i32x4(256, 1024, 4096, 16384)));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

/** Code word of the 8 levels at Lp. */
@inline function codeOf(Lp: usize): i32 {
  let u = 0;
  for (let i = 0; i < 8; ++i) u |= ldi8(Lp, i) << (2 * i);
  return u;
}

/**
 * Levels of group k (8 values) for inverse scale id onto the grid: rounded, and where that is no
 * grid point, replaced by the best neighbour for `scale`. Returns whether the rounding was on the grid.
 */
@inline function groupOntoGrid(k: i32, id: f32, scale: f32, Lp: usize): bool {
  const xv = XVAL + (<usize>k << 5);
  const u = roundGroup(xv, f32x4.splat(id), Lp + (<usize>k << 3));
  const g = mapAt(u);
  if (g >= 0) return true;
  bestNeighbour(u, gridNbr + (<usize>(-g - 1) << 1), xv, WAUX + (<usize>k << 5), scale, Lp + (<usize>k << 3));
  return false;
}

/** Σ w*xval*q and Σ w*q*q (q = 2l+1) over the n values at Lp, in order, into sumQX and sumQ2. */
let sumQX: f32 = 0;
let sumQ2: f32 = 0;
@inline function levelSums(n: i32, Lp: usize): void {
  let sqx: f32 = 0, sq2: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const w = ldf(WEIGHT, i);
    const q = <f32>(<i32>2 * ldi8(Lp, i) + <i32>1);
    sqx += w * ldf(XVAL, i) * q;
    sq2 += w * q * q;
  }
  sumQX = sqx;
  sumQ2 = sq2;
}

/**
 * The sign step of the IQ2_XXS/XS searches for group k of the block at xb: magnitudes into XVAL,
 * the sign bits; with an odd number of negatives the least important value (smallest
 * weight*x*x, first of equals) changes sign instead, so that 7 sign bits describe the group.
 */
@inline function signsEvenParity(xb: usize, k: i32): i32 {
  let s = magnitudes(xb, k);
  if (popcnt(s) & 1) {
    let imin = 0;
    let mn: f32 = ldf(WEIGHT, 8 * k) * ldf(xb, 8 * k) * ldf(xb, 8 * k);
    for (let i = 1; i < 8; ++i) {
      const j = 8 * k + i;
      const ax: f32 = ldf(WEIGHT, j) * ldf(xb, j) * ldf(xb, j);
      if (ax < mn) { mn = ax; imin = i; }
    }
    stf(XVAL, 8 * k + imin, -ldf(XVAL, 8 * k + imin));
    s ^= 1 << imin;
  }
  return s & 127;
}

/** xval = x where x >= 0 (-0 included), else -x, for group k of the block at xb; returns the sign bits (x < 0). */
@inline function magnitudes(xb: usize, k: i32): i32 {
  const off = <usize>k << 5;
  const zero = f32x4.splat(0);
  const a = v128.load(xb + off), b = v128.load(xb + off, 16);
  const na = f32x4.lt(a, zero), nb = f32x4.lt(b, zero);
  v128.store(XVAL + off, v128.bitselect(f32x4.neg(a), a, na));
  v128.store(XVAL + off, v128.bitselect(f32x4.neg(b), b, nb), 16);
  return i32x4.bitmask(na) | (i32x4.bitmask(nb) << 4);
}

/** The largest of the n values of XVAL (when it is at least the all-zero threshold, the value the reference's MAX scan finds). */
@inline function maxOfXval(n: i32): f32 {
  let m = v128.load(XVAL);
  for (let i = 4; i < n; i += 4) m = f32x4.pmax(m, v128.load(XVAL + (<usize>i << 2)));
  m = f32x4.pmax(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
  m = f32x4.pmax(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2));
  return f32x4.extract_lane(m, 0);
}

/** weight[i] = qw[i]*sqrtf(sigma2 + x²), waux = sqrtf(weight), n values (multiple of 4). */
@inline function importanceWeights(xb: usize, qw: usize, sigma2: f32, n: i32): void {
  const s2 = f32x4.splat(sigma2);
  for (let i = 0; i < n; i += 4) {
    const off = <usize>i << 2;
    const x = v128.load(xb + off);
    const w = f32x4.mul(v128.load(qw + off), f32x4.sqrt(f32x4.add(s2, f32x4.mul(x, x))));
    v128.store(WEIGHT + off, w);
    v128.store(WAUX + off, f32x4.sqrt(w));
  }
}

// ---- the trial scales: each trial's levels found one after the other, their sums four trials
// at a time (one per lane, each sum in the reference's order over the elements), then the
// reference's in-order "is this trial better" chain over the finished sums ----

const TRIAL_L = memory.data(20 * 32, 16); // levels of each trial, n bytes a trial
const TRIAL_Q = memory.data(20 * 32 * 4, 16); // their q = 2l+1 as f32
const TRIAL_QT = memory.data(32 * 16, 16); // four trials' q transposed
const TRIAL_SUMQX = memory.data(20 * 4, 16);
const TRIAL_SUMQ2 = memory.data(20 * 4, 16);
const TRIAL_ON_GRID = memory.data(20 * 2);
const WX = memory.data(32 * 4, 16);

/** q = 2l+1 as f32 for the n levels (bytes) at Lrow, n a multiple of 16. */
@inline function levelsToQ(Lrow: usize, Qrow: usize, n: i32): void {
  const one = i32x4.splat(1);
  for (let i = 0; i < n; i += 16) {
    const v = v128.load(Lrow + <usize>i);
    const lo = i16x8.extend_low_i8x16_u(v), hi = i16x8.extend_high_i8x16_u(v);
    const q = Qrow + (<usize>i << 2);
    v128.store(q, f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(i32x4.extend_low_i16x8_u(lo), 1), one)));
    v128.store(q, f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(i32x4.extend_high_i16x8_u(lo), 1), one)), 16);
    v128.store(q, f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(i32x4.extend_low_i16x8_u(hi), 1), one)), 32);
    v128.store(q, f32x4.convert_i32x4_s(i32x4.add(i32x4.shl(i32x4.extend_high_i16x8_u(hi), 1), one)), 48);
  }
}

/** Σ w*xval*q and Σ w*q*q of each of the first ntrials trials (n values each) into TRIAL_SUMQX/Q2. */
function trialSums(ntrials: i32, n: i32): void {
  for (let i = 0; i < n; i += 4) {
    const off = <usize>i << 2;
    v128.store(WX + off, f32x4.mul(v128.load(WEIGHT + off), v128.load(XVAL + off)));
  }
  for (let t0 = 0; t0 < ntrials; t0 += 4) {
    transposeX4(TRIAL_Q + (<usize>(t0 * n) << 2), n, TRIAL_QT);
    let sqx = f32x4.splat(0), sq2 = f32x4.splat(0);
    for (let i = 0; i < n; ++i) {
      const q = v128.load(TRIAL_QT + (<usize>i << 4));
      sqx = f32x4.add(sqx, f32x4.mul(v128.load32_splat(WX + (<usize>i << 2)), q));
      sq2 = f32x4.add(sq2, f32x4.mul(f32x4.mul(v128.load32_splat(WEIGHT + (<usize>i << 2)), q), q));
    }
    v128.store(TRIAL_SUMQX + (<usize>t0 << 2), sqx);
    v128.store(TRIAL_SUMQ2 + (<usize>t0 << 2), sq2);
  }
}

// ---- IQ2_XXS ----

/**
 * make_qp_quants(32, kMaxQ+1, xval, L, weight) of quant-common.ts, its eight trial scales'
 * errors computed four at a time (one per lane, each sum in the reference's order over i) and
 * then compared in its order. L is u8 as there (the one negative xval gives a wrapped byte).
 */
function makeQpQuantsXXS(x: usize, L: usize, quantWeights: usize): f32 {
  const n = 32, nmax = K_MAX_Q + 1;
  let max: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const xi = ldf(x, i);
    max = max > xi ? max : xi;
  }
  if (max < GROUP_MAX_EPS) {
    memory.fill(L, 0, n);
    return 0;
  }
  let iscale: f32 = <f32>nmax / max;
  for (let i = 0; i < n; ++i) store<u8>(L + <usize>i, <u8>nearestInt(iscale * ldf(x, i)));
  const scale: f32 = <f32>1 / iscale;
  let bestMse: f32 = 0;
  for (let i = 0; i < n; ++i) {
    const diff = ldf(x, i) - scale * <f32>load<u8>(L + <usize>i);
    bestMse += ldf(quantWeights, i) * diff * diff;
  }
  // is = -4..-1 in lanes of A, 1..4 in lanes of B
  const tenth = f32x4.splat(0.1);
  const nm = f32x4.splat(<f32>nmax);
  const mx = f32x4.splat(max);
  const isA = f32x4.div(f32x4.add(f32x4.mul(tenth, f32x4(-4, -3, -2, -1)), nm), mx);
  const isB = f32x4.div(f32x4.add(f32x4.mul(tenth, f32x4(1, 2, 3, 4)), nm), mx);
  const scA = f32x4.div(f32x4.splat(1), isA), scB = f32x4.div(f32x4.splat(1), isB);
  const top = i32x4.splat(nmax);
  let mseA = f32x4.splat(0), mseB = f32x4.splat(0);
  for (let i = 0; i < n; ++i) {
    const xi = v128.load32_splat(x + (<usize>i << 2));
    const wi = v128.load32_splat(quantWeights + (<usize>i << 2));
    const la = f32x4.convert_i32x4_s(i32x4.min_s(nearestIntX4(f32x4.mul(isA, xi)), top));
    const lb = f32x4.convert_i32x4_s(i32x4.min_s(nearestIntX4(f32x4.mul(isB, xi)), top));
    const da = f32x4.sub(xi, f32x4.mul(scA, la));
    const db = f32x4.sub(xi, f32x4.mul(scB, lb));
    mseA = f32x4.add(mseA, f32x4.mul(f32x4.mul(wi, da), da));
    mseB = f32x4.add(mseB, f32x4.mul(f32x4.mul(wi, db), db));
  }
  v128.store(QP_MSE, mseA);
  v128.store(QP_MSE, mseB, 16);
  v128.store(QP_ISCALE, isA);
  v128.store(QP_ISCALE, isB, 16);
  for (let k = 0; k < 8; ++k) {
    const mse = ldf(QP_MSE, k);
    if (mse < bestMse) {
      bestMse = mse;
      iscale = ldf(QP_ISCALE, k);
    }
  }
  return refineQpQuants(n, nmax, x, L, quantWeights, iscale);
}
const QP_MSE = memory.data(8 * 4, 16);
const QP_ISCALE = memory.data(8 * 4, 16);

/** quantize_row_iq2_xxs_impl for one block of 32 (index ib) at xb; returns its scale (or 0). */
function searchBlockXXS(xb: usize, ib: i32): f32 {
  for (let k = 0; k < 4; ++k) store<u8>(SIGNS + <usize>k, <u8>signsEvenParity(xb, k));
  const max = maxOfXval(32);
  if (max < GROUP_MAX_EPS) return 0;
  let scale = makeQpQuantsXXS(XVAL, L, WEIGHT);
  const effMax: f32 = scale * <f32>K_MAX_Q;
  if (effMax <= 0) return 0;
  for (let t = 0; t < 13; ++t) {
    const id: f32 = (<f32>(<i32>2 * K_MAX_Q - <i32>1) + <f32>(t - 6) * <f32>0.1) / effMax;
    const thisScale: f32 = <f32>1 / id;
    const Lt = TRIAL_L + (<usize>t << 5);
    for (let k = 0; k < 4; ++k) groupOntoGrid(k, id, thisScale, Lt);
    levelsToQ(Lt, TRIAL_Q + (<usize>t << 7), 32);
  }
  trialSums(13, 32);
  let best: f32 = 0;
  let chosen = -1;
  for (let t = 0; t < 13; ++t) {
    const sqx = ldf(TRIAL_SUMQX, t), sq2 = ldf(TRIAL_SUMQ2, t);
    if (sq2 > 0 && sqx * sqx > best * sq2) {
      scale = sqx / sq2;
      best = scale * sqx;
      chosen = t;
    }
  }
  if (chosen >= 0) memory.copy(L, TRIAL_L + (<usize>chosen << 5), 32);
  if (scale > 0) {
    const id: f32 = <f32>1 / scale;
    for (let k = 0; k < 4; ++k) groupOntoGrid(k, id, scale, L);
    levelSums(32, L);
    if (sumQ2 > 0) scale = sumQX / sumQ2;
  }
  if (scale < 0) {
    // never expected (ggml: "just in case"): a positive scale and every sign flipped
    scale = -scale;
    for (let k = 0; k < 4; ++k) store<u8>(SIGNS + <usize>k, ~load<u8>(SIGNS + <usize>k) & 127);
  }
  let grid: u32 = 0, signs: u32 = 0;
  for (let k = 0; k < 4; ++k) {
    const g = mapAt(codeOf(L + (<usize>k << 3)));
    grid |= <u32>g << (8 * k);
    signs |= <u32>load<u8>(SIGNS + <usize>k) << (7 * k);
  }
  store<u32>(Q2 + (<usize>ib << 3), grid);
  store<u32>(Q2 + (<usize>ib << 3) + 4, signs);
  return scale;
}

function quantizeBlockXXS(x: usize, y: usize, qw: usize): void {
  memory.fill(Q2, 0, 64);
  let sumx2: f32 = 0;
  for (let i = 0; i < QK_K; ++i) sumx2 += ldf(x, i) * ldf(x, i);
  const sigma2: f32 = sumx2 / <f32>QK_K;
  let maxScale: f32 = 0;
  for (let ib = 0; ib < 8; ++ib) {
    const xb = x + (<usize>ib << 7);
    importanceWeights(xb, qw + (<usize>ib << 7), sigma2, 32);
    const scale = searchBlockXXS(xb, ib);
    stf(SCALES, ib, scale);
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale == 0) {
    memory.fill(y, 0, XXS_BLOCK_BYTES);
    return;
  }
  const d: f32 = maxScale / <f32>31;
  store<u16>(y, fp32ToFp16(d));
  const id: f32 = <f32>1 / d;
  for (let ib = 0; ib < 8; ++ib) {
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(15, l));
    const p = Q2 + (<usize>ib << 3) + 4;
    store<u32>(p, load<u32>(p) | (<u32>l << 28));
  }
  memory.copy(y + 2, Q2, 64);
}

// ---- IQ2_XS / IQ2_S: blocks of 16 ----

const ON_GRID = memory.data(2);

/**
 * The shared search of quantize_row_iq2_xs_impl / quantize_row_iq2_s_impl for one block of 16
 * (XVAL, WEIGHT, WAUX, SIGNS set), from its largest magnitude max: the levels end in L; returns the scale.
 */
function searchBlock16(max: f32): f32 {
  let scale: f32 = max / <f32>(<i32>2 * K_MAX_Q - <i32>1);
  for (let t = 0; t < 19; ++t) {
    const id: f32 = (<f32>(<i32>2 * K_MAX_Q - <i32>1) + <f32>(t - 9) * <f32>0.1) / max;
    const thisScale: f32 = <f32>1 / id;
    const Lt = TRIAL_L + (<usize>t << 4);
    store<u8>(TRIAL_ON_GRID + <usize>(2 * t), <u8>groupOntoGrid(0, id, thisScale, Lt));
    store<u8>(TRIAL_ON_GRID + <usize>(2 * t + 1), <u8>groupOntoGrid(1, id, thisScale, Lt));
    levelsToQ(Lt, TRIAL_Q + (<usize>t << 6), 16);
  }
  trialSums(19, 16);
  let best: f32 = 0;
  let chosen = -1;
  for (let t = 0; t < 19; ++t) {
    const sqx = ldf(TRIAL_SUMQX, t), sq2 = ldf(TRIAL_SUMQ2, t);
    if (sq2 > 0 && sqx * sqx > best * sq2) {
      scale = sqx / sq2;
      best = scale * sqx;
      chosen = t;
    }
  }
  if (chosen >= 0) {
    memory.copy(L, TRIAL_L + (<usize>chosen << 4), 16);
    memory.copy(ON_GRID, TRIAL_ON_GRID + <usize>(2 * chosen), 2);
  } else {
    memory.fill(L, 0, 16);
    store<u16>(ON_GRID, 0x0101);
  }
  const off0 = load<u8>(ON_GRID) == 0, off1 = load<u8>(ON_GRID + 1) == 0;
  if ((off0 || off1) && scale > 0) {
    const id: f32 = <f32>1 / scale;
    if (off0) groupOntoGrid(0, id, scale, L);
    if (off1) groupOntoGrid(1, id, scale, L);
    levelSums(16, L);
    if (sumQ2 > 0) scale = sumQX / sumQ2;
  }
  return scale;
}

function quantizeBlockXS(x: usize, y: usize, qw: usize): void {
  memory.fill(Q2, 0, 64);
  let sumx2: f32 = 0;
  for (let i = 0; i < QK_K; ++i) sumx2 += ldf(x, i) * ldf(x, i);
  const sigma2: f32 = sumx2 / <f32>QK_K;
  let maxScale: f32 = 0;
  for (let ib = 0; ib < 16; ++ib) {
    const xb = x + (<usize>ib << 6);
    importanceWeights(xb, qw + (<usize>ib << 6), sigma2, 16);
    store<u8>(SIGNS, <u8>signsEvenParity(xb, 0));
    store<u8>(SIGNS + 1, <u8>signsEvenParity(xb, 1));
    const max = maxOfXval(16);
    if (max < GROUP_MAX_EPS) { stf(SCALES, ib, 0); continue; }
    let scale = searchBlock16(max);
    if (scale < 0) {
      scale = -scale;
      store<u8>(SIGNS, ~load<u8>(SIGNS) & 127);
      store<u8>(SIGNS + 1, ~load<u8>(SIGNS + 1) & 127);
    }
    for (let k = 0; k < 2; ++k) {
      const g = mapAt(codeOf(L + (<usize>k << 3)));
      store<u16>(Q2 + (<usize>(2 * ib + k) << 1), <u16>(g | (<i32>load<u8>(SIGNS + <usize>k) << 9)));
    }
    stf(SCALES, ib, scale);
    maxScale = maxScale > scale ? maxScale : scale;
  }
  memory.fill(y, 0, XS_BLOCK_BYTES);
  if (maxScale == 0) return;
  const d: f32 = maxScale / <f32>31;
  store<u16>(y, fp32ToFp16(d));
  const id: f32 = <f32>1 / d;
  const sc = y + 66;
  for (let ib = 0; ib < 16; ++ib) {
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(15, l));
    const p = sc + <usize>(ib >> 1);
    if (ib % 2 == 0) store<u8>(p, <u8>l);
    else store<u8>(p, load<u8>(p) | <u8>(l << 4));
  }
  memory.copy(y + 2, Q2, 64);
}

function quantizeBlockS(x: usize, y: usize, qw: usize): void {
  memory.fill(y, 0, S_BLOCK_BYTES);
  const qs = y + 2, qh = y + 66, sc = y + 74;
  let sumx2: f32 = 0;
  for (let i = 0; i < QK_K; ++i) sumx2 += ldf(x, i) * ldf(x, i);
  const sigma2: f32 = <f32>2 * sumx2 / <f32>QK_K;
  let maxScale: f32 = 0;
  for (let ib = 0; ib < 16; ++ib) {
    const xb = x + (<usize>ib << 6);
    if (qw != 0) importanceWeights(xb, qw + (<usize>ib << 6), sigma2, 16);
    else {
      const base = f32x4.splat(<f32>0.25 * sigma2);
      for (let i = 0; i < 16; i += 4) {
        const off = <usize>i << 2;
        const v = v128.load(xb + off);
        const w = f32x4.add(base, f32x4.mul(v, v));
        v128.store(WEIGHT + off, w);
        v128.store(WAUX + off, f32x4.sqrt(w));
      }
    }
    store<u8>(SIGNS, <u8>magnitudes(xb, 0));
    store<u8>(SIGNS + 1, <u8>magnitudes(xb, 1));
    const max = maxOfXval(16);
    if (max < GROUP_MAX_EPS_IQ2_S) { stf(SCALES, ib, 0); continue; }
    let scale = searchBlock16(max);
    if (scale < 0) {
      scale = -scale;
      store<u8>(SIGNS, ~load<u8>(SIGNS));
      store<u8>(SIGNS + 1, ~load<u8>(SIGNS + 1));
    }
    for (let k = 0; k < 2; ++k) {
      const g = mapAt(codeOf(L + (<usize>k << 3)));
      const i8 = 2 * ib + k;
      store<u8>(qs + <usize>i8, <u8>(g & 255));
      const h = qh + <usize>(i8 >> 2);
      store<u8>(h, load<u8>(h) | <u8>((g >> 8) << (2 * (i8 % 4))));
      store<u8>(qs + 32 + <usize>i8, load<u8>(SIGNS + <usize>k));
    }
    stf(SCALES, ib, scale);
    maxScale = maxScale > scale ? maxScale : scale;
  }
  if (maxScale == 0) return;
  const d: f32 = maxScale / <f32>31;
  store<u16>(y, fp32ToFp16(d * <f32>0.9875));
  const id: f32 = <f32>1 / d;
  for (let ib = 0; ib < 16; ++ib) {
    let l = nearestInt(<f32>0.5 * (id * ldf(SCALES, ib) - <f32>1));
    l = max(0, min(15, l));
    const p = sc + <usize>(ib >> 1);
    if (ib % 2 == 0) store<u8>(p, <u8>l);
    else store<u8>(p, load<u8>(p) | <u8>(l << 4));
  }
}

function useLattice(lattice: i32): void {
  gridMap = latticeMap(lattice);
  gridNbr = latticeNeighbours(lattice);
  if (lattice == LATTICE_IQ2XXS) { gridBlocks = BLK_IQ2XXS; gridBlockAt = BLOCK_AT_IQ2XXS; gridLevel4 = LEVEL4_IQ2XXS; }
  else if (lattice == LATTICE_IQ2XS) { gridBlocks = BLK_IQ2XS; gridBlockAt = BLOCK_AT_IQ2XS; gridLevel4 = LEVEL4_IQ2XS; }
  else { gridBlocks = BLK_IQ2S; gridBlockAt = BLOCK_AT_IQ2S; gridLevel4 = LEVEL4_IQ2S; }
  if ((blocksBuilt & (1 << lattice)) == 0) {
    const size = lattice == LATTICE_IQ2XXS ? 256 : lattice == LATTICE_IQ2XS ? 512 : 1024;
    const capacity = lattice == LATTICE_IQ2XXS ? BLOCKS_IQ2XXS : lattice == LATTICE_IQ2XS ? BLOCKS_IQ2XS : BLOCKS_IQ2S;
    buildBlocks(lattice, size, capacity, gridBlocks, gridBlockAt, gridLevel4);
    blocksBuilt |= 1 << lattice;
  }
}

/** ggml_quantize_chunk's row loop: the same importance vector (one weight per column) for every row. */
@inline function quantizeRows(
  src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize, blockBytes: usize,
  quantizeBlock: (x: usize, y: usize, qw: usize) => void,
): void {
  const nb = ncols / QK_K;
  for (let r = 0; r < nrows; ++r) {
    for (let i = 0; i < nb; ++i) {
      const x = src + ((<usize>r * <usize>ncols + <usize>(i * QK_K)) << 2);
      const y = dst + (<usize>r * <usize>nb + <usize>i) * blockBytes;
      quantizeBlock(x, y, imatrix != 0 ? imatrix + (<usize>(i * QK_K) << 2) : 0);
    }
  }
}

/** IQ2_XXS: the JS side refuses a call without an importance vector (ggml asserts one). */
export function quantizeRowsIQ2_XXS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix == 0) unreachable();
  useLattice(LATTICE_IQ2XXS);
  quantizeRows(src, dst, nrows, ncols, imatrix, XXS_BLOCK_BYTES, quantizeBlockXXS);
}

/** IQ2_XS: the JS side refuses a call without an importance vector (ggml asserts one). */
export function quantizeRowsIQ2_XS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  if (imatrix == 0) unreachable();
  useLattice(LATTICE_IQ2XS);
  quantizeRows(src, dst, nrows, ncols, imatrix, XS_BLOCK_BYTES, quantizeBlockXS);
}

export function quantizeRowsIQ2_S(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  useLattice(LATTICE_IQ2S);
  quantizeRows(src, dst, nrows, ncols, imatrix, S_BLOCK_BYTES, quantizeBlockS);
}

// ---- dequantization: y = db * grid value * ±1 ----

/** The 8 values of grid point g (level values at grid) times db, signs from the bits of s, at y. */
@inline function storeGroup(y: usize, grid: usize, g: i32, db: f32, s: i32): void {
  const pg = grid + (<usize>g << 3);
  for (let j = 0; j < 8; ++j) {
    const v: f32 = db * <f32>load<u8>(pg + <usize>j);
    store<f32>(y + (<usize>j << 2), (s >> j) & 1 ? v * <f32>-1 : v * <f32>1);
  }
}

export function dequantizeIQ2_XXS(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ2XXS);
  const nb = <usize>k >> 8;
  for (let b: usize = 0; b < nb; b++) {
    const x = src + b * XXS_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    for (let ib: usize = 0; ib < 8; ib++) {
      const idx = x + 2 + (ib << 3);
      const aux1 = load<u32>(idx + 4);
      const db: f32 = d * (<f32>0.5 + <f32>(aux1 >> 28)) * <f32>0.25;
      for (let l = 0; l < 4; l++) {
        const s = <i32>load<u8>(KSIGNS + <usize>((aux1 >> (7 * l)) & 127));
        storeGroup(dst + (b << 10) + (ib << 7) + (<usize>l << 5), grid, <i32>load<u8>(idx + <usize>l), db, s);
      }
    }
  }
}

export function dequantizeIQ2_XS(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ2XS);
  const nb = <usize>k >> 8;
  for (let b: usize = 0; b < nb; b++) {
    const x = src + b * XS_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    for (let ib: usize = 0; ib < 8; ib++) {
      const sc = <i32>load<u8>(x + 66 + ib);
      const db0: f32 = d * (<f32>0.5 + <f32>(sc & 0xf)) * <f32>0.25;
      const db1: f32 = d * (<f32>0.5 + <f32>(sc >> 4)) * <f32>0.25;
      for (let l = 0; l < 4; l++) {
        const q = <i32>load<u16>(x + 2 + (((ib << 2) + <usize>l) << 1));
        const s = <i32>load<u8>(KSIGNS + <usize>(q >> 9));
        storeGroup(dst + (b << 10) + (ib << 7) + (<usize>l << 5), grid, q & 511, l < 2 ? db0 : db1, s);
      }
    }
  }
}

export function dequantizeIQ2_S(src: usize, dst: usize, k: i32): void {
  const grid = latticeValues(LATTICE_IQ2S);
  const nb = <usize>k >> 8;
  for (let b: usize = 0; b < nb; b++) {
    const x = src + b * S_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    for (let ib: usize = 0; ib < 8; ib++) {
      const sc = <i32>load<u8>(x + 74 + ib);
      const db0: f32 = d * (<f32>0.5 + <f32>(sc & 0xf)) * <f32>0.25;
      const db1: f32 = d * (<f32>0.5 + <f32>(sc >> 4)) * <f32>0.25;
      const qh = <i32>load<u8>(x + 66 + ib);
      for (let l = 0; l < 4; l++) {
        const g = <i32>load<u8>(x + 2 + (ib << 2) + <usize>l) | ((qh << (8 - 2 * l)) & 0x300);
        const s = <i32>load<u8>(x + 34 + (ib << 2) + <usize>l);
        storeGroup(dst + (b << 10) + (ib << 7) + (<usize>l << 5), grid, g, l < 2 ? db0 : db1, s);
      }
    }
  }
}
