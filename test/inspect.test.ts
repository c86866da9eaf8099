// `hquant inspect`: the report on the bundled model (facts checked against @huggingface/gguf's
// independent parse and the file system), layer map columns, hquant.* keys, split models, CLI.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gguf } from "@huggingface/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { typeName } from "../src/gguf/ggml-types.js";
import { inspectModel, renderReport, reportToJson } from "../src/gguf/inspect.js";
import { GGUFValueType } from "../src/gguf/model.js";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { createGGUFOutput } from "../src/gguf/split.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLED = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-inspect-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("inspect report", () => {
  it("bundled tinyllama-16l-f16: counts, sizes, types, layer map", async () => {
    const r = inspectModel(await openModel(BUNDLED));
    const hf = await gguf(BUNDLED, { allowLocalFile: true });
    expect(r.architecture).toBe("llama");
    expect(r.name).toBe((hf.metadata as Record<string, unknown>)["general.name"]);
    expect(r.parameterCount).toBe(14_688_512);
    expect(r.layerCount).toBe(16);
    expect(r.contextLength).toBe(512);
    expect(r.tensorCount).toBe(147);
    expect(r.fileSize).toBe(statSync(BUNDLED).size);
    // per-type table from the independent parse
    const expected = new Map<string, { tensors: number; params: number }>();
    for (const t of hf.tensorInfos) {
      const row = expected.get(typeName(t.dtype)) ?? { tensors: 0, params: 0 };
      row.tensors++;
      row.params += t.shape.reduce((a, b) => a * Number(b), 1);
      expected.set(typeName(t.dtype), row);
    }
    expect(r.types.map((t) => t.type)).toEqual(["f32", "f16"]);
    for (const t of r.types) {
      expect({ tensors: t.tensors, params: t.params }).toEqual(expected.get(t.type));
      expect(t.bytes).toBe(t.params * (t.type === "f32" ? 4 : 2));
    }
    expect(r.types.find((t) => t.type === "f32")!.tensors).toBe(33);
    expect(r.bitsPerWeight).toBeCloseTo((r.tensorBytes * 8) / 14_688_512, 12);
    expect(r.tensorBytes).toBe(r.fileSize - Number(hf.tensorDataOffset)); // every tensor is a multiple of 32 bytes: no padding
    expect(r.layerColumns).toEqual(["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]);
    expect(r.layers.map((l) => l.layer)).toEqual([...Array(16).keys()]);
    for (const l of r.layers) {
      for (const k of r.layerColumns) expect(l.types[k]).toBe(k.endsWith("_norm") ? "f32" : "f16");
    }
    expect(r.otherTensors.map((t) => t.name)).toEqual(["token_embd.weight", "output_norm.weight", "output.weight"]);
    expect(r.hquant).toEqual({});
    const text = renderReport(r);
    expect(text).toContain("parameters       14,688,512");
    expect(text).toMatch(/^layer\s+attn_norm\s+attn_q\s+attn_k\s+attn_v\s+attn_output\s+ffn_norm\s+ffn_gate\s+ffn_up\s+ffn_down$/m);
    expect(text).toMatch(/^15\s+f32\s+f16\s+f16\s+f16\s+f16\s+f32\s+f16\s+f16\s+f16$/m);
  });

  it("qwen3 MoE columns in the fixed order; hquant.* keys shown raw", async () => {
    const file = await makeModel({
      ...SMALL_LLAMA,
      arch: "qwen3",
      nExpert: 4,
      seed: 5,
      dir: tmp,
      extraKV: [
        { key: "hquant.preset", type: GGUFValueType.STRING, value: "Q4_K_H" },
        { key: "hquant.seed", type: GGUFValueType.UINT64, value: 2n ** 60n },
      ],
    });
    const r = inspectModel(await openModel(file));
    expect(r.architecture).toBe("qwen3moe");
    expect(r.layerColumns).toEqual([
      "attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm", "attn_output",
      "ffn_norm", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps",
    ]);
    expect(r.hquant).toEqual({ "hquant.preset": "Q4_K_H", "hquant.seed": 2n ** 60n });
    expect(JSON.parse(reportToJson(r)).hquant).toEqual({ "hquant.preset": "Q4_K_H", "hquant.seed": String(2n ** 60n) });
    expect(renderReport(r)).toMatch(/^hquant\.preset\s+"Q4_K_H"$/m);
  });

  it("split models: all shards counted", async () => {
    const src = await openModel(await makeModel({ ...SMALL_LLAMA, seed: 6, dir: tmp }));
    const out = await createGGUFOutput(path.join(tmp, "split.gguf"), src.kv, src.tensors, { splitMaxTensors: 8 });
    const reader = new TensorReader(src);
    for (const t of src.tensors) await out.writeTensor(await reader.read(t));
    await out.finish();
    await reader.close();
    const whole = inspectModel(src);
    const split = inspectModel(await openModel(out.paths[1]));
    expect(split.shards).toBe(out.paths.length);
    expect(split.fileSize).toBe(out.paths.reduce((n, p) => n + statSync(p).size, 0));
    expect({ ...split, file: "", shards: 0, fileSize: 0 }).toEqual({ ...whole, file: "", shards: 0, fileSize: 0 });
  });
});

describe("hquant inspect CLI", () => {
  const bin = path.join(ROOT, "bin/hquant.js");
  it("--json gives the report as JSON", async () => {
    const r = spawnSync(process.execPath, [bin, "inspect", BUNDLED, "--json"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json).toEqual(JSON.parse(reportToJson(inspectModel(await openModel(BUNDLED)))));
    expect(json.parameterCount).toBe(14_688_512);
    expect(json.layers).toHaveLength(16);
  });

  it("text output", () => {
    const r = spawnSync(process.execPath, [bin, "inspect", BUNDLED], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("architecture     llama");
    expect(r.stdout).toContain("tensors          147");
  });

  it("a missing file: one line, exit 1", () => {
    const r = spawnSync(process.execPath, [bin, "inspect", path.join(tmp, "nope.gguf")], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`hquant: ${path.join(tmp, "nope.gguf")}: no such file\n`);
  });
});
