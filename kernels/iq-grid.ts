// The IQ1/IQ2/IQ3 lattice grids as the kernels use them: one byte per coordinate (i8 for IQ1S),
// `coords` bytes per point, expanded once per instance from the level codes of iq-grids.ts —
// as ggml's iq2xs_init_impl / iq3xs_init_impl expand theirs.

/**
 * Writes `size` points of `coords` bytes at dst: coordinate j of point i is
 * levels[(codes[i] >> bits*j) & mask].
 */
export function expandGrid(codes: usize, levels: usize, size: i32, coords: i32, bits: i32, dst: usize): void {
  const mask = (1 << bits) - 1;
  for (let i = 0; i < size; i++) {
    const code = <i32>load<u16>(codes + (<usize>i << 1));
    for (let j = 0; j < coords; j++) {
      store<i8>(dst + <usize>(i * coords + j), load<i8>(levels + <usize>((code >> (bits * j)) & mask)));
    }
  }
}
