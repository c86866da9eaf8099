// Fixed vectors from llama.cpp for the low-bit types (test/fixtures/lowbit/<type>, written by
// scripts/gen-golden-lowbit.ts from the live oracle): hquant's kernels must give the same quantized
// bytes and the same dequantized floats, with an importance matrix and, where ggml allows it, without.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { GGMLType, typeByName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, quantizeRows } from "../src/quant/kernels.js";
import { LOWBIT_DIR, REQUIRES_IMATRIX, goldenCases, readF32 } from "../scripts/gen-golden-lowbit.js";
import { expectSameBytes } from "./kernel-test-util.js";

const TYPES = fs.existsSync(LOWBIT_DIR) ? fs.readdirSync(LOWBIT_DIR).sort() : [];

describe.each(TYPES)("low-bit golden vectors: %s", (tname) => {
  const type = typeByName(tname)!.id as GGMLType;
  const modes = REQUIRES_IMATRIX.has(tname) ? ["imat"] : ["noimat", "imat"];
  it.each(goldenCases().flatMap((c) => modes.map((m) => [c.name, m, c] as const)))("case %s %s", (name, mode, c) => {
    const input = readF32(c.input);
    const want = fs.readFileSync(path.join(LOWBIT_DIR, tname, `${name}_${mode}.q.bin`));
    const got = quantizeRows(type, input, c.nrows, c.ncols, mode === "imat" ? readF32(c.imatrix) : null);
    expectSameBytes(type, `case ${name} ${mode}`, got, new Uint8Array(want), c.ncols);
    const deq = dequantizeRows(type, got, c.nrows, c.ncols);
    const wantDeq = fs.readFileSync(path.join(LOWBIT_DIR, tname, `${name}_${mode}.deq_f32.bin`));
    expect(Buffer.from(deq.buffer).equals(wantDeq)).toBe(true);
  });
});

describe("low-bit golden vectors", () => {
  const LOW_BIT = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "tq1_0", "tq2_0", "mxfp4", "nvfp4", "q1_0", "q2_0"];
  it("exist for every low-bit type that has a kernel", () => {
    const c = goldenCases()[0]!;
    const withKernel = LOW_BIT.filter((t) => {
      try {
        quantizeRows(typeByName(t)!.id as GGMLType, readF32(c.input), c.nrows, c.ncols, readF32(c.imatrix));
        return true;
      } catch (e) {
        if (/^no kernel for type/.test((e as Error).message)) return false;
        throw e;
      }
    });
    expect(TYPES.filter((t) => LOW_BIT.includes(t))).toEqual(withKernel.sort());
  });
});
