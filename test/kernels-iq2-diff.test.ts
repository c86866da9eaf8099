// Differential test of the IQ2 kernels (iq2_xxs, iq2_xs, iq2_s) against llama.cpp itself: the same
// rows go through hquant's WASM kernels and through libggml-base's ggml_quantize_chunk (koffi
// oracle); the quantized bytes and the dequantized floats (compared as raw f32 bytes) must be
// identical. iq2_xxs and iq2_xs only with an importance vector (ggml aborts without one, hquant
// refuses with a one-line error); iq2_s with and without. Per type: random rows of 1, 2, 3 and 5
// super-blocks in several shapes, edge rows under six importance vectors (zeros among them), and
// the dequantization of random bytes (including NaN/Inf fp16 scales).
// Rows that make ggml assert (a neighbour search where every distance overflows to Inf: values
// beyond ~1e15) are left out: ggml would abort the whole process.
import { describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, quantizeRows } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";
import { firstDiff, prng } from "./kernel-test-util.js";

const QK_K = 256;
const TYPES = [
  { type: GGMLType.IQ2_XXS, plain: false },
  { type: GGMLType.IQ2_XS, plain: false },
  { type: GGMLType.IQ2_S, plain: true },
];

function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** One random row in one of several shapes real weights (and worse) take. */
function randomRow(rand: () => number, ncols: number): Float32Array {
  const row = new Float32Array(ncols);
  const scale = 10 ** (rand() * 8 - 5); // 1e-5 .. 1e3
  const kind = Math.floor(rand() * 7);
  for (let c = 0; c < ncols; c++) {
    let v = gauss(rand) * scale;
    if (kind === 1 && rand() < 0.02) v *= 30; // outliers
    if (kind === 2) v = Math.abs(v); // all positive
    if (kind === 3) v = -Math.abs(v) - scale * 0.1; // all negative
    if (kind === 4 && rand() < 0.7) v = 0; // sparse
    if (kind === 5) v = Math.round((v / scale) * 2) * scale; // few distinct values (ties)
    if (kind === 6) v = (rand() < 0.5 ? -1 : 1) * scale * (1 + Math.floor(rand() * 3)); // equal magnitudes
    row[c] = v;
  }
  return row;
}

function randomImatrix(rand: () => number, ncols: number, zeros: number): Float32Array {
  const w = new Float32Array(ncols);
  for (let c = 0; c < ncols; c++) {
    const u = rand();
    w[c] = rand() < zeros ? 0 : u * u * 4 + 1e-3 * rand();
    if (c % 61 === 7) w[c] *= 40;
  }
  return w;
}

function edgeRows(rand: () => number): Float32Array[] {
  const n = QK_K * 2;
  const fill = (f: (c: number) => number) => Float32Array.from({ length: n }, (_, c) => f(c));
  return [
    fill(() => 0),
    fill(() => -0),
    fill(() => 0.5),
    fill(() => -0.25),
    fill(() => 1e-3),
    fill((c) => (c % 8 < 3 ? -0.5 : 0.5)), // three negatives a group: the parity fix-up on equal values
    fill((c) => (c % 8 === 5 ? -1 : 1)),
    fill((c) => (c % 2 ? 1 : -1)),
    fill((c) => (c === 77 ? 1000 : gauss(rand) * 0.01)),
    fill((c) => (c === 300 ? -3e4 : gauss(rand) * 1e-3)),
    fill(() => gauss(rand) * 1e-30),
    fill(() => 1e-30),
    fill(() => gauss(rand) * 1e-14), // around the IQ2_XXS/XS all-zero threshold
    fill(() => gauss(rand) * 1e-8), // around the IQ2_S one
    fill(() => gauss(rand) * 1e-38), // subnormal and near-subnormal
    fill((c) => (c % 3) * 1.4e-45), // smallest subnormals
    fill(() => 65504),
    fill(() => -65504),
    fill((c) => (c % 2 ? 65504 : -65504)),
    fill((c) => (c % 7 === 0 ? 65504 : gauss(rand))),
    fill((c) => (c % 2 ? 1 : -1) + gauss(rand) * 0.001),
    fill(() => -Math.abs(gauss(rand))),
    fill(() => Math.abs(gauss(rand))),
    fill((c) => (c % 16) - 8),
    fill((c) => ((c * 7919) % 13) - 6),
    fill((c) => (c % 3) + 1), // magnitudes exactly on the 1:3:5 lattice ratios
    fill((c) => (c < QK_K ? 0 : gauss(rand))),
    fill((c) => (c % 32 === 0 ? gauss(rand) : 0)),
    fill((c) => (c % 16 === 0 ? gauss(rand) : 0)),
    fill(() => gauss(rand) * 1e4),
    fill(() => gauss(rand) * 1e12),
    fill((c) => (c === 5 ? 1e-20 : c === 6 ? -1e12 : 0)),
  ];
}

/** Quantize with both, compare bytes then dequantized floats; returns a message or "" when equal. */
function compare(type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): string {
  const expected = oracleQuantize(type, src, nrows, ncols, imatrix);
  const got = quantizeRows(type, src, nrows, ncols, imatrix);
  const at = firstDiff(got, expected);
  if (at >= 0) {
    const rs = rowSize(type, ncols);
    return `${typeName(type)} ${imatrix ? "imatrix" : "plain"}: bytes differ at ${at} (row ${Math.floor(at / rs)}, byte ${at % rs} of the row)`;
  }
  const deqGot = new Uint8Array(dequantizeRows(type, got, nrows, ncols).buffer);
  const deqExp = new Uint8Array(oracleDequantize(type, expected, nrows, ncols).buffer);
  const dat = firstDiff(deqGot, deqExp);
  if (dat >= 0) return `${typeName(type)} ${imatrix ? "imatrix" : "plain"}: dequantized floats differ at element ${dat >> 2}`;
  return "";
}

function randomRows(rand: () => number, nrows: number, ncols: number): Float32Array {
  const src = new Float32Array(nrows * ncols);
  for (let r = 0; r < nrows; r++) src.set(randomRow(rand, ncols), r * ncols);
  return src;
}

describe.each(TYPES.map((t) => [typeName(t.type), t] as const))("%s vs llama.cpp", (_name, { type, plain }) => {
  it.runIf(plain)("random rows, no importance vector", () => {
    const rand = prng(0x5eed0000 + type);
    for (const [ncols, nrows] of [[256, 512], [512, 256], [768, 128], [1280, 64]] as const) {
      expect(compare(type, randomRows(rand, nrows, ncols), nrows, ncols, null)).toBe("");
    }
  });

  it("random rows with importance vectors (some with zero weights)", () => {
    const rand = prng(0x1a7e0000 + type);
    for (const [ncols, nrows, zeros] of [[256, 512, 0], [512, 256, 0.1], [768, 128, 0.5], [1280, 64, 0.9], [256, 256, 0]] as const) {
      expect(compare(type, randomRows(rand, nrows, ncols), nrows, ncols, randomImatrix(rand, ncols, zeros))).toBe("");
    }
  });

  it("edge rows: zeros, constants, ties, outliers, tiny, subnormal, huge, all negative", () => {
    const rand = prng(0xed9e0000 + type);
    const rows = edgeRows(rand);
    const ncols = rows[0].length;
    const src = new Float32Array(rows.length * ncols);
    rows.forEach((r, i) => src.set(r, i * ncols));
    const imatrices: (Float32Array | null)[] = [
      ...(plain ? [null] : []),
      Float32Array.from({ length: ncols }, () => 1),
      randomImatrix(rand, ncols, 0),
      randomImatrix(rand, ncols, 0.5),
      new Float32Array(ncols), // all zero weights
      Float32Array.from({ length: ncols }, (_, c) => (c < 40 ? 0 : 1)),
      Float32Array.from({ length: ncols }, (_, c) => (c % 16 === 3 ? 1e-30 : 1)),
    ];
    for (const im of imatrices) {
      // one call with all edge rows, and each row alone (a row's bytes must not depend on its batch)
      expect(compare(type, src, rows.length, ncols, im)).toBe("");
      for (const r of rows) expect(compare(type, r, 1, ncols, im)).toBe("");
    }
  });

  it.runIf(!plain)("is refused without an importance vector, with a one-line error naming the type", () => {
    const row = new Float32Array(QK_K).fill(1);
    expect(() => quantizeRows(type, row, 1, QK_K, null)).toThrow(
      new Error(`${typeName(type)} needs an importance matrix: llama.cpp does not quantize it without one`),
    );
  });

  it("dequantizes arbitrary blocks exactly like llama.cpp", () => {
    const rand = prng(0xdec0de00 + type);
    const nrows = 64;
    const ncols = 768;
    const bytes = new Uint8Array(rowSize(type, ncols) * nrows);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    const got = new Uint8Array(dequantizeRows(type, bytes, nrows, ncols).buffer);
    const exp = new Uint8Array(oracleDequantize(type, bytes, nrows, ncols).buffer);
    expect(firstDiff(got, exp)).toBe(-1);
  });
});
