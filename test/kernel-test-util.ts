// Helpers shared by the kernel tests against llama.cpp (kernels-*-diff, kernels-batch-shapes): the
// seeded row, importance-vector and edge-row generators, and the byte comparisons.
import { expect } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, quantizeRows } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";

export const QK_K = 256;

/** mulberry32: small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal value (Box-Muller; two draws). */
export function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Reshapes one value v = gauss × scale of a random row (column c); may draw from rand. */
export type RowShape = (v: number, scale: number, c: number, rand: () => number) => number;

export const plainGaussian: RowShape = (v) => v;
export const outliers: RowShape = (v, _scale, _c, rand) => (rand() < 0.02 ? v * 30 : v);
export const allPositive: RowShape = (v) => Math.abs(v);
export const allNegative: RowShape = (v, scale) => -Math.abs(v) - scale * 0.1;
export const sparse: RowShape = (v, _scale, _c, rand) => (rand() < 0.7 ? 0 : v);
/** Few distinct values: ties in the quantizers' sorts and searches. */
export const fewValues: RowShape = (v, scale) => Math.round((v / scale) * 2) * scale;

/** The shapes real weights (and worse) take; tests append their type-specific ones. */
export const BASE_SHAPES: readonly RowShape[] = [plainGaussian, outliers, allPositive, allNegative, sparse, fewValues];

export interface RowKinds {
  /** The row's scale is 10^e, e uniform in [minExp, maxExp). */
  minExp: number;
  maxExp: number;
  /** One is picked per row, uniformly. */
  shapes: readonly RowShape[];
}

/** One random row: gaussian at a random scale, in one of kinds.shapes. */
export function randomRow(rand: () => number, ncols: number, kinds: RowKinds): Float32Array {
  const row = new Float32Array(ncols);
  const scale = 10 ** (rand() * (kinds.maxExp - kinds.minExp) + kinds.minExp);
  const shape = kinds.shapes[Math.floor(rand() * kinds.shapes.length)]!;
  for (let c = 0; c < ncols; c++) row[c] = shape(gauss(rand) * scale, scale, c, rand);
  return row;
}

/** nrows random rows one after another. */
export function randomRows(rand: () => number, nrows: number, ncols: number, kinds: RowKinds): Float32Array {
  const src = new Float32Array(nrows * ncols);
  for (let r = 0; r < nrows; r++) src.set(randomRow(rand, ncols, kinds), r * ncols);
  return src;
}

/** An importance vector: a fraction `zeros` of zero weights, the rest spread over 1e-3..4, every 61st column ×40. */
export function randomImatrix(rand: () => number, ncols: number, zeros: number): Float32Array {
  const w = new Float32Array(ncols);
  for (let c = 0; c < ncols; c++) {
    const u = rand();
    w[c] = rand() < zeros ? 0 : u * u * 4 + 1e-3 * rand();
    if (c % 61 === 7) w[c] *= 40;
  }
  return w;
}

/** The importance vectors every K-quant and IQ test runs its edge rows under (zero weights among them). */
export function edgeImatrices(rand: () => number, ncols: number): Float32Array[] {
  return [
    randomImatrix(rand, ncols, 0),
    randomImatrix(rand, ncols, 0.5),
    new Float32Array(ncols), // all zero weights
    Float32Array.from({ length: ncols }, (_, c) => (c < 40 ? 0 : 1)),
    Float32Array.from({ length: ncols }, (_, c) => (c % 16 === 3 ? 1e-30 : 1)),
  ];
}

/** An edge row's value at column c (drawing from rand in column order, if at all). */
export type EdgeValue = (c: number) => number;

const BASE_EDGE_ROWS = [
  "zeros", "negativeZeros", "half", "minusQuarter", "milli", "outlier", "negativeOutlier", "tinyGauss", "tiny",
  "subnormalGauss", "smallestSubnormals", "f16Max", "f16Min", "f16Alternating", "f16Mixed", "alternatingNoisy",
  "allNegative", "allPositive", "integers16", "integers13", "firstBlockZero", "sparse32", "large",
] as const;
export type BaseEdgeRow = (typeof BASE_EDGE_ROWS)[number];

/**
 * The edge rows the K-quant and IQ tests share (zeros, constants, outliers, tiny, subnormal, ±65504,
 * one sign, integers, sparse, large), with each test's own rows inserted after the named base row,
 * all `ncols` wide. Rows are filled in list order, so rand is drawn in that order.
 */
export function edgeRows(rand: () => number, ncols: number, after: Partial<Record<BaseEdgeRow, EdgeValue[]>> = {}): Float32Array[] {
  const base: Record<BaseEdgeRow, EdgeValue> = {
    zeros: () => 0,
    negativeZeros: () => -0,
    half: () => 0.5,
    minusQuarter: () => -0.25,
    milli: () => 1e-3,
    outlier: (c) => (c === 77 ? 1000 : gauss(rand) * 0.01),
    negativeOutlier: (c) => (c === 300 ? -3e4 : gauss(rand) * 1e-3),
    tinyGauss: () => gauss(rand) * 1e-30,
    tiny: () => 1e-30,
    subnormalGauss: () => gauss(rand) * 1e-38, // subnormal and near-subnormal
    smallestSubnormals: (c) => (c % 3) * 1.4e-45,
    f16Max: () => 65504,
    f16Min: () => -65504,
    f16Alternating: (c) => (c % 2 ? 65504 : -65504),
    f16Mixed: (c) => (c % 7 === 0 ? 65504 : gauss(rand)),
    alternatingNoisy: (c) => (c % 2 ? 1 : -1) + gauss(rand) * 0.001,
    allNegative: () => -Math.abs(gauss(rand)),
    allPositive: () => Math.abs(gauss(rand)),
    integers16: (c) => (c % 16) - 8,
    integers13: (c) => ((c * 7919) % 13) - 6,
    firstBlockZero: (c) => (c < QK_K ? 0 : gauss(rand)),
    sparse32: (c) => (c % 32 === 0 ? gauss(rand) : 0),
    large: () => gauss(rand) * 1e4,
  };
  return BASE_EDGE_ROWS.flatMap((name) => [base[name], ...(after[name] ?? [])]).map((f) =>
    Float32Array.from({ length: ncols }, (_, c) => f(c)),
  );
}

/** Rows in one Float32Array, one after another. */
export function concatRows(rows: readonly Float32Array[], ncols: number): Float32Array {
  const src = new Float32Array(rows.length * ncols);
  rows.forEach((r, i) => src.set(r, i * ncols));
  return src;
}

/** Index of the first byte where a and b differ (the shorter length if one is a prefix), -1 if equal. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Fails naming the first byte (and, given ncols, its row and place in the row) where got differs from llama.cpp's want. */
export function expectSameBytes(type: GGMLType, what: string, got: Uint8Array, want: Uint8Array, ncols?: number): void {
  const i = firstDiff(got, want);
  if (i < 0) return;
  const rs = ncols === undefined ? 0 : rowSize(type, ncols);
  const where = rs ? ` (row ${Math.floor(i / rs)}, byte ${i % rs} of the row)` : "";
  expect.fail(`${typeName(type)} ${what}: first differing byte ${i}${where}: ${got[i]} vs llama.cpp ${want[i]}`);
}

/**
 * Quantizes with hquant and with llama.cpp, compares the bytes, then the dequantized floats as raw
 * f32 bytes (so -0 and NaN count); returns a message naming the first difference, or "" when equal.
 */
export function compareWithLlama(type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): string {
  const what = `${typeName(type)} ${imatrix ? "imatrix" : "plain"} ${nrows}×${ncols}`;
  const expected = oracleQuantize(type, src, nrows, ncols, imatrix);
  const got = quantizeRows(type, src, nrows, ncols, imatrix);
  const at = firstDiff(got, expected);
  if (at >= 0) {
    const rs = rowSize(type, ncols);
    return `${what}: bytes differ at ${at} (row ${Math.floor(at / rs)}, byte ${at % rs} of the row): ${got[at]} vs ${expected[at]}`;
  }
  const deqGot = new Uint8Array(dequantizeRows(type, got, nrows, ncols).buffer);
  const deqExp = new Uint8Array(oracleDequantize(type, expected, nrows, ncols).buffer);
  const dat = firstDiff(deqGot, deqExp);
  if (dat >= 0) return `${what}: dequantized floats differ at element ${dat >> 2}`;
  return "";
}

/** nrows × ncols worth of random quantized bytes (so NaN/Inf fp16 scales too). */
export function randomBlocks(rand: () => number, type: GGMLType, nrows: number, ncols: number): Uint8Array {
  const bytes = new Uint8Array(rowSize(type, ncols) * nrows);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  return bytes;
}

/** Dequantizes the bytes with both; the floats must be bit-identical. */
export function expectDequantizesLikeLlama(type: GGMLType, bytes: Uint8Array, nrows: number, ncols: number): void {
  const got = new Uint8Array(dequantizeRows(type, bytes, nrows, ncols).buffer);
  const exp = new Uint8Array(oracleDequantize(type, bytes, nrows, ncols).buffer);
  expect(firstDiff(got, exp)).toBe(-1);
}
