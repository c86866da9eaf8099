// buildModels (hquant release's one read pass) against buildModel run alone per output: every file
// byte for byte the same, from F16, BF16 and F32 inputs, with outputs that quantize (one task per
// chunk for all of them, the rows widened once, one of them written over the source rows when no
// output copies them), outputs that copy the source bytes, an output
// whose rows are wider than the source's (F32 from F16/BF16), importance vectors on some outputs
// only, and tensors of several chunks and slices. A row that cannot be quantized fails the pass
// naming its tensor and row, and leaves no output.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { buildModels, type MultiBuildOutput } from "../src/build/multi.js";
import { UserError } from "../src/errors.js";
import { GGMLType, rowSize } from "../src/gguf/ggml-types.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { convertRows } from "../src/quant/kernels.js";
import { firstDifference } from "./build-util.js";
import { makeModel, SMALL_LLAMA, syntheticImatrix, type FactoryOptions } from "./factory.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-multi-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const uniform = (ftype: FileTypeName) => (m: { kv: Parameters<typeof mixtureHParams>[0] }) => uniformSchedule(ftype, mixtureHParams(m.kv).nLayer);

// ffn_down rows of 1536 (21 rows a kernel slice, 170 a chunk: 2 chunks of 256 rows), token_embd and
// output of 1024 rows of 256 (1 chunk, 8 slices)
const MODEL: Omit<FactoryOptions, "dtype" | "seed"> = { ...SMALL_LLAMA, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 1536, nVocab: 1024 };

describe("buildModels: one read pass, every output as buildModel writes it alone", () => {
  it.each(["f16", "bf16", "f32"] as const)("from %s", async (dtype) => {
    const dir = path.join(tmp, dtype);
    fs.mkdirSync(dir);
    const input = await makeModel({ ...MODEL, dtype, seed: 11, dir });
    const imatrix = await syntheticImatrix(input, 5, dir);
    const specs: { ftype: FileTypeName; imatrix?: string }[] = [
      { ftype: "Q8_0" },
      { ftype: "Q4_K_M", imatrix },
      { ftype: "F32" }, // wider than an F16/BF16 source row; copied from F32
      { ftype: "F16" }, // copied from F16, narrower or as wide otherwise
      { ftype: "IQ4_XS", imatrix },
      { ftype: "Q3_K_M" },
    ];
    for (const s of specs) await buildModel({ input, output: path.join(dir, `alone-${s.ftype}.gguf`), pool, schedule: uniform(s.ftype), imatrix: s.imatrix });
    // every output; then without the one that copies the weights as they are (the input's own
    // type), so that one quantizing output writes over the source rows in the worker
    const passes = [specs, specs.filter((s) => s.ftype !== dtype.toUpperCase())];
    for (const [p, pass] of passes.entries()) {
      if (p > 0 && pass.length === specs.length) continue;
      const outputs: MultiBuildOutput[] = pass.map((s) => ({ output: path.join(dir, `multi${p}-${s.ftype}.gguf`), schedule: uniform(s.ftype), imatrix: s.imatrix }));
      const progress: number[] = [];
      const results = await buildModels({ input, outputs, pool, onProgress: (x) => progress.push(x.bytesDone) });
      expect(results.map((r) => r.outputs)).toEqual(outputs.map((o) => [o.output]));
      expect(progress.at(-1)).toBe(results[0]!.inputBytes);
      for (const s of pass) {
        const alone = path.join(dir, `alone-${s.ftype}.gguf`);
        const multi = path.join(dir, `multi${p}-${s.ftype}.gguf`);
        const same = fs.readFileSync(alone).equals(fs.readFileSync(multi));
        expect(same, same ? "" : `pass ${p}, ${s.ftype}: ${firstDifference(alone, multi)}`).toBe(true);
      }
    }
  });

  it("a NaN row in a tensor every output quantizes: its tensor and row, and no output", async () => {
    const dir = path.join(tmp, "nan");
    fs.mkdirSync(dir);
    const input = await makeModel({ ...MODEL, dtype: "f16", seed: 12, dir });
    const header = await readHeaderAt(input);
    const t = header.tensors.find((x) => x.name === "blk.1.ffn_down.weight")!;
    const bytes = Buffer.from(fs.readFileSync(input));
    bytes.writeUInt16LE(0x7e00, header.dataOffset + t.offset + 2 * (t.shape[0]! * 200 + 17)); // row 200: the second chunk
    const bad = path.join(dir, "nan.gguf");
    fs.writeFileSync(bad, bytes);
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    const outputs = (["Q8_0", "F32", "Q4_K_M"] as const).map((f) => ({ output: path.join(out, `${f}.gguf`), schedule: uniform(f) }));
    const err = await buildModels({ input: bad, outputs, pool }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${bad}: tensor blk.1.ffn_down.weight: row 200 contains NaN or Inf`);
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it("a row only one output's quantizer refuses (llama.cpp aborts on it) names that output's type", async () => {
    const dir = path.join(tmp, "huge");
    fs.mkdirSync(dir);
    const input = await makeModel({ ...MODEL, dtype: "f32", seed: 13, dir });
    const header = await readHeaderAt(input);
    const t = header.tensors.find((x) => x.name === "blk.0.ffn_up.weight")!;
    const bytes = Buffer.from(fs.readFileSync(input));
    for (let c = 0; c < t.shape[0]!; c++) bytes.writeFloatLE(c % 2 ? 1e19 : -1e19, header.dataOffset + t.offset + 4 * (t.shape[0]! * 41 + c)); // row 41
    const bad = path.join(dir, "huge.gguf");
    fs.writeFileSync(bad, bytes);
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    const iq3s = (m: { kv: Parameters<typeof mixtureHParams>[0] }) =>
      uniformSchedule("Q4_K_M", mixtureHParams(m.kv).nLayer, { tensorTypes: [{ pattern: "ffn_up", type: GGMLType.IQ3_S }] });
    const outputs = [
      { output: path.join(out, "q8.gguf"), schedule: uniform("Q8_0") },
      { output: path.join(out, "iq3s.gguf"), schedule: iq3s },
    ];
    const err = await buildModels({ input: bad, outputs, pool }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `${bad}: tensor blk.0.ffn_up.weight: row 41 cannot be quantized to iq3_s: its values are too large (llama.cpp's quantizer aborts on it)`,
    );
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe("QuantizePool.runMulti", () => {
  it("moves the source and every destination buffer to a worker and back, one output written over the source", async () => {
    const [nrows, ncols] = [64, 512];
    const src = new Uint8Array(nrows * ncols * 2);
    const view = new DataView(src.buffer);
    for (let i = 0; i < nrows * ncols; i++) view.setUint16(2 * i, 0x3000 + ((i * 2654435761) >>> 20) % 0x800, true); // finite f16 values
    const original = src.slice();
    const types = [GGMLType.Q4_K, GGMLType.F32, GGMLType.Q6_K];
    const imatrix = Float32Array.from({ length: ncols }, (_, c) => 0.5 + (c % 7) / 3);
    const dsts = [null, new ArrayBuffer(rowSize(GGMLType.F32, ncols) * nrows), new ArrayBuffer(rowSize(GGMLType.Q6_K, ncols) * nrows)];
    const data = src.buffer;
    const result = await pool.runMulti({
      srcType: GGMLType.F16,
      nrows,
      ncols,
      data,
      outputs: types.map((t, i) => ({ dstType: t, imatrix: i === 0 ? imatrix : null, dst: dsts[i] ?? null })),
    });
    expect(data.byteLength).toBe(0); // transferred
    expect(dsts.map((d) => d?.byteLength ?? 0)).toEqual([0, 0, 0]);
    if (!("source" in result)) throw new Error(`failed: ${JSON.stringify(result)}`);
    expect(result.outputs[0]).toBe(result.source); // written over the source
    types.forEach((t, i) => {
      const want = convertRows(GGMLType.F16, original, t, nrows, ncols, i === 0 ? imatrix : null);
      expect(Buffer.from(result.outputs[i]!, 0, want.length).equals(Buffer.from(want))).toBe(true);
    });
  });
});
