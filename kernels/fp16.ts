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

/** Round an f32 through f16 and back (what storing a scale as ggml_half does to it). */
@inline
export function roundTripFp16(f: f32): f32 {
  return fp16ToFp32(fp32ToFp16(f));
}
