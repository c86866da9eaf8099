// Schedules: the JSON format and its errors, resolution against a model's depth, hybrid = plain
// when uniform, the presets (Q4_K_H reproduces the published 64-layer list), output metadata.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { FILE_TYPE_NAMES, type FileTypeName } from "../src/plan/ftypes.js";
import { outputMetadata } from "../src/plan/metadata.js";
import { listPresets, loadPreset, PRESETS_DIR } from "../src/plan/options.js";
import { planModel, type PlannerInputTensor, type PlannerModel } from "../src/plan/planner.js";
import { parseSchedule, resolveSchedule, uniformSchedule, type ScheduleFile } from "../src/plan/schedule.js";
import { useMoreBits } from "../src/plan/mixture-rules.js";

// --- header-only model descriptions ----------------------------------------------------------

interface Layout {
  arch: string;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nExpert?: number;
  tied?: boolean;
  vocab?: number;
}

const u32 = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.UINT32, value });

/** The tensors llama.cpp's converters write for a llama-like (optionally MoE) model, as F16/F32. */
function makeModel(l: Layout): PlannerModel {
  const E = l.nEmbd;
  const D = 64;
  const V = l.vocab ?? 512;
  const t = (name: string, shape: number[]): PlannerInputTensor => ({
    name,
    shape,
    type: shape.length === 1 ? GGMLType.F32 : GGMLType.F16,
  });
  const tensors: PlannerInputTensor[] = [t("token_embd.weight", [E, V]), t("output_norm.weight", [E])];
  if (!l.tied) tensors.push(t("output.weight", [E, V]));
  for (let i = 0; i < l.nLayer; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      t(p + "attn_norm.weight", [E]),
      t(p + "attn_q.weight", [E, l.nHead * D]),
      t(p + "attn_k.weight", [E, l.nHeadKv * D]),
      t(p + "attn_v.weight", [E, l.nHeadKv * D]),
      t(p + "attn_output.weight", [l.nHead * D, E]),
      t(p + "ffn_norm.weight", [E]),
    );
    if (l.nExpert) {
      tensors.push(
        t(p + "ffn_gate_inp.weight", [E, l.nExpert]),
        t(p + "ffn_gate_exps.weight", [E, l.nFf, l.nExpert]),
        t(p + "ffn_up_exps.weight", [E, l.nFf, l.nExpert]),
        t(p + "ffn_down_exps.weight", [l.nFf, E, l.nExpert]),
      );
    } else {
      tensors.push(t(p + "ffn_gate.weight", [E, l.nFf]), t(p + "ffn_up.weight", [E, l.nFf]), t(p + "ffn_down.weight", [l.nFf, E]));
    }
  }
  const kv: GGUFKV[] = [
    { key: "general.architecture", type: GGUFValueType.STRING, value: l.arch },
    u32(`${l.arch}.block_count`, l.nLayer),
    u32(`${l.arch}.attention.head_count`, l.nHead),
    u32(`${l.arch}.attention.head_count_kv`, l.nHeadKv),
    // what llama.cpp's loader requires before it quantizes
    u32(`${l.arch}.context_length`, 256),
    u32(`${l.arch}.embedding_length`, E),
    { key: `${l.arch}.attention.layer_norm_rms_epsilon`, type: GGUFValueType.FLOAT32, value: Math.fround(1e-6) },
  ];
  if (l.nExpert) kv.push(u32(`${l.arch}.expert_count`, l.nExpert), u32(`${l.arch}.expert_used_count`, 2));
  return { kv, tensors };
}

const LAYOUTS: Record<string, Omit<Layout, "nLayer">> = {
  "llama GQA 4": { arch: "llama", nEmbd: 256, nHead: 8, nHeadKv: 2, nFf: 512 },
  "qwen3 tied GQA 2": { arch: "qwen3", nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 768, tied: true },
  "mixtral MoE 8 experts": { arch: "llama", nEmbd: 256, nHead: 8, nHeadKv: 8, nFf: 512, nExpert: 8 },
  "qwen3moe MoE 4 experts": { arch: "qwen3moe", nEmbd: 256, nHead: 4, nHeadKv: 1, nFf: 256, nExpert: 4 },
  "llama n_embd 320 (fallbacks)": { arch: "llama", nEmbd: 320, nHead: 5, nHeadKv: 1, nFf: 1024 },
};

const typesOf = (model: PlannerModel, s: Parameters<typeof planModel>[1]) =>
  planModel(model, s).tensors.map((t) => `${t.name}=${typeName(t.dstType)}`);

const S = (data: unknown) => parseSchedule(JSON.stringify(data), "s.json");

// --- the published hybrid ----------------------------------------------------------------------

/** The QwQ-32B LAYER_TYPES list of issue 4, written out from the issue ("…" = same type in between). */
function publishedQ4KH(): FileTypeName[] {
  const list: FileTypeName[] = [];
  const fill = (from: number, to: number, f: FileTypeName) => {
    for (let i = from; i <= to; i++) list[i] = f;
  };
  fill(0, 0, "Q4_K_M");
  fill(1, 1, "Q4_K_S");
  fill(2, 2, "Q3_K_L");
  fill(3, 15, "Q3_K_M");
  const alternating: [number, FileTypeName][] = [
    [16, "Q3_K_L"], [17, "Q3_K_M"], [18, "Q3_K_L"], [19, "Q3_K_M"], [20, "Q3_K_L"], [21, "Q3_K_M"], [22, "Q3_K_L"], [23, "Q3_K_M"],
    [40, "Q4_K_S"], [41, "Q3_K_L"], [42, "Q4_K_S"], [43, "Q3_K_L"], [44, "Q4_K_S"], [45, "Q3_K_L"], [46, "Q4_K_S"], [47, "Q3_K_L"],
    [56, "Q4_K_M"], [57, "Q4_K_S"], [58, "Q4_K_M"], [59, "Q4_K_M"], [60, "Q4_K_M"], [61, "Q5_K_S"], [62, "Q5_K_M"], [63, "Q6_K"],
  ];
  for (const [i, f] of alternating) list[i] = f;
  fill(24, 39, "Q3_K_L");
  fill(48, 55, "Q4_K_S");
  return list;
}

describe("presets", () => {
  it("Q4_K_H on 64 layers is the published QwQ-32B list, token embedding q4_K, output q6_K", () => {
    const expected = publishedQ4KH();
    expect(expected.length).toBe(64);
    const r = resolveSchedule(loadPreset("Q4_K_H"), 64, "preset Q4_K_H");
    expect(r.layerFtypes).toEqual(expected);
    expect(typeName(r.tokenEmbeddingType!)).toBe("q4_K");
    expect(typeName(r.outputTensorType!)).toBe("q6_K");
    // the same list given as a LAYER_TYPES literal plans identically
    const literal = parseSchedule(JSON.stringify(expected.map((f, i) => [i, f])), "LAYER_TYPES");
    expect(resolveSchedule(literal, 64, "x").layerFtypes).toEqual(expected);
  });

  it("Q4_K_H fits any depth: first layer Q4_K_M, last Q6_K", () => {
    for (const n of [1, 2, 16, 22, 28, 32, 80]) {
      const r = resolveSchedule(loadPreset("q4_k_h"), n, "p").layerFtypes;
      expect(r.length).toBe(n);
      expect(r[0]).toBe("Q4_K_M");
      if (n > 1) expect(r[n - 1]).toBe("Q6_K");
    }
  });

  it("every standard file type has a preset, and every preset documents itself in one line", () => {
    const names = listPresets();
    for (const f of FILE_TYPE_NAMES) expect(names).toContain(f);
    for (const h of ["Q3_K_H", "Q4_K_H", "Q5_K_H", "Q6_K_H", "Q4_K_QKV16"]) expect(names).toContain(h);
    for (const n of names) {
      const p = loadPreset(n);
      expect(p.name).toBe(n);
      expect(p.description).toMatch(/^[^\n]{20,200}$/);
    }
  });

  it("the hybrid family is Q4_K_H's depth profile moved along the k-quant ladder", () => {
    const ladder: FileTypeName[] = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"];
    const base = publishedQ4KH();
    for (const [name, steps] of [["Q3_K_H", -1], ["Q5_K_H", 2], ["Q6_K_H", 3]] as const) {
      const got = resolveSchedule(loadPreset(name), 64, name).layerFtypes;
      const want = base.map((f) => ladder[Math.min(ladder.length - 1, ladder.indexOf(f) + steps)]);
      expect(got, name).toEqual(want);
    }
  });

  it("Q4_K_QKV16 keeps attention q/k/v in F16 and quantizes the rest as Q4_K_M", () => {
    const model = makeModel({ ...LAYOUTS["llama GQA 4"]!, nLayer: 8 });
    const plan = planModel(model, resolveSchedule(loadPreset("Q4_K_QKV16"), 8, "p"));
    for (const t of plan.tensors.filter((t) => /attn_[qkv]\.weight$/.test(t.name))) expect(t.dstType).toBe(GGMLType.F16);
    const q4km = planModel(model, uniformSchedule("Q4_K_M", 8));
    const rest = (p: typeof plan) => p.tensors.filter((t) => !/attn_[qkv]\.weight$/.test(t.name)).map((t) => t.dstType);
    expect(rest(plan)).toEqual(rest(q4km));
  });

  it("preset files are valid against the schema as they are", () => {
    for (const f of fs.readdirSync(PRESETS_DIR)) {
      expect(() => parseSchedule(fs.readFileSync(`${PRESETS_DIR}/${f}`, "utf8"), f)).not.toThrow();
    }
  });
});

// --- uniform hybrid == plain file type --------------------------------------------------------

describe("a uniform schedule plans exactly the plain file type", () => {
  for (const [layoutName, layout] of Object.entries(LAYOUTS)) {
    for (const nLayer of [1, 7, 16, 28, 64]) {
      it(`${layoutName}, ${nLayer} layers, every file type`, () => {
        const model = makeModel({ ...layout, nLayer });
        for (const ftype of FILE_TYPE_NAMES) {
          // a plan that fails (q1_0 has no fallback for 320-element rows) fails the same in every form
          const outcome = (f: () => unknown) => {
            try {
              return f();
            } catch (e) {
              return (e as Error).message;
            }
          };
          const plain = outcome(() => typesOf(model, uniformSchedule(ftype, nLayer)));
          const forms: ScheduleFile[] = [
            S({ ftype }),
            S(Array.from({ length: nLayer }, (_, i) => [i, ftype])),
            S({ layers: [{ layers: `0-${nLayer - 1}`, ftype }] }),
            S({ layers: [{ depth: [0, 0.5], ftype }, { depth: { from: 0.5, to: 1 }, ftype }] }),
          ];
          for (const f of forms) expect(outcome(() => typesOf(model, resolveSchedule(f, nLayer, "s")))).toEqual(plain);
        }
      });
    }
  }

  it("position rules use the global layer index in a hybrid", () => {
    // Q4_K_M everywhere but one Q3_K_M layer: that layer's ffn_down follows Q3_K_M's rule at its
    // global position; the Q4_K_M layers keep use_more_bits of their global index
    const n = 32;
    const model = makeModel({ ...LAYOUTS["llama GQA 4"]!, nLayer: n });
    const list = Array.from({ length: n }, (_, i) => [i, i === 10 ? "Q3_K_M" : "Q4_K_M"]);
    const plan = planModel(model, resolveSchedule(S(list), n, "s"));
    const down = (i: number) => typeName(plan.tensors.find((t) => t.name === `blk.${i}.ffn_down.weight`)!.dstType);
    expect(down(10)).toBe("q4_K"); // Q3_K_M past the first sixteenth
    for (let i = 0; i < n; i++) if (i !== 10) expect(down(i)).toBe(useMoreBits(i, n) ? "q6_K" : "q4_K");
    const v = (i: number) => typeName(plan.tensors.find((t) => t.name === `blk.${i}.attn_v.weight`)!.dstType);
    expect(v(10)).toBe("q4_K"); // Q3_K_M: q5_K only for the model's first two attn_v
  });
});

// --- schedule errors ----------------------------------------------------------------------------

const err = (data: unknown, nLayer = 4) => {
  try {
    resolveSchedule(S(data), nLayer, "s.json");
  } catch (e) {
    return (e as Error).message;
  }
  return "no error";
};

describe("schedule errors name the field and what is allowed", () => {
  const FT = FILE_TYPE_NAMES.join(", ");
  const TT =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, " +
    "iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, tq1_0, tq2_0, mxfp4, nvfp4, q1_0, q2_0";

  it("unknown file type", () => {
    expect(err({ ftype: "Q4_K_X" })).toBe(`s.json: ftype: unknown file type "Q4_K_X"; valid: ${FT}`);
    expect(err([[0, "Q4_K_M"], [1, "Q9"]])).toBe(`s.json: layers[1][1]: unknown file type "Q9"; valid: ${FT}`);
    expect(err({ layers: [{ layers: 0, ftype: "Q4_K_M" }, { layers: "1-3", ftype: "IQ5_S" }] })).toBe(
      `s.json: layers[1].ftype: unknown file type "IQ5_S"; valid: ${FT}`,
    );
  });

  it("unknown tensor type", () => {
    expect(err({ ftype: "Q4_K_M", output_tensor_type: "q7_K" })).toBe(`s.json: output_tensor_type: unknown tensor type "q7_K"; valid: ${TT}`);
    expect(err({ ftype: "Q4_K_M", tensor_types: [{ pattern: "attn_q", type: "iq5_xxs" }] })).toBe(
      `s.json: tensor_types[0].type: unknown tensor type "iq5_xxs"; valid: ${TT}`,
    );
    expect(err({ ftype: "Q4_K_M", tensor_types: ["attn_q=q3_x"] })).toBe(`s.json: tensor_types[0]: unknown tensor type "q3_x"; valid: ${TT}`);
  });

  it("unknown field", () => {
    expect(err({ ftype: "Q4_K_M", output_type: "q6_K" })).toMatch(/^s\.json: output_type: unknown field; allowed: \$schema, name, description, ftype, layers, /);
  });

  it("bad range", () => {
    expect(err({ layers: [{ layers: "3-1", ftype: "Q4_K_M" }] })).toBe("s.json: layers[0].layers: bad range 3-1; FROM must not be greater than TO");
    expect(err({ layers: [{ layers: "a-b", ftype: "Q4_K_M" }] })).toBe('s.json: layers[0].layers: "a-b" is not a layer index or range like "0-3"');
    expect(err({ layers: [{ depth: [0.5, 0.25], ftype: "Q4_K_M" }] })).toBe("s.json: layers[0].depth: bad range 0.5-0.25; need 0 ≤ FROM < TO ≤ 1");
    expect(err({ layers: [{ depth: [0, 1.5], ftype: "Q4_K_M" }] })).toBe("s.json: layers[0].depth[1]: must be <= 1");
  });

  it("overlapping ranges", () => {
    expect(err({ layers: [{ layers: "0-2", ftype: "Q4_K_M" }, { layers: { from: 2, to: 3 }, ftype: "Q6_K" }] })).toBe(
      "s.json: layers[1] (layer 2-3) overlaps layers[0] (layer 0-2)",
    );
    expect(err({ layers: [{ depth: [0, 0.6], ftype: "Q4_K_M" }, { depth: [0.5, 1], ftype: "Q6_K" }] })).toBe(
      "s.json: layers[1] (depth 0.5-1) overlaps layers[0] (depth 0-0.6)",
    );
  });

  it("gaps", () => {
    expect(err({ layers: [{ layers: "0-1", ftype: "Q4_K_M" }, { layers: 3, ftype: "Q6_K" }] })).toBe("s.json: layers: no file type for layer 2");
    expect(err({ layers: [{ depth: [0, 0.5], ftype: "Q4_K_M" }, { depth: [0.75, 1], ftype: "Q6_K" }] })).toBe(
      "s.json: layers: no file type for depth 0.5-0.75",
    );
  });

  it("wrong layer count, unless resampled", () => {
    const six = Array.from({ length: 6 }, (_, i) => [i, i === 0 ? "Q6_K" : i === 5 ? "Q8_0" : "Q4_K_M"]);
    expect(err(six)).toBe(
      's.json: layers: the schedule lists 6 layers (0-5) but the model has 4; use depth entries or set "resample": true',
    );
    const r = resolveSchedule(S({ layers: six, resample: true }), 4, "s").layerFtypes;
    expect(r).toEqual(["Q6_K", "Q4_K_M", "Q4_K_M", "Q8_0"]);
  });

  it("bad regex", () => {
    expect(err({ ftype: "Q4_K_M", tensor_types: [{ pattern: "attn_(q", type: "f16" }] })).toBe(
      "s.json: tensor_types[0]: bad regular expression \"attn_(q\" (missing ')' at position 7)",
    );
  });

  it("mixing depth and indices, missing ftype, surgery, bad JSON", () => {
    expect(err({ layers: [{ depth: [0, 1], ftype: "Q4_K_M" }, [0, "Q4_K_M"]] })).toBe(
      "s.json: layers: mixes depth entries with layer indices; use one or the other",
    );
    expect(err({})).toBe("s.json: ftype: required when the schedule has no layers");
    expect(err({ ftype: "Q4_K_M", surgery: [{ delete: 3 }] })).toBe("s.json: surgery[0].op: required");
    expect(() => parseSchedule("{", "s.json")).toThrow(/^s\.json: not valid JSON/);
  });

  it("unknown preset lists the valid ones", () => {
    expect(() => loadPreset("Q4_K_Z")).toThrow(`unknown preset "Q4_K_Z"; valid: ${listPresets().join(", ")}`);
  });
});

// --- output metadata ------------------------------------------------------------------------

describe("output metadata", () => {
  it("moves file_type/quantization_version to the end, drops split keys, appends imatrix and hquant keys", () => {
    const model = makeModel({ ...LAYOUTS["llama GQA 4"]!, nLayer: 2 });
    const kv: GGUFKV[] = [
      { key: "general.architecture", type: GGUFValueType.STRING, value: "llama" },
      u32("general.file_type", 1),
      u32("general.quantization_version", 1),
      { key: "split.no", type: GGUFValueType.UINT16, value: 0 },
      { key: "split.count", type: GGUFValueType.UINT16, value: 1 },
      { key: "split.tensors.count", type: GGUFValueType.INT32, value: 30 },
      ...model.kv.slice(1),
    ];
    const plan = planModel({ kv, tensors: model.tensors }, uniformSchedule("Q5_K_M", 2));
    const plain = outputMetadata(kv, plan);
    expect(plain.map((e) => e.key)).toEqual([
      "general.architecture",
      "llama.block_count",
      "llama.attention.head_count",
      "llama.attention.head_count_kv",
      "llama.context_length",
      "llama.embedding_length",
      "llama.attention.layer_norm_rms_epsilon",
      "general.quantization_version",
      "general.file_type",
    ]);
    expect(plain.at(-1)).toEqual(u32("general.file_type", 17));
    expect(plain.at(-2)).toEqual(u32("general.quantization_version", 2));
    const full = outputMetadata(kv, plan, {
      imatrix: { file: "x".repeat(200), datasets: ["eval.txt"], entries: 7, chunks: 0 },
      hquant: { version: "9.9.9" },
    });
    expect(full.slice(9).map((e) => [e.key, e.value])).toEqual([
      ["quantize.imatrix.file", "x".repeat(127)],
      ["quantize.imatrix.dataset", "eval.txt"],
      ["quantize.imatrix.entries_count", 7],
      ["hquant.version", "9.9.9"],
      ["hquant.schedule.name", "Q5_K_M"],
      ["hquant.schedule.file_type", "Q5_K_M"],
      ["hquant.schedule.layer_file_types", ["Q5_K_M", "Q5_K_M"]],
    ]);
    // the input is not modified
    expect(kv[1]).toEqual(u32("general.file_type", 1));
  });
});
