// Differential test of the K-quant kernels (Q2_K..Q6_K) against llama.cpp itself: the same rows go
// through hquant's WASM kernels and through libggml-base's ggml_quantize_chunk (koffi oracle); the
// quantized bytes and the dequantized floats (compared as raw f32 bytes, so -0 and NaN count) must
// be identical, with and without an importance vector. Per type: 2816 random rows without and 1536
// with importance vectors (row lengths 256..768), 29 edge rows × 6 importance vectors, and the
// dequantization of random bytes (including NaN/Inf fp16 scales).
import { describe, expect, it } from "vitest";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import {
  BASE_SHAPES, compareWithLlama as compare, concatRows, edgeImatrices, edgeRows, expectDequantizesLikeLlama, gauss, prng, QK_K,
  randomBlocks, randomImatrix, randomRows, type RowKinds,
} from "./kernel-test-util.js";

const K_TYPES = [GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K];
const ROWS: RowKinds = { minExp: -4, maxExp: 2, shapes: BASE_SHAPES }; // 1e-4 .. 1e2

/** The shared edge rows, and the K-quants' own (sums overflowing to Inf/NaN among them). */
function kquantEdgeRows(rand: () => number): Float32Array[] {
  return edgeRows(rand, QK_K * 2, {
    tiny: [(c) => (c % 2 ? 1e-30 : -1e-30)],
    smallestSubnormals: [(c) => (c % 5 === 0 ? 5e-39 : 0)],
    large: [
      () => gauss(rand) * 3e5,
      (c) => (c === 5 ? 1e-20 : c === 6 ? -1e20 : 0),
      (c) => (c % 9 === 0 ? 3e38 : c % 9 === 1 ? -3e38 : gauss(rand)), // sums overflow to Inf/NaN
      (c) => (c % 2 ? 1e19 : -1e19),
    ],
  });
}

describe.each(K_TYPES.map((t) => [typeName(t), t] as const))("%s vs llama.cpp", (_name, type) => {
  it("random rows, no importance vector", () => {
    const rand = prng(0x5eed0000 + type);
    for (const ncols of [256, 512, 768]) {
      const nrows = 1536 / (ncols / 256); // 1536 / 768 / 512 rows
      expect(compare(type, randomRows(rand, nrows, ncols, ROWS), nrows, ncols, null)).toBe("");
    }
  });

  it("random rows with importance vectors (some with zero weights)", () => {
    const rand = prng(0x1a7e0000 + type);
    for (const [ncols, zeros] of [[256, 0], [512, 0.1], [768, 0.5], [256, 0.9]] as const) {
      const nrows = 96;
      for (let batch = 0; batch < 4; batch++) {
        const src = randomRows(rand, nrows, ncols, ROWS);
        expect(compare(type, src, nrows, ncols, randomImatrix(rand, ncols, zeros))).toBe("");
      }
    }
  });

  it("edge rows: zeros, constants, outliers, tiny, subnormal, ±65504, mixed signs", () => {
    const rand = prng(0xed9e0000 + type);
    const rows = kquantEdgeRows(rand);
    const ncols = rows[0].length;
    const src = concatRows(rows, ncols);
    for (const im of [null, ...edgeImatrices(rand, ncols)]) {
      // one call with all edge rows, and each row alone (a row's bytes must not depend on its batch)
      expect(compare(type, src, rows.length, ncols, im)).toBe("");
      for (const r of rows) expect(compare(type, r, 1, ncols, im)).toBe("");
    }
  });

  it("dequantizes arbitrary blocks exactly like llama.cpp", () => {
    const rand = prng(0xdec0de00 + type);
    expectDequantizesLikeLlama(type, randomBlocks(rand, type, 64, 512), 64, 512);
  });
});
