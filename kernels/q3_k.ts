// Q3_K: super-blocks of 256 = 16 sub-blocks of 16, 3-bit symmetric quants (2 low bits in qs, the
// high bit in hmask) with a 6-bit scale per sub-block (ggml block_q3_K: hmask[32], qs[64],
// scales[12], d = 110 bytes).
// quantizeRowsQ3_K = ggml_quantize_chunk(Q3_K): quantize_row_q3_K_ref (make_q3_quants) without an
// importance vector, quantize_row_q3_K_impl (weighted make_qx_quants) with one.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import {
  nearestInt, makeQxQuantsIsX4, transposeX4, levelsOfLaneX4, makeQxQuantsX4, makeQ3QuantsX4, requantizeSymX16,
  sumOfSquares, importanceWeightsX4, quantizeRowsK,
} from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 110;
const OFF_HMASK: usize = 0, OFF_QS: usize = 32, OFF_SCALES: usize = 96, OFF_D: usize = 108;

const L = memory.data(QK_K, 16);
const Ls = memory.data(16);
const scales = memory.data(16 * 4, 16);
const sw = memory.data(16 * 4, 16);
// transposed sub-block data: four groups of four sub-blocks (one per f32x4 lane), 16 v128 each
const XT = memory.data(64 * 16, 16);
const WT = memory.data(64 * 16, 16);
const QWT = memory.data(64 * 16, 16);
const LT = memory.data(64 * 16, 16);

@inline function ldf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }

/** Store the 6-bit (biased) scale l of sub-block j into the 12-byte packed layout (zeroed first). */
@inline
function packScale(sc: usize, j: i32, l: i32): void {
  if (j < 8) {
    store<u8>(sc + <usize>j, <u8>(l & 0xF));
  } else {
    const p = sc + <usize>(j - 8);
    store<u8>(p, <u8>(<i32>load<u8>(p) | ((l & 0xF) << 4)));
  }
  l >>= 4;
  const p = sc + <usize>(j % 4 + 8);
  store<u8>(p, <u8>(<i32>load<u8>(p) | (l << (2 * (j / 4)))));
}

/** The signed scale of sub-block j from the packed layout. */
@inline
function unpackScale(sc: usize, j: i32): i32 {
  let s = j < 8 ? <i32>load<u8>(sc + <usize>j) & 0xF : <i32>load<u8>(sc + <usize>(j - 8)) >> 4;
  s = (s | (((<i32>load<u8>(sc + <usize>(8 + j % 4)) >> (2 * (j / 4))) & 3) << 4)) - 32;
  return <i32><i8>s;
}

/** Requantize with the final scales, then split off the high bits into hmask and pack the low 2 bits. */
function requantizeAndPack(x: usize, y: usize): void {
  const dAll = fp16ToFp32(load<u16>(y + OFF_D));
  for (let j = 0; j < 16; ++j) {
    const d = dAll * <f32>unpackScale(y + OFF_SCALES, j);
    if (d == 0) {
      // skipped by the reference: the sub-block keeps its search levels
      levelsOfLaneX4(LT + <usize>((j >> 2) * 256), 16, j & 3, L + <usize>(16 * j));
      continue;
    }
    requantizeSymX16(x + <usize>(64 * j), 16, d, -4, 3, 4, L + <usize>(16 * j));
  }
  // high bit of quant j into hmask[j % 32] bit j / 32; the low 2 bits, 4 quants a byte, into qs
  const three = i8x16.splat(3);
  const four = i8x16.splat(4);
  for (let h = 0; h < 32; h += 16) {
    let hm = i8x16.splat(0);
    for (let k = 0; k < 8; ++k) {
      const p = L + <usize>(32 * k + h);
      const v = v128.load(p);
      const hi = i8x16.gt_u(v, three);
      hm = v128.or(hm, v128.and(hi, i32x4.splat(0x01010101 << k)));
      v128.store(p, i8x16.sub(v, v128.and(hi, four)));
    }
    v128.store(y + OFF_HMASK + <usize>h, hm);
  }
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l += 16) {
      const p = L + <usize>(j + l);
      const v = v128.or(
        v128.or(v128.load(p), i16x8.shl(v128.load(p, 32), 2)),
        v128.or(i16x8.shl(v128.load(p, 64), 4), i16x8.shl(v128.load(p, 96), 6)),
      );
      v128.store(y + OFF_QS + <usize>(j / 4 + l), v);
    }
  }
}

function quantizeBlockRef(x: usize, y: usize): void {
  let maxScale: f32 = 0;
  let amax: f32 = 0;
  // make_q3_quants(16, 4, x + 16*j, L + 16*j, true) for four sub-blocks at a time
  for (let g = 0; g < 4; ++g) {
    const off = <usize>(g * 256);
    transposeX4(x + off, 16, XT + off);
    makeQ3QuantsX4(16, 4, XT + off, LT + off, scales + <usize>(g * 16));
  }
  for (let j = 0; j < 16; ++j) {
    const s = ldf(scales, j);
    const a = Mathf.abs(s);
    if (a > amax) { amax = a; maxScale = s; }
  }
  memory.fill(y + OFF_SCALES, 0, 12);
  if (maxScale != 0) {
    const iscale: f32 = <f32>-32 / maxScale;
    for (let j = 0; j < 16; ++j) {
      let l = <i32><i8>nearestInt(iscale * ldf(scales, j));
      l = l < 31 ? l : 31;
      l = (l > -32 ? l : -32) + 32;
      packScale(y + OFF_SCALES, j, l);
    }
    store<u16>(y + OFF_D, fp32ToFp16(<f32>1 / iscale));
  } else {
    store<u16>(y + OFF_D, fp32ToFp16(0));
  }
  requantizeAndPack(x, y);
}

function quantizeBlockImatrix(x: usize, y: usize, qw: usize): void {
  const sigma2: f32 = <f32>2 * sumOfSquares(x, QK_K) / <f32>QK_K;
  // weights qw*sqrt(sigma2 + x^2) and make_qx_quants(16, 4, …, 1, weights) for four sub-blocks at a time
  const sig = f32x4.splat(sigma2);
  for (let g = 0; g < 4; ++g) {
    const off = <usize>(g * 256);
    importanceWeightsX4(x + off, qw + off, 16, sig, XT + off, QWT + off, WT + off, sw + <usize>(g * 16));
    makeQxQuantsX4(16, 4, XT + off, WT + off, LT + off, scales + <usize>(g * 16));
  }
  memory.fill(y + OFF_SCALES, 0, 12);
  const dBlock = makeQxQuantsIsX4(16, 32, scales, Ls, 1, sw);
  for (let j = 0; j < 16; ++j) packScale(y + OFF_SCALES, j, <i32>load<i8>(Ls + <usize>j));
  store<u16>(y + OFF_D, fp32ToFp16(dBlock));
  requantizeAndPack(x, y);
}

export function quantizeRowsQ3_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  quantizeRowsK(src, dst, nrows, ncols, imatrix, BLOCK_BYTES, quantizeBlockRef, quantizeBlockImatrix);
}

export function dequantizeQ3_K(src: usize, dst: usize, k: i32): void {
  const nb = k / QK_K;
  let out = dst;
  for (let i = 0; i < nb; ++i) {
    const x = src + <usize>i * BLOCK_BYTES;
    const dAll = fp16ToFp32(load<u16>(x + OFF_D));
    let q = x + OFF_QS;
    const hm = x + OFF_HMASK;
    let m: u32 = 1;
    let is = 0;
    for (let n = 0; n < QK_K; n += 128) {
      for (let shift: u32 = 0; shift < 8; shift += 2) {
        for (let half: usize = 0; half < 32; half += 16) {
          const dl = dAll * <f32>unpackScale(x + OFF_SCALES, is++);
          for (let l: usize = 0; l < 16; ++l) {
            const lo = <i32>((<u32>load<u8>(q + half + l) >> shift) & 3);
            const hi = (<u32>load<u8>(hm + half + l) & m) ? 0 : 4;
            store<f32>(out, dl * <f32>(lo - hi));
            out += 4;
          }
        }
        m <<= 1;
      }
      q += 32;
    }
  }
}
