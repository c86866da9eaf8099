// Helpers shared by the ternary (TQ1_0, TQ2_0) and Q2_0 kernels.

/** Largest |x| of n floats at x (n a multiple of 8); order-free for the finite rows kernels see. */
@inline
export function absMax(x: usize, n: usize): f32 {
  let m0 = f32x4.splat(0), m1 = f32x4.splat(0);
  for (let j: usize = 0; j < n; j += 8) {
    m0 = f32x4.pmax(m0, f32x4.abs(v128.load(x + (j << 2))));
    m1 = f32x4.pmax(m1, f32x4.abs(v128.load(x + (j << 2), 16)));
  }
  const m = f32x4.pmax(m0, m1);
  const h = f32x4.pmax(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  return f32x4.extract_lane(f32x4.pmax(h, v128.shuffle<f32>(h, h, 1, 0, 3, 2)), 0);
}

/**
 * lroundf(x*id) + 1 (= (int)roundf(x*id) + 1) of four floats at x, where id = 1/max|x| is finite:
 * then |x*id| < 1.5, so the rounding half away from zero is -1, 0 or 1 by two comparisons.
 */
@inline
export function roundedTrits4(x: usize, idv: v128): v128 {
  const v = f32x4.mul(v128.load(x), idv);
  // the comparisons are all ones (-1) where true
  return i32x4.add(i32x4.sub(i32x4.splat(1), f32x4.ge(v, f32x4.splat(0.5))), f32x4.le(v, f32x4.splat(-0.5)));
}
