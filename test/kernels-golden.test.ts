// Fixed vectors from llama.cpp (test/fixtures/kquant, copied from shared/golden/kquant): every kernel
// must give the same quantized bytes and the same dequantized floats, with and without imatrix.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { GGMLType, typeByName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, quantizeRows } from "../src/quant/kernels.js";

const DIR = path.join(__dirname, "fixtures/kquant");
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, "manifest.json"), "utf8"));

function f32(file: string): Float32Array {
  const b = fs.readFileSync(path.join(DIR, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const TYPES = Object.keys(manifest.types) as string[];

describe.each(Object.entries(manifest.cases) as [string, any][])("golden case %s", (caseName, c) => {
  const input = f32(c.input);
  const imatrix = f32(c.imatrix);
  it.each(TYPES.flatMap((t) => [[t, "noimat"], [t, "imat"]]))("%s %s", (tname, mode) => {
    const type = typeByName(tname)!.id as GGMLType;
    const expected = fs.readFileSync(path.join(DIR, `${caseName}_${tname}_${mode}.q.bin`));
    const got = quantizeRows(type, input, c.nrows, c.ncols, mode === "imat" ? imatrix : null);
    expect(Buffer.from(got).equals(expected)).toBe(true);
    const deq = dequantizeRows(type, got, c.nrows, c.ncols);
    const expDeq = fs.readFileSync(path.join(DIR, `${caseName}_${tname}_${mode}.deq_f32.bin`));
    expect(Buffer.from(deq.buffer).equals(expDeq)).toBe(true);
  });
});
