// The worker pool: chunks go to workers by transfer (the caller's buffer is detached afterwards),
// and what comes back are llama.cpp's bytes for that chunk (F16 source converted to f32 first).
import { afterAll, describe, expect, it } from "vitest";
import { GGMLType, rowSize } from "../src/gguf/ggml-types.js";
import { QuantizePool, WORKER_PATH } from "../src/pool/index.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";

const pool = new QuantizePool(2);
afterAll(() => pool.destroy());

function seededF16Rows(nrows: number, ncols: number, seed: number): Uint8Array {
  // random f32 in a realistic weight range, rounded to f16 by the reference library
  let s = seed >>> 0;
  const f32 = new Float32Array(nrows * ncols);
  for (let i = 0; i < f32.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f32[i] = ((s / 2 ** 32) - 0.5) * 0.2;
  }
  return oracleQuantize(GGMLType.F16, f32, nrows, ncols);
}

describe("quantize pool", () => {
  it("loads the compiled worker", () => {
    expect(WORKER_PATH).toMatch(/dist\/pool\/worker\.js$/);
  });

  it("quantizes F16 chunks like llama.cpp, with and without importance, by transfer", async () => {
    const nrows = 64;
    const ncols = 512;
    const cases = [GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.IQ4_XS];
    const imatrix = new Float32Array(ncols).map((_, i) => 0.5 + (i % 7) / 3);
    await Promise.all(
      cases.flatMap((type, k) =>
        [null, imatrix].map(async (im) => {
          const f16 = seededF16Rows(nrows, ncols, 17 + k);
          const expected = oracleQuantize(type, oracleDequantize(GGMLType.F16, f16, nrows, ncols), nrows, ncols, im);
          const data = f16.slice().buffer;
          const result = await pool.run({ srcType: GGMLType.F16, dstType: type, nrows, ncols, data, imatrix: im });
          expect(data.byteLength, "source buffer was transferred").toBe(0);
          expect(result).toBeInstanceOf(ArrayBuffer);
          const bytes = new Uint8Array(result as ArrayBuffer);
          expect(bytes.length).toBe(rowSize(type, ncols) * nrows);
          expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
        }),
      ),
    );
  });

  it("reports the first row holding NaN", async () => {
    const f32 = new Float32Array(4 * 256).fill(0.25);
    f32[2 * 256 + 5] = Number.NaN;
    const result = await pool.run({ srcType: GGMLType.F32, dstType: GGMLType.Q4_K, nrows: 4, ncols: 256, data: f32.buffer, imatrix: null });
    expect(result).toEqual({ nonFiniteRow: 2 });
  });
});
