// Float formats: F32 (copy), F16 and BF16, as ggml_quantize_chunk does them
// (ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref). The importance vector is ignored, as in ggml.
// F16 is converted four lanes at a time with the same integer/float steps as fp32ToFp16 (fp16.ts),
// so every lane gives exactly the scalar result.
import { fp16ToFp32, fp32ToFp16 } from "./fp16";

export function quantizeRowsF32(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  memory.copy(dst, src, (<usize>nrows * <usize>ncols) << 2);
}

export function dequantizeF32(src: usize, dst: usize, k: i32): void {
  memory.copy(dst, src, <usize>k << 2);
}

// ggml_compute_fp32_to_fp16 on four lanes (round to nearest even; NaN never reaches here: the caller
// rejects non-finite rows, but the lane formula still maps it like the scalar one).
@inline
function fp32ToFp16x4(f: v128): v128 {
  const scaleToInf = f32x4.splat(reinterpret<f32>(<u32>0x77800000)); // 0x1.0p+112f
  const scaleToZero = f32x4.splat(reinterpret<f32>(<u32>0x08800000)); // 0x1.0p-110f
  let base = f32x4.mul(f32x4.mul(f32x4.abs(f), scaleToInf), scaleToZero);
  const shl1w = i32x4.add(f, f);
  const sign = v128.and(f, i32x4.splat(0x80000000));
  // bias = max(shl1w & 0xFF000000, 0x71000000) as unsigned
  const bias = i32x4.max_u(v128.and(shl1w, i32x4.splat(0xFF000000)), i32x4.splat(0x71000000));
  base = f32x4.add(i32x4.add(i32x4.shr_u(bias, 1), i32x4.splat(0x07800000)), base);
  const expBits = v128.and(i32x4.shr_u(base, 13), i32x4.splat(0x00007C00));
  const mantissaBits = v128.and(base, i32x4.splat(0x00000FFF));
  const nonsign = i32x4.add(expBits, mantissaBits);
  // unsigned shl1w > 0xFF000000 <=> NaN
  const isNaN = i32x4.gt_u(shl1w, i32x4.splat(0xFF000000));
  return v128.or(i32x4.shr_u(sign, 16), v128.bitselect(i32x4.splat(0x7E00), nonsign, isNaN));
}

export function quantizeRowsF16(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const n = <usize>nrows * <usize>ncols;
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) {
    const a = fp32ToFp16x4(v128.load(src + (i << 2)));
    const b = fp32ToFp16x4(v128.load(src + (i << 2), 16));
    // lanes hold values <= 0xFFFF: the unsigned narrowing keeps them as they are
    v128.store(dst + (i << 1), i16x8.narrow_i32x4_u(a, b));
  }
  for (; i < n; i++) store<u16>(dst + (i << 1), fp32ToFp16(load<f32>(src + (i << 2))));
}

export function dequantizeF16(src: usize, dst: usize, k: i32): void {
  for (let i: usize = 0; i < <usize>k; i++) store<f32>(dst + (i << 2), fp16ToFp32(load<u16>(src + (i << 1))));
}

// ggml_compute_fp32_to_bf16: round to nearest even on the top 16 bits; NaN made quiet.
@inline
function fp32ToBf16(f: f32): u16 {
  const u = reinterpret<u32>(f);
  if ((u & 0x7fffffff) > 0x7f800000) return <u16>((u >> 16) | 64);
  return <u16>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

@inline
function fp32ToBf16x4(f: v128): v128 {
  const rounded = i32x4.shr_u(i32x4.add(f, i32x4.add(i32x4.splat(0x7fff), v128.and(i32x4.shr_u(f, 16), i32x4.splat(1)))), 16);
  const quietNaN = v128.or(i32x4.shr_u(f, 16), i32x4.splat(64));
  const isNaN = i32x4.gt_u(v128.and(f, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(quietNaN, rounded, isNaN);
}

export function quantizeRowsBF16(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const n = <usize>nrows * <usize>ncols;
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) {
    const a = fp32ToBf16x4(v128.load(src + (i << 2)));
    const b = fp32ToBf16x4(v128.load(src + (i << 2), 16));
    v128.store(dst + (i << 1), i16x8.narrow_i32x4_u(a, b));
  }
  for (; i < n; i++) store<u16>(dst + (i << 1), fp32ToBf16(load<f32>(src + (i << 2))));
}

export function dequantizeBF16(src: usize, dst: usize, k: i32): void {
  for (let i: usize = 0; i < <usize>k; i++) store<u32>(dst + (i << 2), (<u32>load<u16>(src + (i << 1))) << 16);
}
