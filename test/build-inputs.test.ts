// Inputs beyond one plain F32/F16/BF16 file: a quantized model is only re-quantized on request
// (and then byte-identical with llama.cpp's allow_requantize); a NaN in the weights is reported
// with its tensor and row, leaving no output; split models are written in gguf-split's layout and
// read back as the whole model.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { UserError } from "../src/errors.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { firstDifference, MODEL } from "./build-util.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { llamaQuantize } from "./oracle/llama.js";
import { llamaQuantizeIsolated } from "./oracle/llama-isolated.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-inputs-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const q4km = (m: { kv: Parameters<typeof mixtureHParams>[0] }) => uniformSchedule("Q4_K_M", mixtureHParams(m.kv).nLayer);

describe("re-quantizing", () => {
  it("refuses a Q8_0 input without allowRequantize, and matches llama.cpp with it", async () => {
    const q8 = path.join(tmp, "q8.gguf");
    llamaQuantize(MODEL, q8, { ftype: "Q8_0", threads: 2 });
    const out = path.join(tmp, "out");
    fs.mkdirSync(out);
    const err = await buildModel({ input: q8, output: path.join(out, "x.gguf"), pool, schedule: q4km }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${q8}: tensor output.weight is q8_0: requantizing is disabled (use --allow-requantize)`);
    expect(fs.readdirSync(out)).toEqual([]);

    const ref = path.join(tmp, "requant.llama.gguf");
    const ours = path.join(out, "requant.hquant.gguf");
    llamaQuantize(q8, ref, { ftype: "Q4_K_M", threads: 2, allowRequantize: true });
    const warnings: string[] = [];
    await buildModel({ input: q8, output: ours, pool, schedule: q4km, allowRequantize: true, onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual(["re-quantizing q8_0 tensors: quality is lower than quantizing from F16/F32"]);
    const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
    expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
  });
});

describe("non-finite weights", () => {
  it("names the tensor and the row, and writes nothing", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, nEmbd: 256, nFf: 512, nVocab: 128, dtype: "f32", seed: 4, dir: tmp });
    const header = await readHeaderAt(model);
    const t = header.tensors.find((x) => x.name === "blk.1.ffn_up.weight")!;
    const bytes = Buffer.from(fs.readFileSync(model));
    bytes.writeFloatLE(Number.NaN, header.dataOffset + t.offset + 4 * (t.shape[0]! * 300 + 17)); // row 300
    const bad = path.join(tmp, "nan.gguf");
    fs.writeFileSync(bad, bytes);
    const out = path.join(tmp, "nan-out");
    fs.mkdirSync(out);
    const err = await buildModel({ input: bad, output: path.join(out, "x.gguf"), pool, schedule: q4km }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${bad}: tensor blk.1.ffn_up.weight: row 300 contains NaN or Inf`);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe("non-finite values in a tensor that is copied unchanged", () => {
  it("llama.cpp's loader validates every tensor it reads (an F32 norm too): both refuse, hquant names the tensor and row", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, nEmbd: 256, nFf: 512, nVocab: 128, dtype: "f32", seed: 5, dir: tmp });
    const header = await readHeaderAt(model);
    const t = header.tensors.find((x) => x.name === "blk.1.ffn_norm.weight")!;
    expect(t.type).toBe(GGMLType.F32);
    const bytes = Buffer.from(fs.readFileSync(model));
    bytes.writeFloatLE(Number.POSITIVE_INFINITY, header.dataOffset + t.offset + 4 * 7);
    const bad = path.join(tmp, "inf-norm.gguf");
    fs.writeFileSync(bad, bytes);
    const out = path.join(tmp, "inf-norm-out");
    fs.mkdirSync(out);
    const [ref] = await llamaQuantizeIsolated([{ input: bad, output: path.join(out, "ref.gguf"), opts: { ftype: "Q4_K_M", threads: 1 } }]);
    expect(ref!.status).toBe("failed");
    expect((ref as { error: string }).error).toContain("tensor 'blk.1.ffn_norm.weight' has invalid data");
    fs.rmSync(path.join(out, "ref.gguf"), { force: true });
    const err = await buildModel({ input: bad, output: path.join(out, "x.gguf"), pool, schedule: q4km }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${bad}: tensor blk.1.ffn_norm.weight: row 0 contains NaN or Inf`);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe("weights llama.cpp's quantizer aborts on", () => {
  it("names the tensor and the row, and writes nothing", async () => {
    // IQ3_S's neighbour search overflows on values this large and ggml asserts; hquant refuses
    const model = await makeModel({ ...SMALL_LLAMA, nEmbd: 256, nFf: 512, nVocab: 128, dtype: "f32", seed: 5, dir: tmp });
    const header = await readHeaderAt(model);
    const t = header.tensors.find((x) => x.name === "blk.0.ffn_up.weight")!;
    const bytes = Buffer.from(fs.readFileSync(model));
    for (let c = 0; c < t.shape[0]!; c++) bytes.writeFloatLE(c % 2 ? 1e19 : -1e19, header.dataOffset + t.offset + 4 * (t.shape[0]! * 41 + c)); // row 41
    const bad = path.join(tmp, "huge.gguf");
    fs.writeFileSync(bad, bytes);
    const out = path.join(tmp, "huge-out");
    fs.mkdirSync(out);
    const schedule = (m: { kv: Parameters<typeof mixtureHParams>[0] }) =>
      uniformSchedule("Q4_K_M", mixtureHParams(m.kv).nLayer, { tensorTypes: [{ pattern: "ffn_up", type: GGMLType.IQ3_S }] });
    const err = await buildModel({ input: bad, output: path.join(out, "x.gguf"), pool, schedule }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `${bad}: tensor blk.0.ffn_up.weight: row 41 cannot be quantized to iq3_s: its values are too large (llama.cpp's quantizer aborts on it)`,
    );
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe("split models", () => {
  it("writes split output, and reads split input as the whole model", async () => {
    const dir = path.join(tmp, "split");
    fs.mkdirSync(dir);
    // F16 → F16 copies every tensor: a split copy of the bundled model, in shards of ≤ 8 MB of data
    const f16 = (m: { kv: Parameters<typeof mixtureHParams>[0] }) => uniformSchedule("F16", mixtureHParams(m.kv).nLayer);
    const split = await buildModel({ input: MODEL, output: path.join(dir, "f16.gguf"), pool, schedule: f16, splitMaxSize: 8_000_000 });
    expect(split.outputs.map((p) => path.basename(p))).toEqual(["f16-00001-of-00004.gguf", "f16-00002-of-00004.gguf", "f16-00003-of-00004.gguf", "f16-00004-of-00004.gguf"]);
    expect(fs.readdirSync(dir).sort()).toEqual(split.outputs.map((p) => path.basename(p)));
    // quantizing the shards gives exactly llama.cpp's Q4_K_M of the original file
    const ref = path.join(tmp, "split-q4km.llama.gguf");
    const ours = path.join(tmp, "split-q4km.hquant.gguf");
    llamaQuantize(MODEL, ref, { ftype: "Q4_K_M", threads: 2 });
    await buildModel({ input: split.outputs[0]!, output: ours, pool, schedule: q4km });
    const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
    expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
  });
});
