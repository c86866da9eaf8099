// IEEE half <-> single conversions, bit for bit as ggml's scalar reference
// (ggml_compute_fp32_to_fp16: round to nearest even, NaN -> 0x7E00 | sign).

@inline
export function fp32ToFp16(f: f32): u16 {
  const scaleToInf: f32 = reinterpret<f32>(<u32>0x77800000); // 0x1.0p+112f
  const scaleToZero: f32 = reinterpret<f32>(<u32>0x08800000); // 0x1.0p-110f
  let base: f32 = (Mathf.abs(f) * scaleToInf) * scaleToZero;
  const w = reinterpret<u32>(f);
  const shl1w = w + w;
  const sign = w & 0x80000000;
  let bias = shl1w & 0xFF000000;
  if (bias < 0x71000000) bias = 0x71000000;
  base = reinterpret<f32>((bias >> 1) + 0x07800000) + base;
  const bits = reinterpret<u32>(base);
  const expBits = (bits >> 13) & 0x00007C00;
  const mantissaBits = bits & 0x00000FFF;
  const nonsign = expBits + mantissaBits;
  return <u16>((sign >> 16) | (shl1w > 0xFF000000 ? 0x7E00 : nonsign));
}

@inline
export function fp16ToFp32(h: u16): f32 {
  const w = (<u32>h) << 16;
  const sign = w & 0x80000000;
  const twoW = w + w;
  const expOffset: u32 = 0xE0 << 23;
  const expScale: f32 = reinterpret<f32>(<u32>0x07800000); // 0x1.0p-112f
  const normalized: f32 = reinterpret<f32>((twoW >> 4) + expOffset) * expScale;
  const magicMask: u32 = 126 << 23;
  const denormalized: f32 = reinterpret<f32>((twoW >> 17) | magicMask) - <f32>0.5;
  const cutoff: u32 = 1 << 27;
  return reinterpret<f32>(sign | (twoW < cutoff ? reinterpret<u32>(denormalized) : reinterpret<u32>(normalized)));
}

// ggml_compute_fp32_to_fp16 on four lanes (round to nearest even), with the same integer/float
// steps as fp32ToFp16, for non-NaN inputs only (its NaN case is left out: quantize() rejects every
// row holding a NaN or Inf before a kernel runs, and scales computed from finite values are not NaN).
// The results are in the low 16 bits of each i32 lane.
@inline
export function fp32ToFp16x4(f: v128): v128 {
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
  return v128.or(i32x4.shr_u(sign, 16), i32x4.add(expBits, mantissaBits));
}
