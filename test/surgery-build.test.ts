// Layer surgery through the real build: the pool computes interpolated / merged tensors in f32 and
// quantizes them; copies are renamed. Checked against llama_model_quantize (on the input, or on an
// input rearranged with the GGUF writer), against the formulas on a synthetic F32 model, and in
// node-llama-cpp (a surgered Q4_K_M model loads and generates; `hquant plan` sizes it exactly).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { planWithOptions } from "../src/cli/commands/plan.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import type { GGUFModel, TensorInfo } from "../src/gguf/model.js";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { planModel } from "../src/plan/planner.js";
import { resolveSchedule, type ScheduleFile } from "../src/plan/schedule.js";
import { formatPlan, planJson } from "../src/plan/summary.js";
import { QuantizePool } from "../src/pool/index.js";
import { applySurgery, surgeryMetadata, surgeryTensors, type SurgeryOp } from "../src/surgery/index.js";
import { firstDifference, IMATRIX_GGUF, MODEL } from "./build-util.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { generateInLlamaCpp } from "./oracle/generate.js";
import { llamaQuantize, oracleLoadImatrix, oracleReadHeader } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-surgery-build-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Builds `input` with a schedule of `ftype` + `surgery` (no hquant.* keys unless asked). */
async function build(input: string, output: string, ftype: string, surgery: SurgeryOp[], extra: { imatrix?: string; hquant?: boolean } = {}) {
  const file: ScheduleFile = { ftype, surgery };
  return buildModel({
    input,
    output,
    pool,
    imatrix: extra.imatrix,
    hquant: extra.hquant ? { version: "test" } : false,
    schedule: (m) => resolveSchedule(file, mixtureHParams(m.kv).nLayer, "s.json"),
  });
}

function expectSameFile(ref: string, ours: string): void {
  const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
  expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
}

async function tensorF32(model: GGUFModel, reader: TensorReader, name: string): Promise<Float32Array> {
  const t = model.tensors.find((x) => x.name === name)!;
  expect(t.type).toBe(GGMLType.F32);
  const bytes = await reader.read(t);
  return new Float32Array(bytes.slice().buffer);
}

/** Same tensor infos and data (the metadata may differ: quantize.imatrix.* keys). */
function expectSameTensors(ref: string, ours: string): void {
  const diff = firstDifference(ref, ours);
  expect(diff.startsWith("metadata"), diff).toBe(true);
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe("planner wiring", () => {
  const surgery: SurgeryOp[] = [{ op: "delete", layers: [14] }, { op: "interpolate", a: 7, b: 8, alpha: 0.5, after: 7 }];

  it("per-layer types refer to the final layer list", async () => {
    const model = await openModel(MODEL);
    // 16 input layers → 16 final layers here (one deleted, one inserted): type the inserted layer 8
    const layers: [number, string][] = [...Array(16).keys()].map((l) => [l, l === 8 ? "Q8_0" : "Q4_K_S"]);
    const plan = planModel(model, resolveSchedule({ layers, surgery }, 16, "s.json"), MODEL);
    expect(plan.tensors.find((t) => t.name === "blk.8.attn_q.weight")!.dstType).toBe(GGMLType.Q8_0);
    expect(plan.surgery!.tensors.find((t) => t.name === "blk.8.attn_q.weight")!.inputs).toEqual(["blk.7.attn_q.weight", "blk.8.attn_q.weight"]);
    // a list for the input's 16 layers does not fit a 15-layer result
    expect(() => resolveSchedule({ layers, surgery: [{ op: "delete", layers: [3] }] }, 16, "s.json")).toThrow(
      "s.json: layers: the schedule lists 16 layers (0-15) but the model after surgery has 15; use depth entries or set \"resample\": true",
    );
  });

  it("a surgery-only schedule takes its types from --ftype / --preset, and not alone", () => {
    const file = path.join(tmp, "only-surgery.json");
    fs.writeFileSync(file, JSON.stringify({ surgery }));
    const s = scheduleFromOptions({ schedule: file, preset: "Q4_K_H" }, 16);
    expect(s.name).toBe("Q4_K_H+only-surgery.json");
    expect(s.layerFtypes.length).toBe(16);
    expect(s.surgery).toEqual(surgery);
    expect(() => scheduleFromOptions({ schedule: file }, 16)).toThrow(
      `${file}: ftype: required when the schedule has no layers (or give --ftype / --preset / --layer-types)`,
    );
    const typed = path.join(tmp, "typed.json");
    fs.writeFileSync(typed, JSON.stringify({ ftype: "Q6_K", surgery }));
    // --ftype wins over the schedule's ftype (command-line options win); a preset does not mix with a typed schedule
    const over = scheduleFromOptions({ schedule: typed, ftype: "Q4_K_M" }, 16);
    expect([over.name, over.ftype, new Set(over.layerFtypes)]).toEqual(["Q4_K_M+typed.json", "Q4_K_M", new Set(["Q4_K_M"])]);
    expect(() => scheduleFromOptions({ schedule: typed, preset: "Q4_K_H" }, 16)).toThrow("--preset and a schedule with types exclude each other; give one");
    const bad = path.join(tmp, "bad.json");
    fs.writeFileSync(bad, JSON.stringify({ surgery: [{ op: "swap", a: 1 }] }));
    expect(() => scheduleFromOptions({ schedule: bad, ftype: "Q4_K_M" }, 16)).toThrow(`${bad}: surgery[0].b: required`);
    fs.writeFileSync(bad, JSON.stringify({ surgery: [{ op: "delete", layers: [16] }] }));
    expect(() => scheduleFromOptions({ schedule: bad, ftype: "Q4_K_M" }, 16)).toThrow(/^.*bad\.json: surgery\[0\]\.layers.*16/);
  });

  it("plan shows both numberings, in text and --json", async () => {
    const model = await openModel(MODEL);
    const file = path.join(tmp, "plan-surgery.json");
    fs.writeFileSync(file, JSON.stringify({ surgery }));
    const { plan, sizes } = planWithOptions(model, { schedule: file, ftype: "Q4_K_M" }, MODEL);
    const text = formatPlan(plan, sizes, "m.gguf").split("\n");
    expect(text[0]).toBe("m.gguf: llama, 16 layers (after surgery; the input has 16), 147 tensors");
    const at = text.indexOf("layer surgery: 16 input layers → 16 layers (final ← source)");
    expect(text.slice(at + 1, at + 5)).toEqual(["    0-7 ← 0-7", "      8 ← lerp(7, 8, 0.5)", "   9-14 ← 8-13", "     15 ← 15"]);
    const json = planJson(plan, sizes, "m.gguf") as { surgery: { ops: SurgeryOp[]; inputLayers: number; layers: { layer: number; sources: number[]; recipe: string; changed: boolean }[] } };
    expect(json.surgery.ops).toEqual(surgery);
    expect(json.surgery.layers[8]).toEqual({ layer: 8, sources: [7, 8], recipe: "lerp(7, 8, 0.5)", changed: true });
    expect(json.surgery.layers[14]).toEqual({ layer: 14, sources: [13], recipe: "13", changed: true });
    expect(json.surgery.layers[3]).toEqual({ layer: 3, sources: [3], recipe: "3", changed: false });
  });
});

describe("computed layers that equal their source are quantized exactly as llama.cpp", () => {
  it("merge(5, copy of 5), lerp(9, copy of 9, 0.5) and lerp(3, 12, α=0): Q4_K_M + imatrix = llama_model_quantize of the input", async () => {
    // every op pair restores 16 layers; layer 5 = 5 + (5 − 5), layer 9 = 0.5·9 + 0.5·9 are computed in
    // the pool (exact in f32) and their imatrix entries are averages of equal vectors
    const surgery: SurgeryOp[] = [
      { op: "duplicate", layer: 5, after: 5 },
      { op: "merge", from: 5, count: 2 },
      { op: "duplicate", layer: 9, after: 9 },
      { op: "interpolate", a: 9, b: 10, alpha: 0.5, after: 10 },
      { op: "delete", layers: [9, 10] },
      { op: "interpolate", a: 3, b: 12, alpha: 0, after: 3 },
      { op: "delete", layers: [3] },
    ];
    const recipes = applySurgery(16, surgery);
    expect(recipes[5]).toEqual({ kind: "merge", base: { kind: "copy", src: 5 }, others: [{ kind: "copy", src: 5 }] });
    expect(recipes[9]!.kind).toBe("interpolate");
    expect(recipes[3]).toEqual({ kind: "copy", src: 3 });

    const ref = path.join(tmp, "identity.llama.gguf");
    const ours = path.join(tmp, "identity.hquant.gguf");
    llamaQuantize(MODEL, ref, { ftype: "Q4_K_M", threads: 2, imatrixFile: IMATRIX_GGUF });
    const result = await build(MODEL, ours, "Q4_K_M", surgery, { imatrix: IMATRIX_GGUF });
    expect(result.plan.surgery?.tensors.filter((t) => t.computed).map((t) => t.name).sort()).toEqual(
      // 9 tensors per layer, but merge copies the base layer's norms
      [...["attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up"].map((s) => `blk.5.${s}.weight`),
        ...["attn_k", "attn_norm", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_norm", "ffn_up"].map((s) => `blk.9.${s}.weight`)].sort(),
    );
    expectSameFile(ref, ours);
  });
});

describe("copies (delete, swap, duplicate) = llama_model_quantize of the rearranged input", () => {
  it("Q4_K_M", async () => {
    const surgery: SurgeryOp[] = [
      { op: "delete", layers: [14] },
      { op: "swap", a: 2, b: 9 },
      { op: "duplicate", layer: 5, after: 10 },
    ];
    // the rearranged F16 input, written with the GGUF writer from the input's bytes
    const model = await openModel(MODEL);
    const recipes = applySurgery(16, surgery);
    const st = surgeryTensors(model.tensors, recipes);
    expect(st.some((t) => t.computed)).toBe(false);
    const meta = surgeryMetadata(model.kv, recipes);
    const rearranged = path.join(tmp, "rearranged-f16.gguf");
    const byName = new Map(model.tensors.map((t) => [t.name, t]));
    const writer = await GGUFFileWriter.create(rearranged, meta.kv, st.map((t) => ({ name: t.name, shape: t.shape, type: t.type })));
    const reader = new TensorReader(model);
    try {
      for (const t of st) await writer.writeTensor(await reader.read(byName.get(t.inputs[0]!)!));
      await writer.finish();
    } finally {
      await reader.close();
    }
    // blk.2 of the rearranged model is the input's blk.9; blk.11 the input's blk.5
    expect(st.find((t) => t.name === "blk.2.ffn_up.weight")!.inputs).toEqual(["blk.9.ffn_up.weight"]);
    expect(st.find((t) => t.name === "blk.11.attn_q.weight")!.inputs).toEqual(["blk.5.attn_q.weight"]);

    const ref = path.join(tmp, "copies.llama.gguf");
    const ours = path.join(tmp, "copies.hquant.gguf");
    llamaQuantize(rearranged, ref, { ftype: "Q4_K_M", threads: 2 });
    await build(MODEL, ours, "Q4_K_M", surgery);
    expectSameFile(ref, ours);

    // with an imatrix: llama.cpp given each source tensor's vector under its new name
    const vectors = oracleLoadImatrix(IMATRIX_GGUF).vectors;
    const renamed = new Map(st.filter((t) => vectors.has(t.inputs[0]!)).map((t) => [t.name, vectors.get(t.inputs[0]!)!]));
    expect(renamed.get("blk.2.ffn_up.weight")).toBe(vectors.get("blk.9.ffn_up.weight"));
    const refImat = path.join(tmp, "copies-imat.llama.gguf");
    const oursImat = path.join(tmp, "copies-imat.hquant.gguf");
    llamaQuantize(rearranged, refImat, { ftype: "Q4_K_M", threads: 2, imatrix: renamed });
    await build(MODEL, oursImat, "Q4_K_M", surgery, { imatrix: IMATRIX_GGUF });
    expectSameTensors(refImat, oursImat);
    // and the imatrix mattered: without the renaming, blk.2 would be quantized differently
    expect(firstDifference(ref, refImat)).not.toMatch(/^metadata/);
  });
});

describe("F32 arithmetic end to end (synthetic F32 model, F32 output)", () => {
  it("merge equals θ_l + (θ_l+1 − θ_l) + (θ_l+2 − θ_l) with base norms; interpolate equals (1−α)·a + α·b", async () => {
    const input = await makeModel({ ...SMALL_LLAMA, nLayer: 5, dtype: "f32", seed: 7 });
    const out = path.join(tmp, "synthetic-f32.gguf");
    // [0, merge(1,2,3), 4] then lerp(0, 2, 0.3) after 0 → [0, lerp(0, 4, 0.3), merge(1,2,3), 4]
    await build(input, out, "F32", [
      { op: "merge", from: 1, count: 3 },
      { op: "interpolate", a: 0, b: 2, alpha: 0.3, after: 0 },
    ]);
    const src = await openModel(input);
    const dst = await openModel(out);
    const srcReader = new TensorReader(src);
    const dstReader = new TensorReader(dst);
    try {
      expect(dst.kv.find((e) => e.key === "llama.block_count")!.value).toBe(4);
      const suffixes = src.tensors.filter((t: TensorInfo) => t.name.startsWith("blk.0.")).map((t) => t.name.slice("blk.0.".length));
      expect(suffixes.length).toBeGreaterThan(5);
      const wa = Math.fround(1 - 0.3);
      const wb = Math.fround(0.3);
      for (const s of suffixes) {
        const [l0, l1, l2, l3, l4] = await Promise.all([0, 1, 2, 3, 4].map((l) => tensorF32(src, srcReader, `blk.${l}.${s}`)));
        const merged = s.includes("norm")
          ? l1!
          : l1!.map((b, i) => Math.fround(Math.fround(b + Math.fround(l2![i]! - b)) + Math.fround(l3![i]! - b)));
        const lerp = l0!.map((a, i) => Math.fround(Math.fround(wa * a) + Math.fround(wb * l4![i]!)));
        expect(bits(await tensorF32(dst, dstReader, `blk.0.${s}`))).toEqual(bits(l0!));
        expect(bits(await tensorF32(dst, dstReader, `blk.1.${s}`))).toEqual(bits(lerp));
        expect(bits(await tensorF32(dst, dstReader, `blk.2.${s}`))).toEqual(bits(merged));
        expect(bits(await tensorF32(dst, dstReader, `blk.3.${s}`))).toEqual(bits(l4!));
      }
      // the merge is not a copy of its base: the formula differs from θ_l somewhere
      const q1 = await tensorF32(src, srcReader, "blk.1.attn_q.weight");
      expect(bits(await tensorF32(dst, dstReader, "blk.2.attn_q.weight"))).not.toEqual(bits(q1));
    } finally {
      await srcReader.close();
      await dstReader.close();
    }
  });
});

describe("a surgered Q4_K_M model in llama.cpp", () => {
  it("has the planned size, block_count 15, and loads and generates", async () => {
    const surgery: SurgeryOp[] = [
      { op: "delete", layers: [14] },
      { op: "duplicate", layer: 5, after: 10 },
      { op: "interpolate", a: 7, b: 8, alpha: 0.5, after: 7 },
      { op: "merge", from: 2, count: 3 },
    ];
    const scheduleFile = path.join(tmp, "surgery.json");
    fs.writeFileSync(scheduleFile, JSON.stringify({ surgery }));
    const out = path.join(tmp, "surgered-Q4_K_M.gguf");
    const planned = planWithOptions(await openModel(MODEL), { schedule: scheduleFile, ftype: "Q4_K_M" }, MODEL);
    const result = await buildModel({
      input: MODEL,
      output: out,
      pool,
      hquant: { version: "test" },
      schedule: planned.plan.schedule,
    });
    expect(result.fileSize).toBe(planned.sizes.fileBytes);
    expect(fs.statSync(out).size).toBe(planned.sizes.fileBytes);
    const header = await openModel(out);
    expect(header.kv.find((e) => e.key === "llama.block_count")!.value).toBe(15);
    expect(header.kv.find((e) => e.key === "hquant.surgery")!.value).toBe(JSON.stringify(surgery));
    expect(oracleReadHeader(out).tensors.length).toBe(15 * 9 + 3);

    const generated = await generateInLlamaCpp(out, 8);
    expect(generated.tensorCount).toBe(138);
    expect(generated.tokens.length).toBe(8);
    expect(generated.text.trim().length).toBeGreaterThan(0);
  });
});
