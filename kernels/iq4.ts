// IQ4_NL (blocks of 32: {f16 d, u8 qs[16]}) and IQ4_XS (super-blocks of 256: {f16 d, u16 scales_h,
// u8 scales_l[4], u8 qs[128]}): 4-bit indices into the non-linear table kvalues_iq4nl.
// Both are ggml's quantize_row_iq4_nl_impl with ntry = 7; note that without an importance vector
// the weights are still x² (only with one do they become qw*sqrt(sigma2 + x²)).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { laneBlock, transposeFrom4 } from "./legacy-common";
import { GROUP_MAX_EPS, nearestInt, transposeX4 } from "./quant-common";

const NL_BLOCK_BYTES: usize = 18;
const XS_BLOCK_BYTES: usize = 136;
const NTRY: i32 = 7;

// kvalues_iq4nl (ggml-common.h)
const KVALUES: usize = memory.data<i8>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

@inline
function kvalue(i: i32): f32 {
  return <f32>load<i8>(KVALUES + <usize>i);
}

// Scratch (kernels allocate nothing): transposed data and weights of four blocks, their scales.
const XT = memory.data(32 * 16, 16);
const QWT = memory.data(32 * 16, 16);
const WT = memory.data(32 * 16, 16);
const SCALES = memory.data(8 * 4, 16);

// ---- best_index_int8 over kvalues_iq4nl, four values at a time ----
// The reference's binary search ends at ml = the largest index with !(x < value[ml]) (counting
// from 0; a NaN x counts every entry and ends at 14, as there), then picks ml or ml + 1 by
// `x - value[ml] < value[ml+1] - x`. With the table sorted, ml = 14 - #{k in 1..14 : x < value[k]}.

/** kvalues_iq4nl as 16 bytes, and shifted by one (entry i = value[i+1]) for the upper neighbour. */
const KVALUES_V = v128(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
const KVALUES_NEXT_V = v128(-104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113, 113);

/** table[i] per i32 lane (i in 0..15), as f32. */
@inline
function lookupX4(table: v128, i: v128): v128 {
  // the swizzle puts table[i] in each lane's low byte (and table[0] above it): sign-extend that byte
  return f32x4.convert_i32x4_s(i32x4.shr_s(i32x4.shl(i8x16.swizzle(table, i), 24), 24));
}

/** ml of the comment above, per lane. */
@inline
function lowerIndexX4(x: v128): v128 {
  let ml = i32x4.splat(14);
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-104)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-83)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-65)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-49)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-35)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-22)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(-10)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(1)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(13)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(25)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(38)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(53)));
  ml = i32x4.add(ml, f32x4.lt(x, f32x4.splat(69)));
  return i32x4.add(ml, f32x4.lt(x, f32x4.splat(89)));
}

/** values[best_index_int8(16, values, x)] per lane, as f32. */
@inline
function nearestValueX4(x: v128): v128 {
  const ml = lowerIndexX4(x);
  const lo = lookupX4(KVALUES_V, ml);
  const hi = lookupX4(KVALUES_NEXT_V, ml);
  return v128.bitselect(lo, hi, f32x4.lt(f32x4.sub(x, lo), f32x4.sub(hi, x)));
}

/** best_index_int8(16, values, x) per lane (i32). */
@inline
function nearestIndexX4(x: v128): v128 {
  const ml = lowerIndexX4(x);
  const lo = lookupX4(KVALUES_V, ml);
  const hi = lookupX4(KVALUES_NEXT_V, ml);
  // ml, + 1 where the upper entry is nearer (or as near)
  return i32x4.sub(ml, v128.not(f32x4.lt(f32x4.sub(x, lo), f32x4.sub(hi, x))));
}

/** best_index_int8(id * x[j]) for the 32 values of a block at xb, packed as the 16 nibble bytes at q4. */
function quantizeIndices(xb: usize, id: f32, q4: usize): void {
  const idv = f32x4.splat(id);
  for (let h: usize = 0; h < 2; ++h) {
    const p = xb + (h << 6);
    const a = nearestIndexX4(f32x4.mul(idv, v128.load(p)));
    const b = nearestIndexX4(f32x4.mul(idv, v128.load(p, 16)));
    const c = nearestIndexX4(f32x4.mul(idv, v128.load(p, 32)));
    const e = nearestIndexX4(f32x4.mul(idv, v128.load(p, 48)));
    const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, e));
    v128.store(q4, h == 0 ? bytes : v128.or(v128.load(q4), i8x16.shl(bytes, 4)));
  }
}

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function ldv(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}

/**
 * The per-block scale search of quantize_row_iq4_nl_impl (ntry = 7) for four blocks of 32, one per
 * lane: transposed values XT, weights WT. Writes the four scales (0 for an all-tiny block) at out.
 */
function searchScalesX4(out: usize): void {
  const zero = f32x4.splat(0);
  let amax = zero;
  let max = zero;
  for (let j = 0; j < 32; ++j) {
    const x = ldv(XT, j);
    const ax = f32x4.abs(x);
    const gt = f32x4.gt(ax, amax);
    amax = v128.bitselect(ax, amax, gt);
    max = v128.bitselect(x, max, gt);
  }
  const tiny = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  let d = f32x4.div(f32x4.neg(max), f32x4.splat(kvalue(0)));
  let id = f32x4.div(f32x4.splat(1), d);
  let sumqx = zero;
  let sumq2 = zero;
  for (let j = 0; j < 32; ++j) {
    const x = ldv(XT, j);
    const q = nearestValueX4(f32x4.mul(id, x));
    const wq = f32x4.mul(ldv(WT, j), q);
    sumqx = f32x4.add(sumqx, f32x4.mul(wq, x));
    sumq2 = f32x4.add(sumq2, f32x4.mul(wq, q));
  }
  d = v128.and(f32x4.div(sumqx, sumq2), f32x4.gt(sumq2, zero));
  let best = f32x4.mul(d, sumqx);
  for (let itry = -NTRY; itry <= NTRY; ++itry) {
    id = f32x4.div(f32x4.splat(<f32>(itry + <i32>load<i8>(KVALUES))), max);
    sumqx = zero;
    sumq2 = zero;
    for (let j = 0; j < 32; ++j) {
      const x = ldv(XT, j);
      const q = nearestValueX4(f32x4.mul(id, x));
      const wq = f32x4.mul(ldv(WT, j), q);
      sumqx = f32x4.add(sumqx, f32x4.mul(wq, x));
      sumq2 = f32x4.add(sumq2, f32x4.mul(wq, q));
    }
    const upd = v128.and(f32x4.gt(sumq2, zero), f32x4.gt(f32x4.mul(sumqx, sumqx), f32x4.mul(best, sumq2)));
    if (!v128.any_true(upd)) continue;
    d = v128.bitselect(f32x4.div(sumqx, sumq2), d, upd);
    best = v128.bitselect(f32x4.mul(d, sumqx), best, upd);
  }
  v128.store(out, v128.andnot(d, tiny));
}

/** WT = weights of the blocks in XT: x² without an importance vector, else qw*sqrtf(sigma2 + x²). */
function blockWeightsX4(hasQw: bool, sigma2: v128): void {
  for (let j: usize = 0; j < 32 * 16; j += 16) {
    const x = v128.load(XT + j);
    const x2 = f32x4.mul(x, x);
    v128.store(WT + j, hasQw ? f32x4.mul(v128.load(QWT + j), f32x4.sqrt(f32x4.add(sigma2, x2))) : x2);
  }
}

/**
 * IQ4_XS: quantize_row_iq4_nl_impl with super_block_size 256, block_size 32, for the super-block
 * at x (qw = 0: no importance vector).
 */
function quantizeSuperBlockXS(x: usize, y: usize, qw: usize): void {
  const dh = y, scalesH = y + 2, scalesL = y + 4, q4 = y + 8;
  let sigma2: f32 = 0;
  for (let j = 0; j < 256; ++j) sigma2 += ldf(x, j) * ldf(x, j);
  sigma2 *= <f32>2 / <f32>256;
  for (let g = 0; g < 2; ++g) {
    const off = <usize>(g * 512);
    transposeX4(x + off, 32, XT);
    if (qw != 0) transposeX4(qw + off, 32, QWT);
    blockWeightsX4(qw != 0, f32x4.splat(sigma2));
    searchScalesX4(SCALES + <usize>(g * 16));
  }
  let maxScale: f32 = 0, amaxScale: f32 = 0;
  for (let ib = 0; ib < 8; ++ib) {
    const d = ldf(SCALES, ib);
    const absD = Mathf.abs(d);
    if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
  }
  const d: f32 = -maxScale / <f32>32;
  store<u16>(dh, fp32ToFp16(d));
  const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
  let scalesHigh = 0;
  for (let ib = 0; ib < 8; ++ib) {
    let l = nearestInt(id * ldf(SCALES, ib));
    l = l < 31 ? l : 31;
    l = l > -32 ? l : -32;
    const dl: f32 = d * <f32>l;
    const idl: f32 = dl != 0 ? <f32>1 / dl : <f32>0;
    quantizeIndices(x + (<usize>ib << 7), idl, q4 + (<usize>ib << 4));
    l += 32;
    const sl = scalesL + <usize>(ib >> 1);
    if (ib % 2 == 0) store<u8>(sl, <u8>(l & 0xf));
    else store<u8>(sl, load<u8>(sl) | <u8>((l & 0xf) << 4));
    scalesHigh |= (l >> 4) << (2 * ib);
  }
  store<u16>(scalesH, <u16>scalesHigh);
}

/**
 * IQ4_NL: quantize_row_iq4_nl_impl with super_block_size = block_size = 32 for every block of the
 * batch, four blocks at a time (one per lane; a group may straddle rows, each lane has its own
 * importance weights). Each block's sigma2 is its own sum, sequential per lane.
 */
export function quantizeRowsIQ4_NL(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const perRow = ncols >> 5;
  const total = nrows * perRow;
  for (let b0 = 0; b0 < total; b0 += 4) {
    const b1 = laneBlock(b0, 1, total), b2 = laneBlock(b0, 2, total), b3 = laneBlock(b0, 3, total);
    transposeFrom4(src + (<usize>b0 << 7), src + (<usize>b1 << 7), src + (<usize>b2 << 7), src + (<usize>b3 << 7), 32, XT);
    let sigma2 = f32x4.splat(0);
    for (let j = 0; j < 32; ++j) {
      const x = ldv(XT, j);
      sigma2 = f32x4.add(sigma2, f32x4.mul(x, x));
    }
    sigma2 = f32x4.mul(sigma2, f32x4.splat(<f32>2 / <f32>32));
    if (imatrix != 0) {
      transposeFrom4(
        imatrix + (<usize>(b0 % perRow) << 7), imatrix + (<usize>(b1 % perRow) << 7),
        imatrix + (<usize>(b2 % perRow) << 7), imatrix + (<usize>(b3 % perRow) << 7), 32, QWT);
    }
    blockWeightsX4(imatrix != 0, sigma2);
    searchScalesX4(SCALES);
    const lanes = min(4, total - b0);
    for (let k = 0; k < lanes; ++k) {
      const b = b0 + k;
      const y = dst + <usize>b * NL_BLOCK_BYTES;
      const s = ldf(SCALES, k);
      store<u16>(y, fp32ToFp16(s));
      quantizeIndices(src + (<usize>b << 7), s != 0 ? <f32>1 / s : <f32>0, y + 2);
    }
  }
}

export function quantizeRowsIQ4_XS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * XS_BLOCK_BYTES;
    for (let b = 0; b < nblocks; b++) {
      const qw = imatrix != 0 ? imatrix + (<usize>b << 10) : 0;
      quantizeSuperBlockXS(x + (<usize>b << 10), y + <usize>b * XS_BLOCK_BYTES, qw);
    }
  }
}

export function dequantizeIQ4_NL(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 5;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * NL_BLOCK_BYTES;
    const y = dst + (b << 7);
    const d = fp16ToFp32(load<u16>(x));
    for (let j: usize = 0; j < 16; j++) {
      const q = <i32>load<u8>(x + 2 + j);
      store<f32>(y + (j << 2), d * kvalue(q & 0xf));
      store<f32>(y + ((j + 16) << 2), d * kvalue(q >> 4));
    }
  }
}

export function dequantizeIQ4_XS(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * XS_BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x));
    const scalesH = <i32>load<u16>(x + 2);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((<i32>load<u8>(x + 4 + <usize>(ib >> 1)) >> (4 * (ib % 2))) & 0xf) | (((scalesH >> (2 * ib)) & 3) << 4);
      const dl: f32 = d * <f32>(ls - 32);
      const qs = x + 8 + (<usize>ib << 4);
      const y = dst + (b << 10) + (<usize>ib << 7);
      for (let j: usize = 0; j < 16; j++) {
        const q = <i32>load<u8>(qs + j);
        store<f32>(y + (j << 2), dl * kvalue(q & 0xf));
        store<f32>(y + ((j + 16) << 2), dl * kvalue(q >> 4));
      }
    }
  }
}
