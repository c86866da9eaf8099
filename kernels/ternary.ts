// TQ1_0 and TQ2_0: the ternary formats of BitNet b1.58 / TriLMs (quantize_row_tq1_0_ref /
// quantize_row_tq2_0_ref). Both ignore the importance matrix. Blocks of 256 with d = max|x| and
// trits xi = lroundf(x*(1/d)) + 1 in {0, 1, 2}; blocks are consecutive across rows.
//   TQ2_0: {u8 qs[64], f16 d}; byte 32c+m holds x[128c + 32n + m] in bits 2n (n = 0..3).
//   TQ1_0: {u8 qs[48], u8 qh[4], f16 d}; five trits per byte (the first the most significant),
//          stored as ceil(q*256/243): qs[m] from x[m + 32n] (m < 32), qs[32+m] from x[160 + m + 16n]
//          (m < 16), qh[j] from four trits x[240 + j + 4n] shifted up one trit.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { packBytes } from "./legacy-common";
import { absMax, roundedTrits4 } from "./lowbit-common";

const BLOCK_FLOATS: usize = 256;
const TQ1_BLOCK_BYTES: usize = 54;
const TQ2_BLOCK_BYTES: usize = 66;

/** Sixteen trits of the floats at x as bytes, in order. */
@inline
function trits16(x: usize, idv: v128): v128 {
  return packBytes(roundedTrits4(x, idv), roundedTrits4(x + 16, idv), roundedTrits4(x + 32, idv), roundedTrits4(x + 48, idv));
}

/**
 * The block's scale: d = max|x| stored as f16 at dh; returns 1/d (0 for d = 0). An infinite 1/d (a
 * subnormal d) makes every x*id ±Inf or NaN, which lroundf returns as LONG_MIN: trit 0 + 1 = 1.
 */
@inline
function ternaryScale(x: usize, dh: usize): f32 {
  const d = absMax(x, BLOCK_FLOATS);
  store<u16>(dh, fp32ToFp16(d));
  return d != 0 ? <f32>1 / d : <f32>0;
}

// ---- TQ2_0 ----

function tq2Block(x: usize, y: usize): void {
  const id = ternaryScale(x, y + 64);
  if (id == Infinity) {
    v128.store(y, i8x16.splat(0x55));
    v128.store(y, i8x16.splat(0x55), 16);
    v128.store(y, i8x16.splat(0x55), 32);
    v128.store(y, i8x16.splat(0x55), 48);
    return;
  }
  const idv = f32x4.splat(id);
  for (let c: usize = 0; c < 2; c++) {
    for (let m: usize = 0; m < 32; m += 16) {
      const xm = x + ((128 * c + m) << 2);
      const t0 = trits16(xm, idv);
      const t1 = trits16(xm + 128, idv);
      const t2 = trits16(xm + 256, idv);
      const t3 = trits16(xm + 384, idv);
      v128.store(y + 32 * c + m, v128.or(v128.or(t0, i8x16.shl(t1, 2)), v128.or(i8x16.shl(t2, 4), i8x16.shl(t3, 6))));
    }
  }
}

export function quantizeRowsTQ2_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 8;
  for (let b: usize = 0; b < nblocks; b++) tq2Block(src + (b << 10), dst + b * TQ2_BLOCK_BYTES);
}

export function dequantizeTQ2_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 8;
  const one = i32x4.splat(1);
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * TQ2_BLOCK_BYTES;
    let y = dst + (b << 10);
    const d = f32x4.splat(fp16ToFp32(load<u16>(x + 64)));
    for (let j: usize = 0; j < 64; j += 32) {
      for (let l: i32 = 0; l < 4; l++) {
        for (let m: usize = 0; m < 32; m += 16) {
          const q = v128.and(i8x16.shr_u(v128.load(x + j + m), <u32>(2 * l)), i8x16.splat(3));
          const lo = i16x8.extend_low_i8x16_u(q), hi = i16x8.extend_high_i8x16_u(q);
          // (float)(q - 1) * d
          v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_u(lo), one)), d));
          v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_u(lo), one)), d), 16);
          v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_u(hi), one)), d), 32);
          v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_u(hi), one)), d), 48);
          y += 64;
        }
      }
    }
  }
}

// ---- TQ1_0 ----

/** ceil(q*256/243) for 0 <= q <= 242 per i32 lane: (q*256 + 242) * ceil(2^24/243) >> 24 is exact there. */
@inline
function tritsToByte(q: v128): v128 {
  return i32x4.shr_u(i32x4.mul(i32x4.add(i32x4.shl(q, 8), i32x4.splat(242)), i32x4.splat(69043)), 24);
}

/** Five trit vectors (the first the most significant) → q = Σ t_n·3^(4-n). */
@inline
function base3(t0: v128, t1: v128, t2: v128, t3: v128, t4: v128): v128 {
  const three = i32x4.splat(3);
  let q = i32x4.add(i32x4.mul(t0, three), t1);
  q = i32x4.add(i32x4.mul(q, three), t2);
  q = i32x4.add(i32x4.mul(q, three), t3);
  return i32x4.add(i32x4.mul(q, three), t4);
}

/** Four qs bytes from the floats x[m + s*n], n = 0..4, m = 0..3 (s = the trit stride in floats). */
@inline
function tq1Bytes4(x: usize, s: usize, idv: v128): v128 {
  const o = s << 2;
  return tritsToByte(base3(roundedTrits4(x, idv), roundedTrits4(x + o, idv), roundedTrits4(x + 2 * o, idv), roundedTrits4(x + 3 * o, idv), roundedTrits4(x + 4 * o, idv)));
}

/** Sixteen qs bytes from the floats x[m + s*n], n = 0..4, m = 0..15. */
@inline
function tq1Bytes16(x: usize, s: usize, idv: v128): v128 {
  return packBytes(tq1Bytes4(x, s, idv), tq1Bytes4(x + 16, s, idv), tq1Bytes4(x + 32, s, idv), tq1Bytes4(x + 48, s, idv));
}

function tq1Block(x: usize, y: usize): void {
  const id = ternaryScale(x, y + 52);
  if (id == Infinity) {
    // every trit is 1: 121 → ceil(121*256/243) = 128 for qs; 40*3 = 120 → 127 for qh
    v128.store(y, i8x16.splat(<i8>0x80));
    v128.store(y, i8x16.splat(<i8>0x80), 16);
    v128.store(y, i8x16.splat(<i8>0x80), 32);
    store<u32>(y + 48, 0x7F7F7F7F);
    return;
  }
  const idv = f32x4.splat(id);
  v128.store(y, tq1Bytes16(x, 32, idv));
  v128.store(y + 16, tq1Bytes16(x + 64, 32, idv));
  v128.store(y + 32, tq1Bytes16(x + (160 << 2), 16, idv));
  // qh: four trits and a zero one (the shift to the most significant place)
  const xh = x + (240 << 2);
  const q = base3(roundedTrits4(xh, idv), roundedTrits4(xh + 16, idv), roundedTrits4(xh + 32, idv), roundedTrits4(xh + 48, idv), i32x4.splat(0));
  const b = tritsToByte(q);
  v128.store32_lane(y + 48, packBytes(b, b, b, b), 0);
}

export function quantizeRowsTQ1_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nblocks = (<usize>nrows * <usize>ncols) >> 8;
  for (let b: usize = 0; b < nblocks; b++) tq1Block(src + (b << 10), dst + b * TQ1_BLOCK_BYTES);
}

/** y[0..n) = (float)(xi - 1) * d for the trit n of the bytes at q: xi = ((u8)(q*3^n) * 3) >> 8, 8 at a time. */
@inline
function tq1Trits8(q: usize, pow3: i32, d: v128, y: usize): void {
  let v = i16x8.mul(v128.load8x8_u(q), i16x8.splat(<i16>pow3));
  v = i16x8.shr_u(i16x8.mul(v128.and(v, i16x8.splat(0xFF)), i16x8.splat(3)), 8);
  v = i16x8.sub(v, i16x8.splat(1));
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(v)), d));
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(v)), d), 16);
}

export function dequantizeTQ1_0(src: usize, dst: usize, k: i32): void {
  const nblocks = <usize>k >> 8;
  for (let b: usize = 0; b < nblocks; b++) {
    const x = src + b * TQ1_BLOCK_BYTES;
    let y = dst + (b << 10);
    const d = f32x4.splat(fp16ToFp32(load<u16>(x + 52)));
    let p: i32 = 1;
    for (let n = 0; n < 5; n++) {
      for (let m: usize = 0; m < 32; m += 8) tq1Trits8(x + m, p, d, y + (m << 2));
      y += 128;
      p *= 3;
    }
    p = 1;
    for (let n = 0; n < 5; n++) {
      for (let m: usize = 0; m < 16; m += 8) tq1Trits8(x + 32 + m, p, d, y + (m << 2));
      y += 64;
      p *= 3;
    }
    p = 1;
    for (let n = 0; n < 4; n++) {
      for (let j: usize = 0; j < 4; j++) {
        const q = <i32>(<u8>(<i32>load<u8>(x + 48 + j) * p));
        store<f32>(y + (j << 2), <f32>(((q * 3) >> 8) - 1) * f32x4.extract_lane(d, 0));
      }
      y += 16;
      p *= 3;
    }
  }
}
