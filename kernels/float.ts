// Float formats: F32 (copy), F16 and BF16, as ggml_quantize_chunk does them
// (ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref). The importance vector is ignored, as in ggml.
// F16 is converted four lanes at a time with the same integer/float steps as fp32ToFp16 (fp16.ts),
// so every lane gives exactly the scalar result.
import { fp16ToFp32, fp32ToFp16, fp32ToFp16x4 } from "./fp16";

export function quantizeRowsF32(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  memory.copy(dst, src, (<usize>nrows * <usize>ncols) << 2);
}

export function dequantizeF32(src: usize, dst: usize, k: i32): void {
  memory.copy(dst, src, <usize>k << 2);
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

// ggml_compute_fp32_to_bf16's rounding on four lanes. Its NaN case is left out: quantize() has
// rejected every row holding a NaN or Inf before a kernel runs.
@inline
function fp32ToBf16x4(f: v128): v128 {
  return i32x4.shr_u(i32x4.add(f, i32x4.add(i32x4.splat(0x7fff), v128.and(i32x4.shr_u(f, 16), i32x4.splat(1)))), 16);
}

export function quantizeRowsBF16(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void {
  const n = <usize>nrows * <usize>ncols;
  let i: usize = 0;
  for (; i + 16 <= n; i += 16) {
    const p = src + (i << 2);
    const q = dst + (i << 1);
    // lanes hold values <= 0xFFFF: the unsigned narrowing keeps them as they are
    v128.store(q, i16x8.narrow_i32x4_u(fp32ToBf16x4(v128.load(p)), fp32ToBf16x4(v128.load(p, 16))));
    v128.store(q, i16x8.narrow_i32x4_u(fp32ToBf16x4(v128.load(p, 32)), fp32ToBf16x4(v128.load(p, 48))), 16);
  }
  for (; i < n; i++) store<u16>(dst + (i << 1), fp32ToBf16(load<f32>(src + (i << 2))));
}

export function dequantizeBF16(src: usize, dst: usize, k: i32): void {
  for (let i: usize = 0; i < <usize>k; i++) store<u32>(dst + (i << 2), (<u32>load<u16>(src + (i << 1))) << 16);
}
