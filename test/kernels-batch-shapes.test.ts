// The kernels that search several 32-blocks at once (one block per SIMD lane, groups of four taken
// across row boundaries) against llama.cpp on batch shapes whose block count is not a multiple of
// four, and through every JS entry point: each quantized byte must equal ggml_quantize_chunk's.
import { describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { convertRows, NonFiniteRowError, quantizeInto, quantizeRows, quantizeStaged, stagingRows } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";
import { expectSameBytes, prng } from "./kernel-test-util.js";

const TYPES: GGMLType[] = [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.IQ4_NL];
// [nrows, ncols]: 1, 2, 3, 5, 7, 15 blocks in all; groups of four straddle rows of 3 and 5 blocks
const SHAPES: [number, number][] = [[1, 32], [1, 64], [1, 96], [1, 160], [7, 32], [3, 160], [5, 96], [2, 224]];

/**
 * Rows at different scales (so each row has its own sigma2); some rows start with a block of +0,
 * of -0, or of ±0.25 alternating (both signs reach the largest magnitude: the first one decides).
 */
function rows(rand: () => number, nrows: number, ncols: number): Float32Array {
  const firstBlock = [(c: number) => (c % 2 ? -0.25 : 0.25), () => 0, () => -0];
  const out = new Float32Array(nrows * ncols);
  for (let r = 0; r < nrows; r++) {
    const scale = 10 ** (rand() * 4 - 3);
    for (let c = 0; c < ncols; c++) out[r * ncols + c] = c < 32 && r % 4 !== 3 ? firstBlock[r % 4](c) : (rand() * 2 - 1) * scale;
  }
  return out;
}

describe.each(TYPES.map((t) => [typeName(t), t] as const))("%s batch shapes match llama.cpp", (_name, type) => {
  it.each(SHAPES)("%i rows of %i, with and without imatrix", (nrows, ncols) => {
    const rand = prng(nrows * 1000 + ncols + type);
    const src = rows(rand, nrows, ncols);
    const imatrix = Float32Array.from({ length: ncols }, (_, c) => (c % 5 === 0 ? 0 : rand() * 3));
    for (const im of [null, imatrix]) {
      const what = `${nrows}x${ncols} ${im ? "imatrix" : "no imatrix"}`;
      const want = oracleQuantize(type, src, nrows, ncols, im);
      expectSameBytes(type, what, quantizeRows(type, src, nrows, ncols, im), want);
      const out = new Uint8Array(rowSize(type, ncols) * nrows + 3).fill(0xAA);
      quantizeInto(type, src, nrows, ncols, im, out.subarray(1));
      expectSameBytes(type, `${what} (quantizeInto)`, out.subarray(1, 1 + want.length), want);
      expect([out[0], out[want.length + 1]]).toEqual([0xAA, 0xAA]);
      stagingRows(nrows, ncols).set(src);
      expectSameBytes(type, `${what} (staged)`, quantizeStaged(type, nrows, ncols, im), want);
    }
  });
});

describe("convertRows (source bytes straight to a quant type)", () => {
  it.each([GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0])("from %i: same bytes as llama.cpp on the widened rows", (srcType) => {
    const [nrows, ncols] = [5, 96];
    const rand = prng(srcType + 77);
    const src = oracleQuantize(srcType, rows(rand, nrows, ncols), nrows, ncols, null);
    const widened = oracleDequantize(srcType, src, nrows, ncols);
    const imatrix = Float32Array.from({ length: ncols }, () => rand());
    for (const dstType of [GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.BF16]) {
      for (const im of [null, imatrix]) {
        const want = oracleQuantize(dstType, widened, nrows, ncols, im);
        expectSameBytes(dstType, `from ${typeName(srcType)}${im ? " with imatrix" : ""}`, convertRows(srcType, src, dstType, nrows, ncols, im), want);
      }
    }
  });

  it("reports the first non-finite row of a long batch by its index in the batch", () => {
    const [nrows, ncols] = [40, 8192]; // more rows than the kernels take in one slice
    const src = new Float32Array(nrows * ncols).fill(0.5);
    src[33 * ncols + 8000] = -Infinity;
    src[37 * ncols] = NaN;
    expect(() => quantizeRows(GGMLType.Q4_K, src, nrows, ncols)).toThrow(new NonFiniteRowError(33));
    stagingRows(nrows, ncols).set(src);
    expect(() => quantizeStaged(GGMLType.BF16, nrows, ncols)).toThrow(new NonFiniteRowError(33));
    const f16 = oracleQuantize(GGMLType.F16, src, nrows, ncols, null);
    expect(() => convertRows(GGMLType.F16, f16, GGMLType.Q8_0, nrows, ncols)).toThrow(new NonFiniteRowError(33));
  });

  it("reports the first non-finite row of the source", () => {
    const src = new Uint16Array(4 * 64).fill(0x3c00); // F16 1.0
    src[2 * 64 + 5] = 0x7e00; // F16 NaN in row 2
    src[3 * 64] = 0x7c00; // +Inf in row 3
    const bytes = new Uint8Array(src.buffer);
    expect(() => convertRows(GGMLType.F16, bytes, GGMLType.Q4_0, 4, 64)).toThrow(new NonFiniteRowError(2));
  });
});
