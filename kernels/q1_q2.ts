// Q1_0 and Q2_0: the sign-only and the 2-bit formats (quantize_row_q1_0_ref / quantize_row_q2_0_ref).
// Both ignore the importance matrix (quantize_q1_0/quantize_q2_0 call the reference per row with
// one), so there is one path. Blocks are consecutive across rows.
//   Q1_0: blocks of 128 as {f16 d, u8 qs[16]}; d = (Σ|x|)/128 summed in order; bit j set when x[j] >= 0.
//   Q2_0: blocks of 64 as {f16 d, u8 qs[16]}; d = max|x|; element j in bits 2(j%4) of qs[j/4],
//         q = clamp((int)roundf(x*(1/d)) + 1, 0, 3).
import { fp16ToFp32, fp32ToFp16, fp32ToFp16x4 } from "./fp16";
import { packBytes, storeHalves4 } from "./legacy-common";
import { absMax, roundedTrits4 } from "./lowbit-common";

const Q1_BLOCK_FLOATS: usize = 128;
const Q1_BLOCK_BYTES: usize = 18;
const Q2_BLOCK_FLOATS: usize = 64;
const Q2_BLOCK_BYTES: usize = 18;

// ---- Q1_0 ----

/** The sign bits of 16 floats at x (bit j for x[j] >= 0, -0 included) as a u16. */
@inline
function signBits16(x: usize): u32 {
  const z = f32x4.splat(0);
  const a = f32x4.ge(v128.load(x), z);
  const b = f32x4.ge(v128.load(x, 16), z);
  const c = f32x4.ge(v128.load(x, 32), z);
  const d = f32x4.ge(v128.load(x, 48), z);
  return i8x16.bitmask(i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a, b), i16x8.narrow_i32x4_s(c, d)));
}

@inline
function q1Signs(x: usize, y: usize): void {
  for (let j: usize = 0; j < 8; j++) store<u16>(y + 2 + (j << 1), <u16>signBits16(x + (j << 6)));
}

function q1Block(x: usize, y: usize): void {
  // the reference's sum runs in element order: one scalar chain
  let sum: f32 = 0;
  for (let j: usize = 0; j < Q1_BLOCK_FLOATS; j++) sum += Mathf.abs(load<f32>(x + (j << 2)));
  store<u16>(y, fp32ToFp16(sum / <f32>128));
  q1Signs(x, y);
}

/** Four consecutive blocks: lane k of the sum is block k's chain, in element order. */
function q1Group(x: usize, y: usize): void {
  const stride: usize = Q1_BLOCK_FLOATS << 2;
  let acc = f32x4.splat(0);
  for (let j: usize = 0; j < Q1_BLOCK_FLOATS; j += 4) {
    const o = j << 2;
    const a = f32x4.abs(v128.load(x + o));
    const b = f32x4.abs(v128.load(x + stride + o));
    const c = f32x4.abs(v128.load(x + 2 * stride + o));
    const d = f32x4.abs(v128.load(x + 3 * stride + o));
    const t0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
    const t1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
    const t2 = v128.shuffle<i32>(c, d, 0, 4, 1, 5);
    const t3 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
    acc = f32x4.add(acc, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
    acc = f32x4.add(acc, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7));
    acc = f32x4.add(acc, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5));
    acc = f32x4.add(acc, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7));
  }
  storeHalves4(y, Q1_BLOCK_BYTES, fp32ToFp16x4(f32x4.div(acc, f32x4.splat(128))));
  for (let k: usize = 0; k < 4; k++) q1Signs(x + k * stride, y + k * Q1_BLOCK_BYTES);
}

export function quantizeRowsQ1_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 7;
  let b: usize = 0;
  for (; b + 4 <= nblocks; b += 4) q1Group(src + (b << 9), dst + b * Q1_BLOCK_BYTES);
  for (; b < nblocks; b++) q1Block(src + (b << 9), dst + b * Q1_BLOCK_BYTES);
}

export function dequantizeQ1_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 7;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * Q1_BLOCK_BYTES;
    const y = dst + (b << 9);
    const d = f32x4.splat(fp16ToFp32(load<u16>(x)));
    const negD = f32x4.neg(d);
    // bit j of lane j: all-ones lanes where the bit is set
    const bit = i32x4(1, 2, 4, 8);
    for (let j: usize = 0; j < 16; j++) {
      const q = i32x4.splat(<i32>load<u8>(x + 2 + j));
      const lo = i32x4.eq(v128.and(q, bit), bit);
      const hi = i32x4.eq(v128.and(i32x4.shr_u(q, 4), bit), bit);
      v128.store(y + (j << 5), v128.bitselect(d, negD, lo));
      v128.store(y + (j << 5), v128.bitselect(d, negD, hi), 16);
    }
  }
}

// ---- Q2_0 ----

/** Four u32 lanes of four 2-bit quants each (one per byte) → the quants packed in each lane's low byte. */
@inline
function pack2(t: v128): v128 {
  const v = v128.or(v128.or(t, i32x4.shr_u(t, 6)), v128.or(i32x4.shr_u(t, 12), i32x4.shr_u(t, 18)));
  return v128.and(v, i32x4.splat(0xFF));
}

function q2Block(x: usize, y: usize): void {
  const d = absMax(x, Q2_BLOCK_FLOATS);
  const id: f32 = d > 0 ? <f32>1 / d : <f32>0;
  store<u16>(y, fp32ToFp16(d));
  if (id == Infinity) {
    // a subnormal d: every x*id is ±Inf or NaN, which x86's cvttss2si turns into INT_MIN, so q clamps to 0
    v128.store(y + 2, i32x4.splat(0));
    return;
  }
  // a finite id keeps |x*id| < 1.5: the quants are 0..2 and the clamp never acts
  const idv = f32x4.splat(id);
  // 16 floats → 16 quants → 4 bytes, four times
  const r0 = packBytes(roundedTrits4(x, idv), roundedTrits4(x + 16, idv), roundedTrits4(x + 32, idv), roundedTrits4(x + 48, idv));
  const r1 = packBytes(roundedTrits4(x + 64, idv), roundedTrits4(x + 80, idv), roundedTrits4(x + 96, idv), roundedTrits4(x + 112, idv));
  const r2 = packBytes(roundedTrits4(x + 128, idv), roundedTrits4(x + 144, idv), roundedTrits4(x + 160, idv), roundedTrits4(x + 176, idv));
  const r3 = packBytes(roundedTrits4(x + 192, idv), roundedTrits4(x + 208, idv), roundedTrits4(x + 224, idv), roundedTrits4(x + 240, idv));
  v128.store(y + 2, packBytes(pack2(r0), pack2(r1), pack2(r2), pack2(r3)));
}

export function quantizeRowsQ2_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 6;
  for (let b: usize = 0; b < nblocks; b++) q2Block(src + (b << 8), dst + b * Q2_BLOCK_BYTES);
}

export function dequantizeQ2_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 6;
  // lane k takes bits 2k..2k+1 of the byte: masked, converted, scaled back by an exact power of 2
  const masks = i32x4(3, 12, 48, 192);
  const unshift = f32x4(1, 0.25, 0.0625, 0.015625);
  const one = f32x4.splat(1);
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * Q2_BLOCK_BYTES;
    const y = dst + (b << 8);
    const d = f32x4.splat(fp16ToFp32(load<u16>(x)));
    for (let j: usize = 0; j < 16; j++) {
      const q = f32x4.mul(f32x4.convert_i32x4_s(v128.and(i32x4.splat(<i32>load<u8>(x + 2 + j)), masks)), unshift);
      // (float)(q - 1) * d: q - 1 is exact in f32
      v128.store(y + (j << 4), f32x4.mul(f32x4.sub(q, one), d));
    }
  }
}
