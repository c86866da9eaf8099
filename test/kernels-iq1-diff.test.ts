// Differential test of the IQ1_S / IQ1_M kernels against llama.cpp itself: the same rows go through
// hquant's WASM kernels and libggml-base's ggml_quantize_chunk (koffi oracle); quantized bytes and
// dequantized floats (compared as raw f32 bytes) must be identical. IQ1_S with importance vectors
// only (ggml aborts without one; hquant refuses), IQ1_M with and without. Per variant 2000+ random
// rows at widths of 1, 2, 3, 5 and 11 super-blocks, and 38 edge rows × 6 or 7 importance vectors
// (zeros, constants, lattice points, ties, magnitudes from subnormal to 1e8, all-zero weights).
// The oracle's first IQ1 call builds ggml's neighbour tables (seconds of CPU), once per process,
// on a worker thread (beforeAll); each test stays short so the runner's event loop is not starved.
import { beforeAll, describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { convertRows, dequantizeRows, quantizeInto, quantizeRows, quantizeStaged, stagingRows } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize, oracleQuantizeInit } from "./oracle/ggml.js";
import { firstDiff, prng } from "./kernel-test-util.js";
import { QK_K, edgeImatrices, edgeRows, gauss, randomImatrix, randomRow } from "./iq1-rows.js";

/** Quantize with both, compare bytes then dequantized floats; returns a message or "" when equal. */
function compare(type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): string {
  const expected = oracleQuantize(type, src, nrows, ncols, imatrix);
  const got = quantizeRows(type, src, nrows, ncols, imatrix);
  const at = firstDiff(got, expected);
  if (at >= 0) {
    const rs = rowSize(type, ncols);
    return `${typeName(type)} ${imatrix ? "imatrix" : "plain"} ${nrows}×${ncols}: bytes differ at ${at} (row ${Math.floor(at / rs)}, byte ${at % rs} of the row): ${got[at]} vs ${expected[at]}`;
  }
  const deqGot = new Uint8Array(dequantizeRows(type, got, nrows, ncols).buffer);
  const deqExp = new Uint8Array(oracleDequantize(type, expected, nrows, ncols).buffer);
  const dat = firstDiff(deqGot, deqExp);
  if (dat >= 0) return `${typeName(type)} ${imatrix ? "imatrix" : "plain"}: dequantized floats differ at element ${dat >> 2}`;
  return "";
}

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
      const src = new Float32Array(n * ncols);
      for (let r = 0; r < n; r++) src.set(randomRow(rand, ncols), r * ncols);
      const im = withImatrix ? randomImatrix(rand, ncols, [0, 0.1, 0.5, 0.9][batch]!) : null;
      expect(compare(type, src, n, ncols, im)).toBe("");
    }
  });

  it("edge rows: zeros, constants, lattice points, ties, tiny and huge magnitudes, zero weights", () => {
    const rows = edgeRows(prng(0xed9e0013));
    const ncols = rows[0]!.length;
    const src = new Float32Array(rows.length * ncols);
    rows.forEach((r, i) => src.set(r, i * ncols));
    for (const im of withImatrix ? edgeImatrices(prng(0x1a7e0013), ncols) : [null]) {
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
    const src = new Float32Array(nrows * ncols);
    for (let r = 0; r < nrows; r++) src.set(randomRow(rand, ncols), r * ncols);
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
    const nrows = 64;
    const ncols = 768;
    const bytes = new Uint8Array(rowSize(type, ncols) * nrows);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
    const got = new Uint8Array(dequantizeRows(type, bytes, nrows, ncols).buffer);
    const exp = new Uint8Array(oracleDequantize(type, bytes, nrows, ncols).buffer);
    expect(firstDiff(got, exp)).toBe(-1);
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
