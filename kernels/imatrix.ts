// llama-imatrix's accumulation (IMatrixCollector::collect_imatrix): for each (activation row,
// accumulator row) pair in order, acc[j] += x[j]·x[j] — an f32 product and an f32 sum per element,
// four columns at a time (columns are independent, so every lane does the scalar operations).

/**
 * pairs: npairs × (i32 x offset, i32 acc offset), in floats from x and acc; ncols values per row.
 * Returns 1 when an accumulator row touched holds NaN or ±Inf afterwards, else 0.
 */
export function accumulateSquares(acc: usize, x: usize, pairs: usize, npairs: i32, ncols: i32): i32 {
  for (let p = 0; p < npairs; p++) {
    const xr = x + (<usize>load<i32>(pairs + (<usize>p << 3)) << 2);
    const ar = acc + (<usize>load<i32>(pairs + (<usize>p << 3) + 4) << 2);
    let j = 0;
    for (; j + 4 <= ncols; j += 4) {
      const v = v128.load(xr + (<usize>j << 2));
      v128.store(ar + (<usize>j << 2), f32x4.add(v128.load(ar + (<usize>j << 2)), f32x4.mul(v, v)));
    }
    for (; j < ncols; j++) {
      const v = load<f32>(xr + (<usize>j << 2));
      store<f32>(ar + (<usize>j << 2), load<f32>(ar + (<usize>j << 2)) + v * v);
    }
  }
  // NaN or Inf <=> exponent all ones; checked over each touched row once
  const expMask = i32x4.splat(0x7F800000);
  for (let p = 0; p < npairs; p++) {
    const ar = acc + (<usize>load<i32>(pairs + (<usize>p << 3) + 4) << 2);
    let bad = i32x4.splat(0);
    let j = 0;
    for (; j + 4 <= ncols; j += 4) bad = v128.or(bad, i32x4.eq(v128.and(v128.load(ar + (<usize>j << 2)), expMask), expMask));
    if (v128.any_true(bad)) return 1;
    for (; j < ncols; j++) if ((load<u32>(ar + (<usize>j << 2)) & 0x7F800000) == 0x7F800000) return 1;
  }
  return 0;
}
