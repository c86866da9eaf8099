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
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { quantizeRows } from "../src/quant/kernels.js";
import {
  BASE_SHAPES, compareWithLlama as compare, concatRows, edgeImatrices, edgeRows, expectDequantizesLikeLlama, gauss, prng,
  QK_K, randomBlocks, randomImatrix, randomRows, type RowKinds, type RowShape,
} from "./kernel-test-util.js";

const TYPES = [
  { type: GGMLType.IQ2_XXS, plain: false },
  { type: GGMLType.IQ2_XS, plain: false },
  { type: GGMLType.IQ2_S, plain: true },
];

const equalMagnitudes: RowShape = (_v, scale, _c, rand) => (rand() < 0.5 ? -1 : 1) * scale * (1 + Math.floor(rand() * 3));
const ROWS: RowKinds = { minExp: -5, maxExp: 3, shapes: [...BASE_SHAPES, equalMagnitudes] }; // 1e-5 .. 1e3

/** The shared edge rows, and the IQ2 searches' own: sign parity, the all-zero thresholds, lattice ratios. */
function iq2EdgeRows(rand: () => number): Float32Array[] {
  return edgeRows(rand, QK_K * 2, {
    milli: [
      (c) => (c % 8 < 3 ? -0.5 : 0.5), // three negatives a group: the parity fix-up on equal values
      (c) => (c % 8 === 5 ? -1 : 1),
      (c) => (c % 2 ? 1 : -1),
    ],
    tiny: [
      () => gauss(rand) * 1e-14, // around the IQ2_XXS/XS all-zero threshold
      () => gauss(rand) * 1e-8, // around the IQ2_S one
    ],
    integers13: [(c) => (c % 3) + 1], // magnitudes exactly on the 1:3:5 lattice ratios
    sparse32: [(c) => (c % 16 === 0 ? gauss(rand) : 0)],
    large: [() => gauss(rand) * 1e12, (c) => (c === 5 ? 1e-20 : c === 6 ? -1e12 : 0)],
  });
}

describe.each(TYPES.map((t) => [typeName(t.type), t] as const))("%s vs llama.cpp", (_name, { type, plain }) => {
  it.runIf(plain)("random rows, no importance vector", () => {
    const rand = prng(0x5eed0000 + type);
    for (const [ncols, nrows] of [[256, 512], [512, 256], [768, 128], [1280, 64]] as const) {
      expect(compare(type, randomRows(rand, nrows, ncols, ROWS), nrows, ncols, null)).toBe("");
    }
  });

  it("random rows with importance vectors (some with zero weights)", () => {
    const rand = prng(0x1a7e0000 + type);
    for (const [ncols, nrows, zeros] of [[256, 512, 0], [512, 256, 0.1], [768, 128, 0.5], [1280, 64, 0.9], [256, 256, 0]] as const) {
      expect(compare(type, randomRows(rand, nrows, ncols, ROWS), nrows, ncols, randomImatrix(rand, ncols, zeros))).toBe("");
    }
  });

  it("edge rows: zeros, constants, ties, outliers, tiny, subnormal, huge, all negative", () => {
    const rand = prng(0xed9e0000 + type);
    const rows = iq2EdgeRows(rand);
    const ncols = rows[0].length;
    const src = concatRows(rows, ncols);
    const imatrices: (Float32Array | null)[] = [
      ...(plain ? [null] : []),
      Float32Array.from({ length: ncols }, () => 1),
      ...edgeImatrices(rand, ncols),
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
    expectDequantizesLikeLlama(type, randomBlocks(rand, type, 64, 768), 64, 768);
  });
});
