// Rows for the IQ1_S / IQ1_M differential test (test/kernels-iq1-diff.test.ts): random rows in
// the shapes real weights take, and edge rows aimed at the IQ1 searches.
import { BASE_SHAPES, edgeRows, gauss, QK_K, type RowKinds, type RowShape } from "./kernel-test-util.js";

/** On the shifted lattice IQ1 quantizes to (-1, 0, 1 ± 0.125). */
const shiftedLattice: RowShape = (_v, scale, _c, rand) => (Math.floor(rand() * 3) - 1 + (rand() < 0.5 ? 0.125 : -0.125)) * scale;

export const IQ1_ROWS: RowKinds = { minExp: -4, maxExp: 2, shapes: [...BASE_SHAPES, shiftedLattice] }; // 1e-4 .. 1e2

/** The shared edge rows and IQ1's own (its all-zero thresholds, lattice points), 2 super-blocks. */
export function iq1EdgeRows(rand: () => number): Float32Array[] {
  return edgeRows(rand, QK_K * 2, {
    tiny: [(c) => (c % 2 ? 1e-30 : -1e-30)],
    smallestSubnormals: [
      () => gauss(rand) * 1e-12, // around GROUP_MAX_EPS_IQ1_S
      (c) => (c % 32 < 16 ? 9e-13 : gauss(rand) * 2e-12),
      () => gauss(rand) * 1e-7, // around GROUP_MAX_EPS_IQ1_M
      (c) => (c % 16 < 8 ? 9e-8 : gauss(rand) * 2e-7),
    ],
    allNegative: [() => -Math.abs(gauss(rand)) - 3],
    allPositive: [
      (c) => (c % 3) - 1, // lattice points
      (c) => (c % 3) - 1 + 0.125,
      (c) => ((c * 7919) % 3) - 1 - 0.125,
    ],
    integers13: [(c) => (c % 5 === 0 ? 1 : 0), (c) => (c % 2 ? 2 : -1)],
    sparse32: [(c) => (c % 16 === 0 ? -1 : 0)],
    large: [() => gauss(rand) * 3e5, () => gauss(rand) * 1e8, (c) => (c === 5 ? 1e-20 : c === 6 ? -1e5 : 0)],
  });
}
