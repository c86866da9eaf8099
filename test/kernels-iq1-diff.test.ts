// Differential test of the IQ1_S / IQ1_M kernels against llama.cpp itself: the same rows go through
// hquant's WASM kernels and libggml-base's ggml_quantize_chunk (koffi oracle); quantized bytes and
// dequantized floats (compared as raw f32 bytes) must be identical. IQ1_S with importance vectors
// only (ggml aborts without one; hquant refuses), IQ1_M with and without. Per variant 2000+ random
// rows at widths of 1, 2, 3, 5 and 11 super-blocks, and 38 edge rows × 6 or 7 importance vectors
// (zeros, constants, lattice points, ties, magnitudes from subnormal to 1e8, all-zero weights).
// The oracle's first IQ1 call builds ggml's neighbour tables (seconds of CPU), once per process,
// on a worker thread (beforeAll); each test stays short so the runner's event loop is not starved.
import { beforeAll, describe, expect, it } from "vitest";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { convertRows, dequantizeRows, quantizeInto, quantizeRows, quantizeStaged, stagingRows } from "../src/quant/kernels.js";
import { oracleQuantize, oracleQuantizeInit } from "./oracle/ggml.js";
import {
  compareWithLlama as compare, concatRows, edgeImatrices, expectDequantizesLikeLlama, firstDiff, gauss, prng, QK_K,
  randomBlocks, randomImatrix, randomRows,
} from "./kernel-test-util.js";
import { IQ1_ROWS, iq1EdgeRows } from "./iq1-rows.js";

beforeAll(() => oracleQuantizeInit(GGMLType.IQ1_S)); // IQ1_M shares its tables

const VARIANTS = [
  ["iq1_s", GGMLType.IQ1_S, true],
  ["iq1_m", GGMLType.IQ1_M, true],
  ["iq1_m", GGMLType.IQ1_M, false],
] as const;

describe.each(VARIANTS.map(([n, t, im]) => [`${n} ${im ? "imatrix" : "plain"}`, t, im] as const))("%s vs llama.cpp", (_name, type, withImatrix) => {
  it.each([[1, 640], [2, 320], [3, 480], [5, 384], [11, 192]] as const)("random rows, %i super-block(s) wide (%i rows)", (blocks, nrows) => {
    const rand = prng(0x1c100000 + type * 64 + blocks * 2 + (withImatrix ? 1 : 0));
    const ncols = blocks * QK_K;
    for (let batch = 0; batch < 4; batch++) {
      const n = nrows / 4;
      const src = randomRows(rand, n, ncols, IQ1_ROWS);
      const im = withImatrix ? randomImatrix(rand, ncols, [0, 0.1, 0.5, 0.9][batch]!) : null;
      expect(compare(type, src, n, ncols, im)).toBe("");
    }
  });

  it("edge rows: zeros, constants, lattice points, ties, tiny and huge magnitudes, zero weights", () => {
    const rows = iq1EdgeRows(prng(0xed9e0013));
    const ncols = rows[0]!.length;
    const src = concatRows(rows, ncols);
    const ones = Float32Array.from({ length: ncols }, () => 1);
    for (const im of withImatrix ? [...edgeImatrices(prng(0x1a7e0013), ncols), ones] : [null]) {
      // all edge rows in one call, and each alone (a row's bytes must not depend on its batch)
      expect(compare(type, src, rows.length, ncols, im)).toBe("");
      for (const r of rows) expect(compare(type, r, 1, ncols, im)).toBe("");
    }
  });
});

describe.each([["iq1_s", GGMLType.IQ1_S], ["iq1_m", GGMLType.IQ1_M]] as const)("%s through every entry point", (_name, type) => {
  it("quantizeInto, quantizeStaged and convertRows (F32 and F16 sources) give ggml_quantize_chunk's bytes", () => {
    const rand = prng(0xe7e70000 + type);
    const nrows = 6, ncols = 3 * QK_K;
    const src = randomRows(rand, nrows, ncols, IQ1_ROWS);
    const im = randomImatrix(rand, ncols, 0.1);
    const want = oracleQuantize(type, src, nrows, ncols, im);
    const out = new Uint8Array(want.length + 2).fill(0xaa);
    quantizeInto(type, src, nrows, ncols, im, out.subarray(1));
    expect(firstDiff(out.subarray(1, 1 + want.length), want)).toBe(-1);
    expect([out[0], out[want.length + 1]]).toEqual([0xaa, 0xaa]);
    stagingRows(nrows, ncols).set(src);
    expect(firstDiff(quantizeStaged(type, nrows, ncols, im), want)).toBe(-1);
    expect(firstDiff(convertRows(GGMLType.F32, new Uint8Array(src.buffer), type, nrows, ncols, im), want)).toBe(-1);
    // an F16 source: the same as quantizing its f32 values
    const f16 = quantizeRows(GGMLType.F16, src, nrows, ncols, null);
    const widened = dequantizeRows(GGMLType.F16, f16, nrows, ncols);
    expect(firstDiff(convertRows(GGMLType.F16, f16, type, nrows, ncols, im), oracleQuantize(type, widened, nrows, ncols, im))).toBe(-1);
  });
});

describe.each([["iq1_s", GGMLType.IQ1_S], ["iq1_m", GGMLType.IQ1_M]] as const)("%s dequantization", (_name, type) => {
  it("dequantizes arbitrary blocks (NaN/Inf scales included) exactly like llama.cpp", () => {
    const rand = prng(0xdec0de00 + type);
    expectDequantizesLikeLlama(type, randomBlocks(rand, type, 64, 768), 64, 768);
  });
});

describe("iq1_s without an importance matrix", () => {
  it("is refused with a one-line error before the kernel runs (ggml would abort)", () => {
    const row = new Float32Array(QK_K).fill(1);
    const message = /^iq1_s needs an importance matrix: llama\.cpp does not quantize it without one$/;
    expect(() => quantizeRows(GGMLType.IQ1_S, row, 1, QK_K, null)).toThrow(message);
    expect(() => convertRows(GGMLType.F32, new Uint8Array(row.buffer), GGMLType.IQ1_S, 1, QK_K, null)).toThrow(message);
    stagingRows(1, QK_K).set(row);
    expect(() => quantizeStaged(GGMLType.IQ1_S, 1, QK_K, null)).toThrow(message);
  });
});

describe("iq1_m rows llama.cpp aborts on", () => {
  it("are refused with a one-line error naming the row", () => {
    // magnitudes ~1e13 without an importance vector: every neighbour's weighted distance
    // overflows, and ggml's iq1_find_best_neighbour2 fails its GGML_ASSERT(grid_index >= 0)
    const rand = prng(7);
    const rows = new Float32Array(3 * QK_K);
    for (let c = 0; c < rows.length; c++) rows[c] = gauss(rand) * (c >= 2 * QK_K ? 1e13 : 1);
    expect(() => quantizeRows(GGMLType.IQ1_M, rows, 3, QK_K, null)).toThrow(
      /^row 2 cannot be quantized to iq1_m: its values are too large \(llama\.cpp's quantizer aborts on it\)$/,
    );
    expect(quantizeRows(GGMLType.IQ1_M, rows.subarray(0, 2 * QK_K), 2, QK_K, null)).toEqual(
      oracleQuantize(GGMLType.IQ1_M, rows.subarray(0, 2 * QK_K), 2, QK_K, null),
    );
  });
});
