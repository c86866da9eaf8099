// IQ4_NL (blocks of 32: {f16 d, u8 qs[16]}) and IQ4_XS (super-blocks of 256: {f16 d, u16 scales_h,
// u8 scales_l[4], u8 qs[128]}): 4-bit indices into the non-linear table kvalues_iq4nl.
// Both are ggml's quantize_row_iq4_nl_impl with ntry = 7; note that without an importance vector
// the weights are still x² (only with one do they become qw*sqrt(sigma2 + x²)).
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { GROUP_MAX_EPS, nearestInt } from "./quant-common";

const NL_BLOCK_BYTES: usize = 18;
const XS_BLOCK_BYTES: usize = 136;
const NTRY: i32 = 7;

// kvalues_iq4nl (ggml-common.h)
const KVALUES: usize = memory.data<i8>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

@inline
function kvalue(i: i32): f32 {
  return <f32>load<i8>(KVALUES + <usize>i);
}

// Scratch (kernels allocate nothing): weights of one 32-block, indices of one super-block, scales.
const WEIGHT: usize = memory.data(32 * 4, 16);
const L: usize = memory.data(256, 16);
const SCALES: usize = memory.data(8 * 4, 16);

/**
 * ggml's best_index_int8 over kvalues_iq4nl: the nearest entry, ties to the upper one. The binary
 * search is done branch-free: ml ends as the largest index with !(x < value) (val[ml] <= x < val[ml+1]
 * inside the table), which is where the reference's search stops; a NaN x walks up to 15 as there.
 */
@inline
function bestIndex(x: f32): i32 {
  if (x <= kvalue(0)) return 0;
  if (x >= kvalue(15)) return 15;
  let ml = select(8, 0, !(x < kvalue(8)));
  ml = select(ml + 4, ml, !(x < kvalue(ml + 4)));
  ml = select(ml + 2, ml, !(x < kvalue(ml + 2)));
  ml = select(ml + 1, ml, !(x < kvalue(ml + 1)));
  ml = ml < 14 ? ml : 14;
  return x - kvalue(ml) < kvalue(ml + 1) - x ? ml : ml + 1;
}

@inline function ldf(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}

/**
 * quantize_row_iq4_nl_impl for one super-block of `superSize` floats at x split in blocks of 32,
 * with ntry = 7. Writes the f16 scale at dh, the packed indices at q4 and (superSize > 32) the 6-bit
 * block scales at scalesH/scalesL. qw = 0: no importance vector.
 */
function quantizeSuperBlock(superSize: i32, x: usize, dh: usize, q4: usize, scalesH: usize, scalesL: usize, qw: usize): void {
  let sigma2: f32 = 0;
  for (let j = 0; j < superSize; ++j) sigma2 += ldf(x, j) * ldf(x, j);
  sigma2 *= <f32>2 / <f32>superSize;

  memory.fill(q4, 0, <usize>(superSize >> 1));
  store<u16>(dh, fp32ToFp16(0));

  const nblocks = superSize >> 5;
  let maxScale: f32 = 0, amaxScale: f32 = 0;
  for (let ib = 0; ib < nblocks; ++ib) {
    const xb = x + (<usize>ib << 7);
    const Lb = L + (<usize>ib << 5);
    if (qw != 0) {
      const qwb = qw + (<usize>ib << 7);
      for (let j = 0; j < 32; ++j) store<f32>(WEIGHT + (<usize>j << 2), ldf(qwb, j) * Mathf.sqrt(sigma2 + ldf(xb, j) * ldf(xb, j)));
    } else {
      for (let j = 0; j < 32; ++j) store<f32>(WEIGHT + (<usize>j << 2), ldf(xb, j) * ldf(xb, j));
    }
    let amax: f32 = 0, max: f32 = 0;
    for (let j = 0; j < 32; ++j) {
      const ax = Mathf.abs(ldf(xb, j));
      if (ax > amax) { amax = ax; max = ldf(xb, j); }
    }
    if (amax < GROUP_MAX_EPS) {
      store<f32>(SCALES + (<usize>ib << 2), 0);
      continue;
    }
    let d: f32 = -max / kvalue(0); // ntry > 0
    let id: f32 = <f32>1 / d;
    let sumqx: f32 = 0, sumq2: f32 = 0;
    for (let j = 0; j < 32; ++j) {
      const xj = ldf(xb, j);
      const l = bestIndex(id * xj);
      store<u8>(Lb + <usize>j, <u8>l);
      const q = kvalue(l);
      const w = ldf(WEIGHT, j);
      sumqx += w * q * xj;
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : <f32>0;
    let best: f32 = d * sumqx;
    for (let itry = -NTRY; itry <= NTRY; ++itry) {
      id = <f32>(itry + <i32>load<i8>(KVALUES)) / max;
      sumqx = 0;
      sumq2 = 0;
      for (let j = 0; j < 32; ++j) {
        const xj = ldf(xb, j);
        const q = kvalue(bestIndex(id * xj));
        const w = ldf(WEIGHT, j);
        sumqx += w * q * xj;
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    store<f32>(SCALES + (<usize>ib << 2), d);
    const absD = Mathf.abs(d);
    if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
  }

  if (nblocks > 1) {
    store<u16>(scalesH, 0);
    const d: f32 = -maxScale / <f32>32;
    store<u16>(dh, fp32ToFp16(d));
    const id: f32 = d != 0 ? <f32>1 / d : <f32>0;
    for (let ib = 0; ib < nblocks; ++ib) {
      let l = nearestInt(id * ldf(SCALES, ib));
      l = l < 31 ? l : 31;
      l = l > -32 ? l : -32;
      const dl: f32 = d * <f32>l;
      const idl: f32 = dl != 0 ? <f32>1 / dl : <f32>0;
      const Lb = L + (<usize>ib << 5);
      const xb = x + (<usize>ib << 7);
      for (let j = 0; j < 32; ++j) store<u8>(Lb + <usize>j, <u8>bestIndex(idl * ldf(xb, j)));
      l += 32;
      const lLow = l & 0xf;
      const lHigh = l >> 4;
      const sl = scalesL + <usize>(ib >> 1);
      if (ib % 2 == 0) store<u8>(sl, <u8>lLow);
      else store<u8>(sl, load<u8>(sl) | <u8>(lLow << 4));
      store<u16>(scalesH, load<u16>(scalesH) | <u16>(lHigh << (2 * (ib % 8))));
    }
  } else {
    const s0 = load<f32>(SCALES);
    store<u16>(dh, fp32ToFp16(s0));
    const id: f32 = s0 != 0 ? <f32>1 / s0 : <f32>0;
    for (let j = 0; j < superSize; ++j) store<u8>(L + <usize>j, <u8>bestIndex(id * ldf(x, j)));
  }

  for (let i = 0; i < (superSize >> 5); ++i) {
    const Li = L + (<usize>i << 5);
    v128.store(q4 + (<usize>i << 4), v128.or(v128.load(Li), i8x16.shl(v128.load(Li, 16), 4)));
  }
}

export function quantizeRowsIQ4_NL(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = ncols >> 5;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * NL_BLOCK_BYTES;
    for (let b = 0; b < nblocks; b++) {
      const yb = y + <usize>b * NL_BLOCK_BYTES;
      const qw = imatrix != 0 ? imatrix + (<usize>b << 7) : 0;
      quantizeSuperBlock(32, x + (<usize>b << 7), yb, yb + 2, 0, 0, qw);
    }
  }
}

export function quantizeRowsIQ4_XS(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = ncols >> 8;
  for (let r = 0; r < nrows; r++) {
    const x = src + ((<usize>r * <usize>ncols) << 2);
    const y = dst + <usize>r * <usize>nblocks * XS_BLOCK_BYTES;
    for (let b = 0; b < nblocks; b++) {
      const yb = y + <usize>b * XS_BLOCK_BYTES;
      const qw = imatrix != 0 ? imatrix + (<usize>b << 10) : 0;
      quantizeSuperBlock(256, x + (<usize>b << 10), yb, yb + 8, yb + 2, yb + 4, qw);
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
