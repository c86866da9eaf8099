// The llama_model_quantize oracle itself works: the bundled model quantized to Q8_0 has every
// matrix in Q8_0, the 1-D norms untouched, the exact size the types imply, and the right file type.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { llamaQuantize, oracleLoadImatrix, oracleReadHeader } from "./oracle/llama.js";

const MODEL = path.resolve(__dirname, "../models/tinyllama-16l-f16.gguf");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-oracle-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const pad32 = (n: number) => Math.ceil(n / 32) * 32;

describe("llama_model_quantize oracle", () => {
  it("quantizes the bundled model to Q8_0", () => {
    const out = path.join(tmp, "q8.gguf");
    llamaQuantize(MODEL, out, { ftype: "Q8_0", threads: 2 });
    const input = oracleReadHeader(MODEL);
    const output = oracleReadHeader(out);
    expect(output.fileType).toBe(7); // LLAMA_FTYPE_MOSTLY_Q8_0
    expect(output.tensors.map((t) => t.name).sort()).toEqual(input.tensors.map((t) => t.name).sort());
    let dataBytes = 0;
    for (const t of output.tensors) {
      const src = input.tensors.find((x) => x.name === t.name)!;
      const isMatrix = src.type === 1; // the F16 tensors are the 2-D ones, the F32 ones are norms
      expect(t.type, t.name).toBe(isMatrix ? 8 : 0);
      // F16 → Q8_0: 2 bytes per weight → 34 bytes per 32 weights
      expect(t.size, t.name).toBe(isMatrix ? (src.size / 2 / 32) * 34 : src.size);
      expect(t.offset, t.name).toBe(dataBytes);
      dataBytes += pad32(t.size);
    }
    expect(fs.statSync(out).size).toBe(output.dataOffset + dataBytes);
  });

  it("throws with llama.cpp's reason on a missing input", () => {
    expect(() => llamaQuantize(path.join(tmp, "nope.gguf"), path.join(tmp, "x.gguf"), { ftype: "Q8_0" })).toThrow(
      /llama_model_quantize failed/,
    );
  });

  it("loads the legacy and the GGUF imatrix of the benchmark model alike", () => {
    const dat = path.resolve(__dirname, "fixtures/imatrix/imatrix.dat");
    const gguf = path.resolve(__dirname, "fixtures/imatrix/imatrix.gguf");
    const a = oracleLoadImatrix(dat);
    const b = oracleLoadImatrix(gguf);
    expect(a.vectors.size).toBe(112); // 16 layers × 7 matrices
    expect([...a.vectors.keys()].sort()).toEqual([...b.vectors.keys()].sort());
    for (const [name, v] of a.vectors) expect(Buffer.from(b.vectors.get(name)!.buffer).equals(Buffer.from(v.buffer)), name).toBe(true);
  });
});
