// convertRowsMulti (one widening to f32 per slice, every output's kernel run on it) must write, for
// each output, the bytes convertRows writes for that output alone: from F16, BF16 and F32 sources,
// over several slices, with and without importance vectors, into its own array, a caller's array
// or over the source rows. Run with every quantize kernel at once, it also shows that no kernel
// writes into the f32 rows it reads (a later output would then see changed rows). A refused row
// names the output.
import { describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { convertRows, convertRowsMulti, NonFiniteRowError, OutputRowError, ReferenceAbortRowError, type ConvertOutput } from "../src/quant/kernels.js";
import { oracleQuantize } from "./oracle/ggml.js";
import { expectSameBytes, gauss, prng } from "./kernel-test-util.js";

// 300 rows of 256: the kernels take 128 rows a slice (32768 floats), so three slices, the last partial
const [NROWS, NCOLS] = [300, 256];

function sourceRows(srcType: GGMLType, seed: number, nrows = NROWS, ncols = NCOLS): Uint8Array {
  const rand = prng(seed);
  const f32 = new Float32Array(nrows * ncols);
  for (let r = 0; r < nrows; r++) {
    const scale = 10 ** (rand() * 2 - 2);
    for (let c = 0; c < ncols; c++) f32[r * ncols + c] = gauss(rand) * scale;
  }
  return srcType === GGMLType.F32 ? new Uint8Array(f32.buffer) : oracleQuantize(srcType, f32, nrows, ncols, null);
}

const importance = (seed: number) => {
  const rand = prng(seed);
  return Float32Array.from({ length: NCOLS }, (_, c) => (c % 11 === 0 ? 0 : rand() * 4));
};

/** Every output equal to convertRows alone (each from a fresh copy of the source). */
function expectLikeConvertRows(srcType: GGMLType, src: Uint8Array, outputs: ConvertOutput[], got: Uint8Array[]): void {
  expect(got.length).toBe(outputs.length);
  outputs.forEach((o, i) => {
    const want = convertRows(srcType, src.slice(), o.dstType, NROWS, NCOLS, o.imatrix);
    expectSameBytes(o.dstType, `output ${i} (${typeName(o.dstType)}${o.imatrix ? ", imatrix" : ""}) from ${typeName(srcType)}`, got[i]!, want);
  });
}

describe("convertRowsMulti", () => {
  it.each([GGMLType.F16, GGMLType.BF16, GGMLType.F32])("from %i: each output is convertRows' bytes for it", (srcType) => {
    const src = sourceRows(srcType, 100 + srcType);
    // F32 (wider than a F16/BF16 source row) among them, the same type twice with different importance
    const outputs: ConvertOutput[] = [
      { dstType: GGMLType.Q8_0 },
      { dstType: GGMLType.Q6_K },
      { dstType: GGMLType.Q4_K, imatrix: importance(1) },
      { dstType: GGMLType.Q4_K },
      { dstType: GGMLType.IQ4_XS, imatrix: importance(2) },
      { dstType: GGMLType.Q3_K, imatrix: importance(3) },
      { dstType: GGMLType.Q2_K },
      { dstType: GGMLType.F32 },
    ];
    const before = src.slice();
    expectLikeConvertRows(srcType, src, outputs, convertRowsMulti(srcType, src, outputs, NROWS, NCOLS));
    expect(Buffer.from(src).equals(Buffer.from(before))).toBe(true); // the source is only read
  });

  it("writes into the caller's arrays, one of them the source rows themselves", () => {
    const srcType = GGMLType.F16;
    const src = sourceRows(srcType, 7);
    const original = src.slice();
    const types = [GGMLType.F32, GGMLType.Q5_K, GGMLType.Q4_0];
    const outs = types.map((t) => new Uint8Array(rowSize(t, NCOLS) * NROWS + 5).fill(0xAA));
    const outputs: ConvertOutput[] = [
      { dstType: types[0]!, out: outs[0] },
      { dstType: types[1]!, out: src }, // over the source: its slices are written behind the ones still to be read
      { dstType: types[2]!, out: outs[2] },
    ];
    const got = convertRowsMulti(srcType, src, outputs, NROWS, NCOLS);
    expect(got[0]!.buffer).toBe(outs[0]!.buffer);
    expect(got[1]!.buffer).toBe(src.buffer);
    expectLikeConvertRows(srcType, original, outputs.map((o) => ({ dstType: o.dstType })), got);
    expect(outs[0]![got[0]!.length]).toBe(0xAA); // nothing past the rows
  });

  it("every quantize kernel on the same widened rows: no kernel writes into its source", () => {
    // the 2-bit IQ types need importance (llama.cpp refuses them without); the others get it on odd positions
    const types = [
      GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
      GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.IQ4_NL, GGMLType.IQ4_XS,
      GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.IQ1_S, GGMLType.IQ1_M,
      GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0,
    ];
    const needs = new Set([GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S]);
    const im = importance(9);
    const outputs: ConvertOutput[] = types.map((t, i) => ({ dstType: t, imatrix: needs.has(t) || i % 2 ? im : null }));
    const src = sourceRows(GGMLType.F16, 55);
    expectLikeConvertRows(GGMLType.F16, src, outputs, convertRowsMulti(GGMLType.F16, src, outputs, NROWS, NCOLS));
  });

  it("a NaN row: the first output that quantizes it is named, with the row in the whole batch", () => {
    const src = sourceRows(GGMLType.F16, 3);
    new DataView(src.buffer).setUint16(2 * (NCOLS * 211 + 9), 0x7e00, true); // row 211 (second slice)
    const err = (() => {
      try {
        convertRowsMulti(GGMLType.F16, src, [{ dstType: GGMLType.Q6_K }, { dstType: GGMLType.Q8_0 }], NROWS, NCOLS);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(OutputRowError);
    expect((err as OutputRowError).output).toBe(0);
    expect((err as OutputRowError).failure).toBeInstanceOf(NonFiniteRowError);
    expect((err as OutputRowError).failure.row).toBe(211);
  });

  it("a row only one output's quantizer refuses (llama.cpp aborts on it) names that output", () => {
    // IQ3_S's neighbour search overflows on values this large (ggml asserts); Q8_0 takes them
    const f32 = new Float32Array(sourceRows(GGMLType.F32, 4).buffer);
    for (let c = 0; c < NCOLS; c++) f32[NCOLS * 141 + c] = c % 2 ? 1e19 : -1e19;
    const src = new Uint8Array(f32.buffer);
    const err = (() => {
      try {
        convertRowsMulti(GGMLType.F32, src, [{ dstType: GGMLType.Q8_0 }, { dstType: GGMLType.IQ3_S }], NROWS, NCOLS);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(OutputRowError);
    expect((err as OutputRowError).output).toBe(1);
    expect((err as OutputRowError).failure).toBeInstanceOf(ReferenceAbortRowError);
    expect((err as OutputRowError).failure.row).toBe(141);
  });
});
