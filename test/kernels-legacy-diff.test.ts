// Differential test of the non-K kernels against llama.cpp itself (libggml-base.so through koffi):
// random and edge rows, with and without an importance vector; every quantized byte and every
// dequantized float (compared as bits) must be identical to ggml_quantize_chunk / dequantize_row_*.
import { describe, expect, it } from "vitest";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, NonFiniteRowError, quantizeRows } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";
import { expectSameBytes, prng } from "./kernel-test-util.js";

const TYPES: GGMLType[] = [
  GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1,
  GGMLType.Q8_0, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
];

function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Rows drawn like real weights: gaussian at a per-row scale spanning 1e-4..10, some heavy-tailed. */
function randomRows(rand: () => number, nrows: number, ncols: number): Float32Array {
  const out = new Float32Array(nrows * ncols);
  for (let r = 0; r < nrows; r++) {
    const scale = 10 ** (-4 + 5 * rand());
    const heavy = rand() < 0.3;
    for (let c = 0; c < ncols; c++) {
      let v = gaussian(rand) * scale;
      if (heavy && rand() < 0.01) v *= 30;
      out[r * ncols + c] = v;
    }
  }
  return out;
}

function randomImatrix(rand: () => number, ncols: number, zeros: number): Float32Array {
  const w = new Float32Array(ncols);
  for (let c = 0; c < ncols; c++) w[c] = rand() < zeros ? 0 : rand() ** 2 * 10 + (c % 61 === 7 ? 500 : 0);
  return w;
}

const F16_MAX = 65504;
const SUBNORMAL = 1e-40; // below FLT_MIN (1.18e-38)

/** Edge rows, each `ncols` long; names are for the failure message. */
function edgeRows(ncols: number, rand: () => number): [string, Float32Array][] {
  const row = (f: (c: number) => number): Float32Array => Float32Array.from({ length: ncols }, (_, c) => f(c));
  return [
    ["all zeros", row(() => 0)],
    ["negative zeros", row((c) => (c % 3 === 0 ? -0 : 0))],
    ["zeros then positives", row((c) => (c % 32 < 5 ? (c % 2 ? -0 : 0) : 1 + (c % 7)))],
    ["constant 0.5", row(() => 0.5)],
    ["constant -0.25", row(() => -0.25)],
    ["constant 3", row(() => 3)],
    ["one huge outlier", row((c) => (c === 77 % ncols ? 1e6 : gaussian(rand) * 0.01))],
    ["one huge negative outlier", row((c) => (c === 5 ? -3e4 : gaussian(rand) * 0.02))],
    ["tiny 1e-30", row(() => gaussian(rand) * 1e-30)],
    ["tiny 1e-15 (at GROUP_MAX_EPS)", row(() => gaussian(rand) * 1e-15)],
    ["tiny 1e-12", row(() => gaussian(rand) * 1e-12)],
    ["subnormals", row(() => gaussian(rand) * SUBNORMAL)],
    ["smallest subnormals", row((c) => (c % 2 ? 1.4e-45 : -2.8e-45))],
    ["±65504", row((c) => (c % 2 ? F16_MAX : -F16_MAX))],
    ["65504 mixed", row((c) => (c % 5 === 0 ? F16_MAX : gaussian(rand)))],
    ["beyond f16 range", row((c) => (c % 4 === 0 ? 70000 : c % 4 === 1 ? -1e10 : c % 4 === 2 ? 3e38 : 65520))],
    ["f16 rounding ties", row((c) => 1 + (c % 16) * 2 ** -11)],
    ["bf16 rounding ties", row((c) => 1 + (c % 16) * 2 ** -8 + 2 ** -9)],
    ["huge ±3e38", row((c) => (c % 2 ? 3e38 : -3e38))],
    ["mixed signs", row((c) => (c % 2 ? 1 : -1) * (0.5 + rand()))],
    ["alternating ±1 exactly", row((c) => (c % 2 ? 1 : -1))],
    ["all negative", row(() => -0.01 - rand())],
    ["all positive", row(() => 0.01 + rand())],
    ["integers -8..7", row(() => Math.floor(rand() * 16) - 8)],
    ["half-integers", row(() => (Math.floor(rand() * 32) - 16) / 2)],
    ["sparse", row(() => (rand() < 0.05 ? gaussian(rand) : 0))],
  ];
}

function expectSameFloats(type: GGMLType, what: string, got: Float32Array, want: Float32Array): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) expect.fail(`${typeName(type)} ${what}: dequantized element ${i}: ${got[i]} vs llama.cpp ${want[i]}`);
  }
}

/** Quantize with both, compare bytes; dequantize those bytes with both, compare float bits. */
function compare(type: GGMLType, what: string, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): void {
  const got = quantizeRows(type, src, nrows, ncols, imatrix);
  const want = oracleQuantize(type, src, nrows, ncols, imatrix);
  expectSameBytes(type, what, got, want, ncols);
  expectSameFloats(type, `${what} (dequantized)`, dequantizeRows(type, want, nrows, ncols), oracleDequantize(type, want, nrows, ncols));
}

describe.each(TYPES.map((t) => [typeName(t), t] as const))("%s matches llama.cpp", (_name, type) => {
  const seed = 0x51f0 + type;

  it.each([["no imatrix", false], ["imatrix", true]] as const)("random rows, %s", (_mode, withImatrix) => {
    const rand = prng(seed + (withImatrix ? 1000 : 0));
    // Row lengths: several super-blocks, and one 256-wide batch where every row starts a new block.
    for (const [nrows, ncols] of [[384, 256], [96, 768], [48, 2048]] as const) {
      const src = randomRows(rand, nrows, ncols);
      const imatrix = withImatrix ? randomImatrix(rand, ncols, 0.1) : null;
      compare(type, `${nrows}x${ncols} random`, src, nrows, ncols, imatrix);
    }
  });

  it.each([["no imatrix", 0], ["imatrix", 1], ["imatrix with many zeros", 2], ["all-zero imatrix", 3]] as const)(
    "edge rows, %s",
    (_mode, imMode) => {
      const rand = prng(seed + 7 * imMode);
      const ncols = 256;
      const imatrix =
        imMode === 0 ? null : imMode === 1 ? randomImatrix(rand, ncols, 0) : imMode === 2 ? randomImatrix(rand, ncols, 0.7) : new Float32Array(ncols);
      for (const [name, row] of edgeRows(ncols, rand)) compare(type, `edge row "${name}"`, row, 1, ncols, imatrix);
      // all edge rows in one batch too (row offsets, sigma2 per row)
      const rows = edgeRows(ncols, prng(seed));
      const batch = new Float32Array(rows.length * ncols);
      rows.forEach(([, r], i) => batch.set(r, i * ncols));
      compare(type, "edge batch", batch, rows.length, ncols, imatrix);
    },
  );
});

describe("non-finite input", () => {
  it.each(TYPES.map((t) => [typeName(t), t] as const))("%s: a row with NaN or Inf is refused, naming the row", (_n, type) => {
    const ncols = 256;
    const src = randomRows(prng(3), 6, ncols);
    src[4 * ncols + 100] = NaN;
    src[5 * ncols] = Infinity;
    let err: unknown;
    try {
      quantizeRows(type, src, 6, ncols, null);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NonFiniteRowError);
    expect((err as NonFiniteRowError).row).toBe(4);
    expect((err as Error).message).toBe("row 4 contains NaN or Inf");
    src[4 * ncols + 100] = 0;
    expect(() => quantizeRows(type, src, 6, ncols, randomImatrix(prng(4), ncols, 0))).toThrow("row 5 contains NaN or Inf");
    src[5 * ncols] = -Infinity;
    expect(() => quantizeRows(type, src, 6, ncols, null)).toThrow(NonFiniteRowError);
  });
});
