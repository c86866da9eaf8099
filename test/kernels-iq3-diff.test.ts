// Differential test of the IQ3 kernels (iq3_xxs, iq3_s) against llama.cpp itself: the same rows go
// through hquant's WASM kernels and libggml-base's ggml_quantize_chunk (koffi oracle); the quantized
// bytes and the dequantized floats (compared as raw f32 bytes) must be identical, with and without
// an importance vector. Per type: 2304 random rows without and 1152 with importance vectors (rows of
// 1, 2, 3 and 5 super-blocks), 38 edge rows × 6 importance vectors, one call and row by row, and the
// dequantization of random bytes. Rows whose values are so large that ggml's neighbour search
// overflows make ggml abort (GGML_ASSERT): hquant refuses exactly those, checked in child processes.
import { describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { quantizeRows, ReferenceAbortRowError } from "../src/quant/kernels.js";
import { oracleQuantizeIsolated } from "./oracle/ggml-isolated.js";
import {
  BASE_SHAPES, compareWithLlama as compare, concatRows, edgeImatrices, edgeRows, expectDequantizesLikeLlama, gauss, prng, QK_K,
  randomBlocks, randomImatrix, randomRows, type RowKinds, type RowShape,
} from "./kernel-test-util.js";

const IQ3_TYPES = [GGMLType.IQ3_XXS, GGMLType.IQ3_S];

const zeroSubBlocks: RowShape = (v, _scale, c) => ((c >> 5) % 3 === 1 ? 0 : v);
const tinyOtherSign: RowShape = (v, _scale, _c, rand) => (rand() < 0.5 ? -v * 1e-3 : v); // many tiny values of the other sign
const ROWS: RowKinds = { minExp: -4, maxExp: 2, shapes: [...BASE_SHAPES, zeroSubBlocks, tinyOtherSign] }; // 1e-4 .. 1e2

const EDGE_COLS = QK_K * 2;

/** The shared edge rows, and IQ3's own: zero sub-blocks, sign parity, tied scales, and rows ggml aborts on. */
function iq3EdgeRows(rand: () => number): Float32Array[] {
  return edgeRows(rand, EDGE_COLS, {
    tiny: [(c) => (c % 2 ? 1e-30 : -1e-30)],
    smallestSubnormals: [(c) => (c % 5 === 0 ? 5e-39 : 0)],
    large: [
      () => gauss(rand) * 3e5,
      (c) => (c % 32 < 8 ? 0 : gauss(rand)),
      (c) => (c % 64 < 32 ? 0 : gauss(rand)), // every other sub-block zero
      (c) => ((c >> 5) % 2 ? 1e-9 : gauss(rand)), // sub-blocks below IQ3_XXS's threshold
      (c) => ((c >> 5) === 3 ? gauss(rand) : 0), // one sub-block alone
      (c) => (c % 8 === 0 ? -1 : 0.5), // one minus sign per group of eight (parity fix-up)
      (c) => (c % 8 < 3 ? -(gauss(rand) ** 2) : 1), // odd minus signs, all of one size
      (c) => [3, 3, 3, 3, 1, 1, 1, 1][c % 8]! * 0.01, // scales tie
      () => gauss(rand) * 1e9,
      // ggml aborts on these (the search's squared distances overflow to Inf)
      (c) => (c === 5 ? 1e-20 : c === 6 ? -1e20 : 0),
      (c) => (c % 9 === 0 ? 3e38 : c % 9 === 1 ? -3e38 : gauss(rand)),
      (c) => (c % 2 ? 1e19 : -1e19),
      () => gauss(rand) * 1e15,
    ],
  });
}

/** Whether hquant refuses the row as one ggml aborts on (any other error fails the test). */
function refused(type: GGMLType, row: Float32Array, imatrix: Float32Array | null): boolean {
  try {
    quantizeRows(type, row, 1, row.length, imatrix);
    return false;
  } catch (e) {
    if (e instanceof ReferenceAbortRowError) return true;
    throw e;
  }
}

const maxAbs = (r: Float32Array) => r.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe.each(IQ3_TYPES.map((t) => [typeName(t), t] as const))("%s vs llama.cpp", (_name, type) => {
  it("random rows, no importance vector (1, 2, 3 and 5 super-blocks a row)", () => {
    const rand = prng(0x1b3a0000 + type);
    for (const [ncols, nrows] of [[256, 1024], [512, 512], [768, 384], [1280, 384]] as const) {
      expect(compare(type, randomRows(rand, nrows, ncols, ROWS), nrows, ncols, null)).toBe("");
    }
  });

  it("random rows with importance vectors (some with zero weights)", () => {
    const rand = prng(0x1b3b0000 + type);
    for (const [ncols, zeros] of [[256, 0], [512, 0.1], [768, 0.5], [1280, 0.9]] as const) {
      for (let batch = 0; batch < 3; batch++) {
        const nrows = 96;
        const src = randomRows(rand, nrows, ncols, ROWS);
        expect(compare(type, src, nrows, ncols, randomImatrix(rand, ncols, zeros))).toBe("");
      }
    }
  });

  const rand = prng(0x1b3c0000 + type);
  const rows = iq3EdgeRows(rand);
  const imatrices = [null, ...edgeImatrices(rand, EDGE_COLS)];

  it("edge rows: zeros, constants, outliers, tiny, subnormal, ±65504, all negative, zero sub-blocks, ties", () => {
    for (const im of imatrices) {
      const kept = rows.filter((r) => !refused(type, r, im));
      // every row of moderate magnitude is quantized (ggml handles those)
      for (const r of rows) if (maxAbs(r) <= 1e9) expect(kept).toContain(r);
      // one call with all of them, and each row alone (a row's bytes must not depend on its batch)
      expect(compare(type, concatRows(kept, EDGE_COLS), kept.length, EDGE_COLS, im)).toBe("");
      for (const r of kept) expect(compare(type, r, 1, EDGE_COLS, im)).toBe("");
    }
  });

  it("refuses exactly the rows ggml aborts on, with a one-line error", () => {
    // in a child process (the refused row last: it kills the child): two accepted rows give the
    // same bytes as in process, the refused one aborts ggml; without an importance vector for
    // iq3_xxs, with one for iq3_s
    const im = type === GGMLType.IQ3_XXS ? null : imatrices[1]!;
    const refusedRows = rows.filter((r) => refused(type, r, im));
    expect(refusedRows.length).toBeGreaterThan(0);
    const results = oracleQuantizeIsolated(type, [rows[5]!, rows[17]!, refusedRows[0]!], EDGE_COLS, im);
    expect(results[0]).toEqual({ bytes: quantizeRows(type, rows[5]!, 1, EDGE_COLS, im) });
    expect(results[1]).toEqual({ bytes: quantizeRows(type, rows[17]!, 1, EDGE_COLS, im) });
    expect(results[2]).toMatchObject({ aborted: expect.stringMatching(/GGML_ASSERT/) });
    const batch = new Float32Array(3 * EDGE_COLS);
    batch.set(rows[0]!, 0);
    batch.set(rows[2]!, EDGE_COLS);
    batch.set(rows[rows.length - 1]!, 2 * EDGE_COLS);
    expect(() => quantizeRows(type, batch, 3, EDGE_COLS, null)).toThrow(
      new ReferenceAbortRowError(2, type),
    );
    expect(new ReferenceAbortRowError(2, type).message).toBe(
      `row 2 cannot be quantized to ${typeName(type)}: its values are too large (llama.cpp's quantizer aborts on it)`,
    );
  });

  it("dequantizes arbitrary blocks exactly like llama.cpp (NaN and Inf scales too)", () => {
    const nrows = 64;
    const ncols = 512;
    const bytes = randomBlocks(prng(0xdec03000 + type), type, nrows, ncols);
    // some fp16 scales NaN / Inf
    const bs = rowSize(type, QK_K);
    for (let b = 0; b < 8; b++) {
      bytes[b * 7 * bs] = b % 2 ? 0x00 : 0x01;
      bytes[b * 7 * bs + 1] = b < 4 ? 0x7c : 0xfc;
    }
    expectDequantizesLikeLlama(type, bytes, nrows, ncols);
  });
});
