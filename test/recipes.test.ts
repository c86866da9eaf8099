// Published hybrid recipes as written on model cards: the QwQ-32B card's LAYER_TYPES with its FLAGS
// (as --layer-types, as the LAYER_TYPES environment variable, as a file) on a 64-layer model of
// QwQ-32B's dimensions, and the Llama-3.1-8B card's custom mixtures (examples/recipes/) on a
// 32-layer model of Llama-3.1-8B's. The models are header-only (factory: sparse data), so the real
// shapes cost nothing: plans read headers only.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plan } from "../src/index.js";
import { formatPlan } from "../src/plan/summary.js";
import { parseSchedule, resolveSchedule } from "../src/plan/schedule.js";
import { typeName } from "../src/gguf/ggml-types.js";
import { makeHeaderOnlyModel, type FactoryOptions } from "./factory.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-recipes-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** `hquant ARGS…` with extra environment, without blocking the worker. */
function hquantEnv(env: Record<string, string>, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const { LAYER_TYPES: _unset, ...base } = process.env;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...base, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

// --- the QwQ-32B card, verbatim (issue 26) ------------------------------------------------------

const QWQ_LAYER_TYPES = `[[0,"Q4_K_M"],[1,"Q4_K_S"],[2,"Q3_K_L"],[3,"Q3_K_M"],[4,"Q3_K_M"],[5,"Q3_K_M"],[6,"Q3_K_M"],
[7,"Q3_K_M"],[8,"Q3_K_M"],[9,"Q3_K_M"],[10,"Q3_K_M"],[11,"Q3_K_M"],[12,"Q3_K_M"],[13,"Q3_K_M"],[14,"Q3_K_M"],
[15,"Q3_K_M"],[16,"Q3_K_L"],[17,"Q3_K_M"],[18,"Q3_K_L"],[19,"Q3_K_M"],[20,"Q3_K_L"],[21,"Q3_K_M"],[22,"Q3_K_L"],
[23,"Q3_K_M"],[24,"Q3_K_L"],[25,"Q3_K_L"],[26,"Q3_K_L"],[27,"Q3_K_L"],[28,"Q3_K_L"],[29,"Q3_K_L"],[30,"Q3_K_L"],
[31,"Q3_K_L"],[32,"Q3_K_L"],[33,"Q3_K_L"],[34,"Q3_K_L"],[35,"Q3_K_L"],[36,"Q3_K_L"],[37,"Q3_K_L"],[38,"Q3_K_L"],
[39,"Q3_K_L"],[40,"Q4_K_S"],[41,"Q3_K_L"],[42,"Q4_K_S"],[43,"Q3_K_L"],[44,"Q4_K_S"],[45,"Q3_K_L"],[46,"Q4_K_S"],
[47,"Q3_K_L"],[48,"Q4_K_S"],[49,"Q4_K_S"],[50,"Q4_K_S"],[51,"Q4_K_S"],[52,"Q4_K_S"],[53,"Q4_K_S"],[54,"Q4_K_S"],
[55,"Q4_K_S"],[56,"Q4_K_M"],[57,"Q4_K_S"],[58,"Q4_K_M"],[59,"Q4_K_M"],[60,"Q4_K_M"],[61,"Q5_K_S"],[62,"Q5_K_M"],
[63,"Q6_K"]]`;
const QWQ_FLAGS = "--token-embedding-type Q4_K --output-tensor-type Q6_K --layer-types-high".split(" ");

/** QwQ-32B's dimensions in the factory's llama layout (the card's model is qwen2: the same tensors). */
const QWQ_32B: FactoryOptions = { arch: "llama", nLayer: 64, nEmbd: 5120, nHead: 40, nHeadKv: 8, nFf: 27648, nVocab: 152064, dtype: "bf16", tied: false, seed: 32 };
const LLAMA_31_8B: FactoryOptions = { arch: "llama", nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, nFf: 14336, nVocab: 128256, dtype: "bf16", tied: false, seed: 8 };

interface PlanJson {
  schedule: { name: string; ftype: string; fileTypeId: number; fileTypeFromLayers: boolean; layerFtypes: string[]; layerTypes: string[] };
  tensors: { name: string; dstType: string }[];
}

const typesOf = (j: PlanJson) => Object.fromEntries(j.tensors.map((t) => [t.name, t.dstType]));
const WARNING = "hquant: warning: --layer-types-high is ignored (a switch of the patched llama-quantize some model cards use; its meaning is not published)\n";

describe("the QwQ-32B card's LAYER_TYPES recipe with its FLAGS", () => {
  let model = "";
  let viaOption: PlanJson;
  beforeAll(() => {
    model = makeHeaderOnlyModel({ ...QWQ_32B, dir: tmp });
  });

  it("--layer-types \"$LAYER_TYPES\" $FLAGS: the card's types per layer, the base type the most frequent one (said so)", async () => {
    const r = await hquantEnv({}, "plan", model, "--layer-types", QWQ_LAYER_TYPES, ...QWQ_FLAGS, "--json", "-");
    expect(r.stderr).toBe(WARNING);
    expect(r.code).toBe(0);
    viaOption = JSON.parse(r.stdout) as PlanJson;
    expect(viaOption.schedule.layerFtypes).toEqual((JSON.parse(QWQ_LAYER_TYPES) as [number, string][]).map(([, f]) => f));
    // 25 Q3_K_L layers, 17 Q3_K_M, 14 Q4_K_S, …: Q3_K_L sets general.file_type (llama_ftype 13)
    expect(viaOption.schedule).toMatchObject({ ftype: "Q3_K_L", fileTypeId: 13, fileTypeFromLayers: true });
    const t = typesOf(viaOption);
    expect([t["token_embd.weight"], t["output.weight"]]).toEqual(["q4_K", "q6_K"]);
    const layer = (l: number) => ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"].map((k) => t[`blk.${l}.${k}.weight`]);
    expect(layer(0)).toEqual(["q4_K", "q4_K", "q6_K", "q4_K", "q4_K", "q4_K", "q6_K"]); // Q4_K_M, use_more_bits
    expect(layer(1)).toEqual(["q4_K", "q4_K", "q5_K", "q4_K", "q4_K", "q4_K", "q5_K"]); // Q4_K_S, first layers
    expect(layer(10)).toEqual(["q3_K", "q3_K", "q4_K", "q4_K", "q3_K", "q3_K", "q4_K"]); // Q3_K_M
    expect(layer(30)).toEqual(["q3_K", "q3_K", "q5_K", "q5_K", "q3_K", "q3_K", "q5_K"]); // Q3_K_L
    expect(layer(62)).toEqual(["q5_K", "q5_K", "q6_K", "q5_K", "q5_K", "q5_K", "q6_K"]); // Q5_K_M, last eighth
    expect(layer(63)).toEqual(["q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K"]); // Q6_K
  });

  it("the same types from the LAYER_TYPES environment variable and from a file", async () => {
    const env = await hquantEnv({ LAYER_TYPES: QWQ_LAYER_TYPES }, "plan", model, ...QWQ_FLAGS, "--json", "-");
    expect(env.stderr).toBe(WARNING);
    const fromEnv = JSON.parse(env.stdout) as PlanJson;
    expect(fromEnv.schedule.name).toBe("LAYER_TYPES");
    expect(typesOf(fromEnv)).toEqual(typesOf(viaOption));
    const file = path.join(tmp, "qwq-layer-types.json");
    fs.writeFileSync(file, QWQ_LAYER_TYPES);
    for (const how of [["--schedule", file], ["--layer-types", file]]) {
      const r = await hquantEnv({}, "plan", model, ...how, ...QWQ_FLAGS, "--json", "-");
      expect(r.code).toBe(0);
      expect(typesOf(JSON.parse(r.stdout) as PlanJson)).toEqual(typesOf(viaOption));
    }
  });

  it("with the positional type (or --ftype) as the base type: the same tensors, that general.file_type; the text summary says which rule chose it", async () => {
    const r = await hquantEnv({ LAYER_TYPES: QWQ_LAYER_TYPES }, "plan", model, "Q4_K_M", ...QWQ_FLAGS, "--json", "-");
    const j = JSON.parse(r.stdout) as PlanJson;
    expect(j.schedule).toMatchObject({ ftype: "Q4_K_M", fileTypeId: 15, fileTypeFromLayers: false });
    expect(typesOf(j)).toEqual(typesOf(viaOption));
    const text = await hquantEnv({}, "plan", model, "--layer-types", QWQ_LAYER_TYPES, "--token-embedding-type", "Q4_K");
    expect(text.stdout.split("\n")[1]).toBe("schedule --layer-types: file type Q3_K_L (the most frequent layer type; --ftype sets it), token embedding q4_K");
  });
});

// --- the Llama-3.1-8B card's custom mixtures ----------------------------------------------------

const KINDS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] as const;

describe("custom mixtures: the Llama-3.1-8B card's Q6_K_H and Q4_K_H (examples/recipes/)", () => {
  let model = "";
  beforeAll(() => {
    model = makeHeaderOnlyModel({ ...LLAMA_31_8B, dir: tmp });
  });
  const planOf = async (schedule: object) => (await plan({ input: model, schedule })).plan;
  const layerTypes = (p: Awaited<ReturnType<typeof planOf>>, l: number) =>
    KINDS.map((k) => typeName(p.tensors.find((t) => t.name === `blk.${l}.${k}.weight`)!.dstType));

  it("Q6_K_H: Q5_K_L = attn_v q8_0, attn_o q6_k, ffn_d q6_k; Q6_K_S = Q6_K; Q6_K_M = attn_v, ffn_d q8_0; Q6_K_L = attn_v, attn_o, ffn_d q8_0", async () => {
    const p = await planOf({ schedule: "examples/recipes/Llama-3.1-8B-Q6_K_H.json" });
    expect(p.schedule.ftype).toBe("Q6_K"); // 25 of 32 layers are Q6_K mixtures
    expect(layerTypes(p, 0)).toEqual(["q6_K", "q6_K", "q8_0", "q6_K", "q6_K", "q6_K", "q8_0"]); // Q6_K_M
    expect(layerTypes(p, 3)).toEqual(["q5_K", "q5_K", "q8_0", "q6_K", "q5_K", "q5_K", "q6_K"]); // Q5_K_L
    expect(layerTypes(p, 12)).toEqual(["q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K"]); // Q6_K_S
    expect(layerTypes(p, 31)).toEqual(["q6_K", "q6_K", "q8_0", "q8_0", "q6_K", "q6_K", "q8_0"]); // Q6_K_L
    const outside = Object.fromEntries(p.tensors.filter((t) => t.layer < 0 && t.shape.length > 1).map((t) => [t.name, typeName(t.dstType)]));
    expect(outside).toEqual({ "token_embd.weight": "q6_K", "output.weight": "q6_K" });
    const text = formatPlan(p, { headerBytes: 0, fileBytes: 0, inputTensorBytes: 0 }, "llama-3.1-8b");
    expect(text).toContain("\nmixture Q5_K_L = Q5_K_M + attn_v = q8_0, attn_output = q6_K, ffn_down = q6_K\n");
    expect(text).toMatch(/\n1-7 +Q5_K_L +q5_K +q6_K +q5_K +q8_0 +q6_K +q5_K +q5_K\n/);
  });

  it("Q4_K_H: Q4_K_L = Q4_K_M + attn_o q6_k (every other tensor as Q4_K_M's rules say, positions included)", async () => {
    const p = await planOf({ schedule: "examples/recipes/Llama-3.1-8B-Q4_K_H.json" });
    expect(p.schedule.ftype).toBe("Q4_K_M");
    expect(layerTypes(p, 0)).toEqual(["q5_K", "q5_K", "q8_0", "q6_K", "q5_K", "q5_K", "q6_K"]); // Q5_K_L
    expect(layerTypes(p, 5)).toEqual(["q4_K", "q4_K", "q4_K", "q6_K", "q4_K", "q4_K", "q4_K"]); // Q4_K_L
    expect(layerTypes(p, 6)).toEqual(["q4_K", "q4_K", "q6_K", "q6_K", "q4_K", "q4_K", "q6_K"]); // Q4_K_L, a use_more_bits layer
    expect(layerTypes(p, 30)).toEqual(["q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K", "q6_K"]); // Q6_K_S
    // the card's "Q4_K_M +": each Q4_K_L layer is the Q4_K_M file's layer with attn_output at q6_K
    const plain = await planOf({ ftype: "Q4_K_M" });
    for (let l = 2; l <= 25; l++) {
      expect(p.schedule.layerMixtures![l]!.name).toBe("Q4_K_L");
      const want = layerTypes(plain, l).map((t, i) => (KINDS[i] === "attn_output" ? "q6_K" : t));
      expect(layerTypes(p, l)).toEqual(want);
    }
  });

  it("a schedule of mixtures only, with the layers from --layer-types (the card's form)", async () => {
    const file = path.join(tmp, "mixtures.json");
    fs.writeFileSync(file, JSON.stringify({ mixtures: { Q4_K_L: "Q4_K_M + attn_o = q6_k", Q6_K_S: { base: "Q6_K" } } }));
    const layers = JSON.stringify(Array.from({ length: 32 }, (_, i) => [i, i === 31 ? "Q6_K_S" : "q4_k_l"]));
    const p = await planOf({ schedule: file, layerTypes: layers, ftype: "Q4_K_M" });
    expect(layerTypes(p, 31)).toEqual(Array(7).fill("q6_K"));
    expect(layerTypes(p, 5)).toEqual(["q4_K", "q4_K", "q4_K", "q6_K", "q4_K", "q4_K", "q4_K"]);
    expect(p.schedule.name).toBe("mixtures.json+--layer-types");
  });
});

describe("mixture and layer-entry errors name what was typed", () => {
  const err = (data: unknown, nLayer = 2) => {
    try {
      resolveSchedule(parseSchedule(JSON.stringify(data), "s.json"), nLayer, "s.json");
    } catch (e) {
      return (e as Error).message;
    }
    return "no error";
  };
  const two = (t: string) => [[0, t], [1, t]];

  it("a misspelt key in a layer entry is named", () => {
    expect(err({ layers: [{ layers: 0, ftpye: "Q4_K_M" }] }, 1)).toBe('s.json: layers[0]: unknown key "ftpye"; allowed: layers, ftype');
    expect(err({ layers: [{ depth: [0, 1], fype: "Q4_K_M" }] }, 1)).toBe('s.json: layers[0]: unknown key "fype"; allowed: depth, ftype');
  });

  it("mixtures: unknown kinds, standard names, no base, undefined names", () => {
    expect(err({ mixtures: { Q5_K_L: "Q5_K_M + atn_v = q8_0" }, layers: two("Q5_K_L") })).toMatch(/^s\.json: mixtures\.Q5_K_L: unknown tensor kind "atn_v"; valid: attn_q, attn_k, /);
    expect(err({ mixtures: { Q5_K_L: { base: "Q5_K_M", atn_v: "q8_0" } }, layers: two("Q5_K_L") })).toMatch(/^s\.json: mixtures\.Q5_K_L\.atn_v: unknown field; allowed: base, attn_q, /);
    expect(err({ mixtures: { Q4_K_M: "Q4_K_M + attn_o = q6_k" }, layers: two("Q4_K_M") })).toBe("s.json: mixtures.Q4_K_M: Q4_K_M is a llama.cpp file type; give the mixture another name");
    expect(err({ mixtures: { BIG: "attn_v = q8_0" }, layers: two("BIG") })).toBe('s.json: mixtures.BIG: base: required (the name does not imply a file type); e.g. "base": "Q4_K_M"');
    expect(err({ mixtures: { X_L: "Q4_K_M + attn_v = q9_0" }, layers: two("X_L") })).toMatch(/^s\.json: mixtures\.X_L\.attn_v: unknown tensor type "q9_0"; valid: /);
    expect(err({ mixtures: { X_L: "Q4_K_M attn_v q8_0" }, layers: two("X_L") })).toBe(
      's.json: mixtures.X_L: cannot read "Q4_K_M attn_v q8_0"; expected "BASE + KIND = TYPE KIND = TYPE …" (e.g. "Q4_K_M + attn_o = q6_k")',
    );
    expect(err({ mixtures: { Q4_K_L: "Q4_K_M + attn_o = q6_k" }, layers: [[0, "Q4_K_L"], [1, "Q5_K_L"]] })).toMatch(
      /^s\.json: layers\[1\]\[1\]: unknown file type "Q5_K_L"; valid: Q1_0, .*, F32 and the schedule's mixtures Q4_K_L$/,
    );
    // implied bases: the name without its last _X, as llama-quantize reads it (Q5_K → Q5_K_M)
    const r = resolveSchedule(parseSchedule(JSON.stringify({ mixtures: { Q5_K_L: "attn_v = q8_0", Q6_K_M: "ffn_d = q8_0" }, layers: [[0, "Q5_K_L"], [1, "Q6_K_M"]] }), "s"), 2, "s");
    expect(r.layerFtypes).toEqual(["Q5_K_M", "Q6_K"]);
  });
});
