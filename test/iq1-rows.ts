// Rows for the IQ1_S / IQ1_M differential test (test/kernels-iq1-diff.test.ts): random rows in
// the shapes real weights take, and edge rows aimed at the IQ1 searches.
import { prng } from "./kernel-test-util.js";

export const QK_K = 256;

export function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** One random row: gaussian at a random scale, with outliers, one sign, sparsity or few distinct values. */
export function randomRow(rand: () => number, ncols: number): Float32Array {
  const row = new Float32Array(ncols);
  const scale = 10 ** (rand() * 6 - 4); // 1e-4 .. 1e2
  const kind = Math.floor(rand() * 7);
  for (let c = 0; c < ncols; c++) {
    let v = gauss(rand) * scale;
    if (kind === 1 && rand() < 0.02) v *= 30; // outliers
    if (kind === 2) v = Math.abs(v); // all positive
    if (kind === 3) v = -Math.abs(v) - scale * 0.1; // all negative
    if (kind === 4 && rand() < 0.7) v = 0; // sparse
    if (kind === 5) v = Math.round((v / scale) * 2) * scale; // few distinct values: ties in the sort and the split search
    if (kind === 6) v = (Math.floor(rand() * 3) - 1 + (rand() < 0.5 ? 0.125 : -0.125)) * scale; // on the shifted lattice
    row[c] = v;
  }
  return row;
}

export function randomImatrix(rand: () => number, ncols: number, zeros: number): Float32Array {
  const w = new Float32Array(ncols);
  for (let c = 0; c < ncols; c++) {
    const u = rand();
    w[c] = rand() < zeros ? 0 : u * u * 4 + 1e-3 * rand();
    if (c % 61 === 7) w[c] *= 40;
  }
  return w;
}

/** Edge rows of 2 super-blocks. */
export function edgeRows(rand: () => number): Float32Array[] {
  const n = QK_K * 2;
  const fill = (f: (c: number) => number) => Float32Array.from({ length: n }, (_, c) => f(c));
  return [
    fill(() => 0),
    fill(() => -0),
    fill(() => 0.5),
    fill(() => -0.25),
    fill(() => 1e-3),
    fill((c) => (c === 77 ? 1000 : gauss(rand) * 0.01)),
    fill((c) => (c === 300 ? -3e4 : gauss(rand) * 1e-3)),
    fill(() => gauss(rand) * 1e-30),
    fill(() => 1e-30),
    fill((c) => (c % 2 ? 1e-30 : -1e-30)),
    fill(() => gauss(rand) * 1e-38), // subnormal and near-subnormal
    fill((c) => (c % 3) * 1.4e-45), // smallest subnormals
    fill(() => gauss(rand) * 1e-12), // around GROUP_MAX_EPS_IQ1_S
    fill((c) => (c % 32 < 16 ? 9e-13 : gauss(rand) * 2e-12)),
    fill(() => gauss(rand) * 1e-7), // around GROUP_MAX_EPS_IQ1_M
    fill((c) => (c % 16 < 8 ? 9e-8 : gauss(rand) * 2e-7)),
    fill(() => 65504),
    fill(() => -65504),
    fill((c) => (c % 2 ? 65504 : -65504)),
    fill((c) => (c % 7 === 0 ? 65504 : gauss(rand))),
    fill((c) => (c % 2 ? 1 : -1) + gauss(rand) * 0.001),
    fill(() => -Math.abs(gauss(rand))),
    fill(() => -Math.abs(gauss(rand)) - 3),
    fill(() => Math.abs(gauss(rand))),
    fill((c) => (c % 3) - 1), // lattice points
    fill((c) => (c % 3) - 1 + 0.125),
    fill((c) => ((c * 7919) % 3) - 1 - 0.125),
    fill((c) => (c % 16) - 8),
    fill((c) => ((c * 7919) % 13) - 6),
    fill((c) => (c % 5 === 0 ? 1 : 0)),
    fill((c) => (c % 2 ? 2 : -1)),
    fill((c) => (c < QK_K ? 0 : gauss(rand))),
    fill((c) => (c % 32 === 0 ? gauss(rand) : 0)),
    fill((c) => (c % 16 === 0 ? -1 : 0)),
    fill(() => gauss(rand) * 1e4),
    fill(() => gauss(rand) * 3e5),
    fill(() => gauss(rand) * 1e8),
    fill((c) => (c === 5 ? 1e-20 : c === 6 ? -1e5 : 0)),
  ];
}

/** Importance vectors for the edge rows (none for IQ1_M's plain mode). */
export function edgeImatrices(rand: () => number, ncols: number): Float32Array[] {
  return [
    randomImatrix(rand, ncols, 0),
    randomImatrix(rand, ncols, 0.5),
    new Float32Array(ncols), // all zero weights
    Float32Array.from({ length: ncols }, (_, c) => (c < 40 ? 0 : 1)),
    Float32Array.from({ length: ncols }, (_, c) => (c % 16 === 3 ? 1e-30 : 1)),
    Float32Array.from({ length: ncols }, () => 1),
  ];
}
