// The per-position vocabulary arithmetic of llama-perplexity (tools/perplexity/perplexity.cpp),
// on raw logits, four tokens at a time:
//   packLogitsRow — log_softmax() of the --kl-divergence-base pass: the uint16 packed row and the NLL;
//   kldRow        — log_softmax() of the --kl-divergence pass: NLL, KL(base‖this) and same-top-token.
// Every float/double choice is the C code's: float differences and products, the exp sum and the
// KLD sum accumulated in double in token order, no fused multiply-adds (WebAssembly has none).
//
// expf is musl's / glibc's table-driven expf (what llama-perplexity calls), its double-precision
// steps done two lanes at a time: each lane does exactly the scalar operations, so every lane gives
// the scalar result (AssemblyScript's Mathf.exp is the same algorithm; used for the tail).

// 2^(i/32) as doubles, minus i << 47 (the standard exp2f_data table of that expf)
const EXP2_TAB = memory.data<u64>([
  0x3FF0000000000000, 0x3FEFD9B0D3158574, 0x3FEFB5586CF9890F, 0x3FEF9301D0125B51,
  0x3FEF72B83C7D517B, 0x3FEF54873168B9AA, 0x3FEF387A6E756238, 0x3FEF1E9DF51FDEE1,
  0x3FEF06FE0A31B715, 0x3FEEF1A7373AA9CB, 0x3FEEDEA64C123422, 0x3FEECE086061892D,
  0x3FEEBFDAD5362A27, 0x3FEEB42B569D4F82, 0x3FEEAB07DD485429, 0x3FEEA47EB03A5585,
  0x3FEEA09E667F3BCD, 0x3FEE9F75E8EC5F74, 0x3FEEA11473EB0187, 0x3FEEA589994CCE13,
  0x3FEEACE5422AA0DB, 0x3FEEB737B0CDC5E5, 0x3FEEC49182A3F090, 0x3FEED503B23E255D,
  0x3FEEE89F995AD3AD, 0x3FEEFF76F2FB5E47, 0x3FEF199BDD85529C, 0x3FEF3720DCEF9069,
  0x3FEF5818DCFBA487, 0x3FEF7C97337B9B5F, 0x3FEFA4AFA2A490DA, 0x3FEFD0765B6E4540,
]);

// @ts-ignore: decorator
@inline const SHIFT: f64 = reinterpret<f64>(0x4338000000000000); // 0x1.8p52: rounds to an integer in the low bits
// @ts-ignore: decorator
@inline const INV_LN2_N: f64 = reinterpret<f64>(0x3FF71547652B82FE) * 32;
// @ts-ignore: decorator
@inline const C0: f64 = reinterpret<f64>(0x3FAC6AF84B912394) / 32 / 32 / 32;
// @ts-ignore: decorator
@inline const C1: f64 = reinterpret<f64>(0x3FCEBFCE50FAC4F3) / 32 / 32;
// @ts-ignore: decorator
@inline const C2: f64 = reinterpret<f64>(0x3FE62E42FF0C52D6) / 32;
/** Below log(2^-150) expf is 0; clamping there keeps the lanes' integer part in range and still rounds to 0. */
// @ts-ignore: decorator
@inline const EXP_LOW: f32 = -104.0;

/** expf of two lanes given as exact doubles, ≤ 88 and ≥ EXP_LOW; the double result before rounding to float. */
// @ts-ignore: decorator
@inline function exp2Lanes(xd: v128): v128 {
  const z = f64x2.mul(f64x2.splat(INV_LN2_N), xd);
  const kd = f64x2.add(z, f64x2.splat(SHIFT));
  const r = f64x2.sub(z, f64x2.sub(kd, f64x2.splat(SHIFT)));
  const k0 = i64x2.extract_lane(kd, 0);
  const k1 = i64x2.extract_lane(kd, 1);
  let t = i64x2.splat(load<u64>(EXP2_TAB + ((<usize>k0 & 31) << 3)));
  t = i64x2.replace_lane(t, 1, load<u64>(EXP2_TAB + ((<usize>k1 & 31) << 3)));
  t = i64x2.add(t, i64x2.shl(kd, 47));
  const p = f64x2.add(f64x2.mul(f64x2.splat(C0), r), f64x2.splat(C1));
  let y = f64x2.add(f64x2.mul(f64x2.splat(C2), r), f64x2.splat(1.0));
  y = f64x2.add(y, f64x2.mul(p, f64x2.mul(r, r)));
  return f64x2.mul(y, t);
}

/** expf of four float lanes (arguments ≤ 88; NaN not handled). */
// @ts-ignore: decorator
@inline function expf4(x: v128): v128 {
  const xc = f32x4.max(x, f32x4.splat(EXP_LOW));
  const lo = exp2Lanes(f64x2.promote_low_f32x4(xc));
  const hi = exp2Lanes(f64x2.promote_low_f32x4(v128.shuffle<f32>(xc, xc, 2, 3, 0, 1)));
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** Test hook: expf of n floats at src into dst, with the four-lane code or (scalar ≠ 0) Mathf.exp. */
export function expfRow(src: usize, dst: usize, n: i32, scalar: i32): void {
  let i = 0;
  if (!scalar) for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), expf4(v128.load(src + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), Mathf.exp(load<f32>(src + (<usize>i << 2))));
}

// @ts-ignore: decorator
@inline function fmax(a: f32, b: f32): f32 { return a > b ? a : b; }
// @ts-ignore: decorator
@inline function fmin(a: f32, b: f32): f32 { return a < b ? a : b; }

/** Σ expf(l_i − max) in double, in token order (as llama-perplexity's sum_exp). */
function sumExp(logits: usize, n: i32, max: f32): f64 {
  const m = f32x4.splat(max);
  let sum: f64 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expf4(f32x4.sub(v128.load(logits + (<usize>i << 2)), m));
    sum += <f64>f32x4.extract_lane(e, 0);
    sum += <f64>f32x4.extract_lane(e, 1);
    sum += <f64>f32x4.extract_lane(e, 2);
    sum += <f64>f32x4.extract_lane(e, 3);
  }
  for (; i < n; i++) sum += <f64>Mathf.exp(load<f32>(logits + (<usize>i << 2)) - max);
  return sum;
}

/** Largest logit; `minOut` gets the smallest. */
function maxMin(logits: usize, n: i32, minOut: usize): f32 {
  let vmax = f32x4.splat(load<f32>(logits));
  let vmin = vmax;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(logits + (<usize>i << 2));
    vmax = f32x4.max(vmax, v);
    vmin = f32x4.min(vmin, v);
  }
  let max = fmax(fmax(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), fmax(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  let min = fmin(fmin(f32x4.extract_lane(vmin, 0), f32x4.extract_lane(vmin, 1)), fmin(f32x4.extract_lane(vmin, 2), f32x4.extract_lane(vmin, 3)));
  for (; i < n; i++) {
    const v = load<f32>(logits + (<usize>i << 2));
    max = fmax(max, v);
    min = fmin(min, v);
  }
  store<f32>(minOut, min);
  return max;
}

/** First index holding `value` (the first maximum, as a scan with a strict `>` finds it); n when absent. */
function firstIndexOf(values: usize, n: i32, value: f32): i32 {
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    if (v128.any_true(f32x4.eq(v128.load(values + (<usize>i << 2)), v))) break;
  }
  for (; i < n; i++) if (load<f32>(values + (<usize>i << 2)) == value) return i;
  return n;
}

/**
 * One position of the --kl-divergence-base pass: writes the packed row at `out` (float scale,
 * float min log-prob, one uint16 per token, zero padding to 2·⌈n/2⌉) and returns the NLL of `tok`.
 */
export function packLogitsRow(logits: usize, n: i32, out: usize, tok: i32): f64 {
  const max = maxMin(logits, n, out);
  let min = load<f32>(out);
  min = fmax(min, max - 16);
  const sum = sumExp(logits, n, max);
  const logSumExp = <f32>Math.log(sum);
  const minLogProb: f32 = min - max - logSumExp;
  const scale: f32 = (max - min) / 65535.0;
  store<f32>(out, scale);
  store<f32>(out, minLogProb, 4);
  const row = out + 8;
  const padded = 2 * ((n + 1) / 2);
  if (scale != 0) {
    const invScale: f32 = 1 / scale;
    const vmin = f32x4.splat(min);
    const vinv = f32x4.splat(invScale);
    const low16 = i32x4.splat(0xFFFF);
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const a = v128.load(logits + (<usize>i << 2));
      const b = v128.load(logits + (<usize>i << 2), 16);
      // nearest_int(inv_scale·(l − min)) for l > min, else 0; the uint16 store keeps the low 16 bits
      const qa = v128.and(v128.and(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(vinv, f32x4.sub(a, vmin)))), f32x4.gt(a, vmin)), low16);
      const qb = v128.and(v128.and(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(vinv, f32x4.sub(b, vmin)))), f32x4.gt(b, vmin)), low16);
      v128.store(row + (<usize>i << 1), i16x8.narrow_i32x4_u(qa, qb));
    }
    for (; i < n; i++) {
      const l = load<f32>(logits + (<usize>i << 2));
      store<u16>(row + (<usize>i << 1), l > min ? <u16>(<i32>nearest<f32>(invScale * (l - min))) : 0);
    }
    for (; i < padded; i++) store<u16>(row + (<usize>i << 1), 0);
  } else {
    memory.fill(row, 0, <usize>padded << 1);
  }
  const nll: f32 = max + logSumExp - load<f32>(logits + (<usize>tok << 2));
  return <f64>nll;
}

/**
 * One position of the --kl-divergence pass against the packed base row at `base`: writes to `res`
 * (three doubles) the NLL of `tok` (a float, as llama.cpp keeps it), Σ p_base·(log p_base − log p)
 * over tokens whose base log-prob is above −16, and 1 when both top tokens agree (else 0).
 */
export function kldRow(logits: usize, n: i32, base: usize, tok: i32, res: usize): void {
  const max = maxMin(logits, n, res);
  const imax = firstIndexOf(logits, n, max);
  const logSumExp = <f32>Math.log(sumExp(logits, n, max));
  const nll: f32 = max + logSumExp - load<f32>(logits + (<usize>tok << 2));
  const maxPlusLse: f32 = max + logSumExp;
  const scale = load<f32>(base);
  const minLogProb = load<f32>(base, 4);
  const row = base + 8;
  const vscale = f32x4.splat(scale);
  const vminlp = f32x4.splat(minLogProb);
  const vtop = f32x4.splat(maxPlusLse);
  const cutoff = f32x4.splat(-16);
  let vbest = f32x4.splat(-Infinity);
  let sum: f64 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(v128.load64_zero(row + (<usize>i << 1))));
    const pLogBase = f32x4.add(f32x4.mul(vscale, q), vminlp);
    vbest = f32x4.max(vbest, pLogBase);
    const keep = f32x4.gt(pLogBase, cutoff);
    // tokens at or below −16 add nothing (llama.cpp skips their expf too); adding +0 leaves the sum as it is
    if (!v128.any_true(keep)) continue;
    const l = v128.load(logits + (<usize>i << 2));
    const term = f32x4.mul(expf4(pLogBase), f32x4.add(f32x4.sub(pLogBase, l), vtop));
    const kept = v128.and(term, keep);
    sum += <f64>f32x4.extract_lane(kept, 0);
    sum += <f64>f32x4.extract_lane(kept, 1);
    sum += <f64>f32x4.extract_lane(kept, 2);
    sum += <f64>f32x4.extract_lane(kept, 3);
  }
  let best = fmax(fmax(f32x4.extract_lane(vbest, 0), f32x4.extract_lane(vbest, 1)), fmax(f32x4.extract_lane(vbest, 2), f32x4.extract_lane(vbest, 3)));
  for (; i < n; i++) {
    const pLogBase: f32 = scale * <f32>load<u16>(row + (<usize>i << 1)) + minLogProb;
    best = fmax(best, pLogBase);
    if (pLogBase > -16) sum += <f64>(Mathf.exp(pLogBase) * (pLogBase - load<f32>(logits + (<usize>i << 2)) + maxPlusLse));
  }
  // the base's top token: the first position of the largest unpacked log-prob
  const vbestAll = f32x4.splat(best);
  let imaxBase = 0;
  for (; imaxBase + 4 <= n; imaxBase += 4) {
    const q = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(v128.load64_zero(row + (<usize>imaxBase << 1))));
    if (v128.any_true(f32x4.eq(f32x4.add(f32x4.mul(vscale, q), vminlp), vbestAll))) break;
  }
  for (; imaxBase < n; imaxBase++) {
    if (scale * <f32>load<u16>(row + (<usize>imaxBase << 1)) + minLogProb == best) break;
  }
  store<f64>(res, <f64>nll);
  store<f64>(res, sum, 8);
  store<f64>(res, imax == imaxBase ? 1.0 : 0.0, 16);
}

/**
 * llama-imatrix's log_softmax for one position: log-probability of `tok`, (l_tok − max) in float
 * minus log(Σ expf(l_i − max)) in double.
 */
const MIN_SCRATCH = memory.data(4, 4);
export function logProbAt(logits: usize, n: i32, tok: i32): f64 {
  const max = maxMin(logits, n, MIN_SCRATCH);
  return <f64>(load<f32>(logits + (<usize>tok << 2)) - max) - Math.log(sumExp(logits, n, max));
}
