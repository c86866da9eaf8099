// Q6_K: super-blocks of 256 = 16 sub-blocks of 16, 6-bit symmetric quants with an 8-bit scale per
// sub-block (ggml block_q6_K: ql[128], qh[64], scales[16], d = 210 bytes).
// quantizeRowsQ6_K = ggml_quantize_chunk(Q6_K): quantize_row_q6_K_ref without an importance
// vector, quantize_row_q6_K_impl (the imatrix used directly as make_qx_quants weights) with one.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";
import { GROUP_MAX_EPS, nearestInt, transposeX4, levelsOfLaneX4, makeQxQuantsX4, requantizeSymX16 } from "./quant-common";

const QK_K = 256;
const BLOCK_BYTES = 210;
const OFF_QL: usize = 0, OFF_QH: usize = 128, OFF_SCALES: usize = 192, OFF_D: usize = 208;

const L = memory.data(QK_K, 16);
const scales = memory.data(16 * 4, 16);
// transposed sub-block data: four groups of four sub-blocks (one per f32x4 lane), 16 v128 each
const XT = memory.data(64 * 16, 16);
const QWT = memory.data(64 * 16, 16);
const LT = memory.data(64 * 16, 16);

@inline function ldf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }

/** qw = 0: quantize_row_q6_K_ref's block; otherwise the impl's block with weights qw. */
function quantizeBlock(x: usize, y: usize, qw: usize): void {
  let maxScale: f32 = 0;
  let maxAbsScale: f32 = 0;
  // make_qx_quants(16, 32, x + 16*ib, L + 16*ib, 1, qw or NULL) for four sub-blocks at a time
  for (let g = 0; g < 4; ++g) {
    const off = <usize>(g * 256);
    transposeX4(x + off, 16, XT + off);
    if (qw) transposeX4(qw + off, 16, QWT + off);
    makeQxQuantsX4(16, 32, XT + off, qw ? QWT + off : 0, LT + off, scales + <usize>(g * 16));
  }
  for (let ib = 0; ib < 16; ++ib) {
    const scale = ldf(scales, ib);
    const absScale = Mathf.abs(scale);
    if (absScale > maxAbsScale) {
      maxAbsScale = absScale;
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    memory.fill(y, 0, BLOCK_BYTES);
    return;
  }
  const iscale: f32 = <f32>-128 / maxScale;
  store<u16>(y + OFF_D, fp32ToFp16(<f32>1 / iscale));
  for (let ib = 0; ib < 16; ++ib) {
    const l = nearestInt(iscale * ldf(scales, ib));
    store<i8>(y + OFF_SCALES + <usize>ib, <i8>(l < 127 ? l : 127));
  }
  const dAll = fp16ToFp32(load<u16>(y + OFF_D));
  for (let j = 0; j < 16; ++j) {
    const d = dAll * <f32>load<i8>(y + OFF_SCALES + <usize>j);
    if (d == 0) {
      // skipped by the reference: the sub-block keeps its search levels
      levelsOfLaneX4(LT + <usize>((j >> 2) * 256), 16, j & 3, L + <usize>(16 * j));
      continue;
    }
    requantizeSymX16(x + <usize>(64 * j), 16, d, -32, 31, 32, L + <usize>(16 * j));
  }
  // ql: low nibbles of quants l and l+64 (l+32 and l+96); qh: their high 2 bits, 4 quants a byte
  const low = i8x16.splat(0x0F);
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l += 16) {
      const p = L + <usize>(j + l);
      const a = v128.load(p), b = v128.load(p, 32), c = v128.load(p, 64), e = v128.load(p, 96);
      v128.store(y + OFF_QL + <usize>(j / 2 + l), v128.or(v128.and(a, low), i8x16.shl(v128.and(c, low), 4)));
      v128.store(y + OFF_QL + <usize>(j / 2 + l + 32), v128.or(v128.and(b, low), i8x16.shl(v128.and(e, low), 4)));
      const h = v128.or(
        v128.or(i8x16.shr_u(a, 4), i8x16.shl(i8x16.shr_u(b, 4), 2)),
        v128.or(i8x16.shl(i8x16.shr_u(c, 4), 4), i8x16.shl(i8x16.shr_u(e, 4), 6)),
      );
      v128.store(y + OFF_QH + <usize>(j / 4 + l), h);
    }
  }
}

export function quantizeRowsQ6_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const nb = ncols / QK_K;
  for (let r = 0; r < nrows; ++r) {
    for (let i = 0; i < nb; ++i) {
      const x = src + ((<usize>r * <usize>ncols + <usize>(i * QK_K)) << 2);
      const y = dst + (<usize>r * <usize>nb + <usize>i) * BLOCK_BYTES;
      quantizeBlock(x, y, imatrix ? imatrix + (<usize>(i * QK_K) << 2) : 0);
    }
  }
}

export function dequantizeQ6_K(src: usize, dst: usize, k: i32): void {
  const nb = k / QK_K;
  for (let i = 0; i < nb; ++i) {
    const x = src + <usize>i * BLOCK_BYTES;
    const d = fp16ToFp32(load<u16>(x + OFF_D));
    let ql = x + OFF_QL;
    let qh = x + OFF_QH;
    let sc = x + OFF_SCALES;
    let y = dst + (<usize>i * QK_K << 2);
    for (let n = 0; n < QK_K; n += 128) {
      for (let l = 0; l < 32; ++l) {
        const is = <usize>(l / 16);
        const lo0 = <i32>load<u8>(ql + <usize>l);
        const lo1 = <i32>load<u8>(ql + <usize>(l + 32));
        const h = <i32>load<u8>(qh + <usize>l);
        const q1 = ((lo0 & 0xF) | (((h >> 0) & 3) << 4)) - 32;
        const q2 = ((lo1 & 0xF) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((lo1 >> 4) | (((h >> 6) & 3) << 4)) - 32;
        store<f32>(y + (<usize>l << 2), d * <f32>load<i8>(sc + is) * <f32>q1);
        store<f32>(y + (<usize>(l + 32) << 2), d * <f32>load<i8>(sc + is + 2) * <f32>q2);
        store<f32>(y + (<usize>(l + 64) << 2), d * <f32>load<i8>(sc + is + 4) * <f32>q3);
        store<f32>(y + (<usize>(l + 96) << 2), d * <f32>load<i8>(sc + is + 6) * <f32>q4);
      }
      y += 128 * 4;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}
