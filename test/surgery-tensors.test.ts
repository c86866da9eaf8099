// Layer surgery on a synthetic llama / qwen3 tensor list (test/factory.ts layouts): renumbering,
// each output tensor's recipe over input names, norms under merge, order, and mismatch errors.
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { applySurgery, type SurgeryOp } from "../src/surgery/ops.js";
import { describeSurgery, formatSurgeryTable, surgeryTensors, type SurgeryInputTensor, type SurgeryTensor } from "../src/surgery/tensors.js";
import { factoryTensors, SMALL_LLAMA, type FactoryOptions } from "./factory.js";

const LLAMA_SUFFIXES = [
  "attn_norm.weight",
  "attn_q.weight",
  "attn_k.weight",
  "attn_v.weight",
  "attn_output.weight",
  "ffn_norm.weight",
  "ffn_gate.weight",
  "ffn_up.weight",
  "ffn_down.weight",
];
const NORMS = new Set(["attn_norm.weight", "ffn_norm.weight"]);

function model(o: Partial<FactoryOptions> = {}): SurgeryInputTensor[] {
  return factoryTensors({ ...SMALL_LLAMA, nLayer: 6, ...o }).map(({ name, shape, type }) => ({ name, shape, type }));
}

function run(ops: SurgeryOp[], tensors = model()): SurgeryTensor[] {
  const nLayer = new Set(tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)?.[1]).filter(Boolean)).size;
  return surgeryTensors(tensors, applySurgery(nLayer, ops));
}

/** What an output layer must look like when it is a plain copy of input layer `src`. */
function copiedLayer(final: number, src: number) {
  return LLAMA_SUFFIXES.map((s) => ({ name: `blk.${final}.${s}`, inputs: [`blk.${src}.${s}`], recipe: { kind: "copy", src: 0 }, computed: false }));
}

const pick = (ts: SurgeryTensor[]) => ts.map(({ name, inputs, recipe, computed }) => ({ name, inputs, recipe, computed }));
const layer = (ts: SurgeryTensor[], l: number) => ts.filter((t) => t.name.startsWith(`blk.${l}.`));

describe("surgeryTensors", () => {
  it("no surgery maps every tensor to itself, same order, same shapes and types", () => {
    const input = model();
    const out = run([], input);
    expect(out.map((t) => [t.name, t.shape, t.type, t.inputs])).toEqual(input.map((t) => [t.name, t.shape, t.type, [t.name]]));
    expect(out.every((t) => !t.computed)).toBe(true);
  });

  it("delete renumbers the following blocks; globals keep their place", () => {
    const out = run([{ op: "delete", layers: [1, 4] }]);
    expect(out.map((t) => t.name)).toEqual([
      "token_embd.weight",
      ...[0, 1, 2, 3].flatMap((l) => LLAMA_SUFFIXES.map((s) => `blk.${l}.${s}`)),
      "output_norm.weight",
      "output.weight",
    ]);
    expect(pick(layer(out, 0))).toEqual(copiedLayer(0, 0));
    expect(pick(layer(out, 1))).toEqual(copiedLayer(1, 2));
    expect(pick(layer(out, 2))).toEqual(copiedLayer(2, 3));
    expect(pick(layer(out, 3))).toEqual(copiedLayer(3, 5));
    expect(out.find((t) => t.name === "output.weight")!.inputs).toEqual(["output.weight"]);
  });

  it("swap exchanges whole layers", () => {
    const out = run([{ op: "swap", a: 2, b: 3 }]);
    expect(pick(layer(out, 2))).toEqual(copiedLayer(2, 3));
    expect(pick(layer(out, 3))).toEqual(copiedLayer(3, 2));
    expect(pick(layer(out, 4))).toEqual(copiedLayer(4, 4));
  });

  it("duplicate adds a layer reading the source's tensors", () => {
    const out = run([{ op: "duplicate", layer: 1, after: 4 }]);
    expect(out.filter((t) => t.layer >= 0)).toHaveLength(7 * LLAMA_SUFFIXES.length);
    expect(pick(layer(out, 5))).toEqual(copiedLayer(5, 1));
    expect(pick(layer(out, 6))).toEqual(copiedLayer(6, 5));
  });

  it("interpolate: every tensor (norms included) is (1−α)·a + α·b over the two sources", () => {
    const out = run([{ op: "interpolate", a: 2, b: 4, alpha: 0.25, after: 2 }]);
    expect(pick(layer(out, 3))).toEqual(
      LLAMA_SUFFIXES.map((s) => ({
        name: `blk.3.${s}`,
        inputs: [`blk.2.${s}`, `blk.4.${s}`],
        recipe: { kind: "interpolate", a: { kind: "copy", src: 0 }, b: { kind: "copy", src: 1 }, alpha: 0.25 },
        computed: true,
      })),
    );
    expect(pick(layer(out, 4))).toEqual(copiedLayer(4, 3));
  });

  it("merge: weights are LaCo over the range, norms are copied from the base layer", () => {
    const out = run([{ op: "merge", from: 1, count: 3 }]);
    expect(out.filter((t) => t.layer >= 0)).toHaveLength(4 * LLAMA_SUFFIXES.length);
    expect(pick(layer(out, 1))).toEqual(
      LLAMA_SUFFIXES.map((s) =>
        NORMS.has(s)
          ? { name: `blk.1.${s}`, inputs: [`blk.1.${s}`], recipe: { kind: "copy", src: 0 }, computed: false }
          : {
              name: `blk.1.${s}`,
              inputs: [`blk.1.${s}`, `blk.2.${s}`, `blk.3.${s}`],
              recipe: { kind: "merge", base: { kind: "copy", src: 0 }, others: [{ kind: "copy", src: 1 }, { kind: "copy", src: 2 }] },
              computed: true,
            },
      ),
    );
    expect(pick(layer(out, 2))).toEqual(copiedLayer(2, 4));
  });

  it("composed ops: interpolating a merged layer nests the recipe and reads each input once", () => {
    const out = run([
      { op: "merge", from: 0, count: 2 }, // m(0,1) 2 3 4 5
      { op: "interpolate", a: 0, b: 1, alpha: 0.5, after: 0 }, // m lerp(m, 2) 2 3 4 5
    ]);
    const q = out.find((t) => t.name === "blk.1.attn_q.weight")!;
    expect(q.inputs).toEqual(["blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.2.attn_q.weight"]);
    expect(q.recipe).toEqual({
      kind: "interpolate",
      a: { kind: "merge", base: { kind: "copy", src: 0 }, others: [{ kind: "copy", src: 1 }] },
      b: { kind: "copy", src: 2 },
      alpha: 0.5,
    });
    // its norm: lerp(norms of the merge's base, norms of 2)
    const norm = out.find((t) => t.name === "blk.1.attn_norm.weight")!;
    expect(norm.inputs).toEqual(["blk.0.attn_norm.weight", "blk.2.attn_norm.weight"]);
    expect(norm.recipe).toEqual({ kind: "interpolate", a: { kind: "copy", src: 0 }, b: { kind: "copy", src: 1 }, alpha: 0.5 });
  });

  it("keeps shapes and types: F16 weights stay F16 sources, F32 norms stay F32", () => {
    const out = run([{ op: "interpolate", a: 0, b: 1, alpha: 0.5, after: 5 }]);
    const input = model();
    for (const t of layer(out, 6)) {
      const src = input.find((u) => u.name === t.inputs[0])!;
      expect(t.shape).toEqual(src.shape);
      expect(t.type).toBe(src.type);
    }
    expect(out.find((t) => t.name === "blk.6.attn_q.weight")!.type).toBe(GGMLType.F16);
    expect(out.find((t) => t.name === "blk.6.ffn_norm.weight")!.type).toBe(GGMLType.F32);
  });

  it("sources of mixed types give an F32 computed tensor", () => {
    const input = model().map((t) => (t.name === "blk.1.ffn_up.weight" ? { ...t, type: GGMLType.BF16 } : t));
    const out = run([{ op: "interpolate", a: 0, b: 1, alpha: 0.5, after: 1 }], input);
    expect(out.find((t) => t.name === "blk.2.ffn_up.weight")!.type).toBe(GGMLType.F32);
    expect(out.find((t) => t.name === "blk.2.ffn_down.weight")!.type).toBe(GGMLType.F16);
  });

  it("qwen3 layout: q/k norms are norms too", () => {
    const out = run([{ op: "merge", from: 0, count: 2 }], model({ arch: "qwen3" }));
    const byName = new Map(out.map((t) => [t.name, t]));
    expect(byName.get("blk.0.attn_q_norm.weight")!.inputs).toEqual(["blk.0.attn_q_norm.weight"]);
    expect(byName.get("blk.0.attn_k_norm.weight")!.computed).toBe(false);
    expect(byName.get("blk.0.attn_k.weight")!.inputs).toEqual(["blk.0.attn_k.weight", "blk.1.attn_k.weight"]);
  });

  it("refuses to combine layers whose tensors differ", () => {
    const missing = model().filter((t) => t.name !== "blk.3.ffn_gate.weight");
    expect(() => run([{ op: "interpolate", a: 2, b: 3, alpha: 0.5, after: 2 }], missing)).toThrow(
      new UserError("surgery: final layer 3 (lerp(2, 3, 0.5)): blk.2.ffn_gate.weight has no counterpart blk.3.ffn_gate.weight"),
    );
    const reshaped = model().map((t) => (t.name === "blk.4.ffn_up.weight" ? { ...t, shape: [64, 256] } : t));
    expect(() => run([{ op: "merge", from: 3, count: 2 }], reshaped)).toThrow(
      new UserError("surgery: final layer 3 (merge(3, 4)): blk.3.ffn_up.weight [64, 128] and blk.4.ffn_up.weight [64, 256] differ in shape"),
    );
    // a plain copy of such a layer is fine
    expect(run([{ op: "duplicate", layer: 3, after: 0 }], missing).filter((t) => t.name.startsWith("blk.1."))).toHaveLength(8);
  });

  it("refuses models with per-layer tensors outside the blocks", () => {
    const input = [...model(), { name: "per_layer_token_embd.weight", shape: [64 * 6, 96], type: GGMLType.F16 }];
    expect(() => run([{ op: "delete", layers: [0] }], input)).toThrow(
      new UserError("surgery: tensor per_layer_token_embd.weight has a per-layer dimension outside blk.N; layer surgery does not support this model"),
    );
  });
});

describe("describeSurgery", () => {
  it("one row per final layer with its source layers", () => {
    const recipes = applySurgery(6, [
      { op: "delete", layers: [0] },
      { op: "merge", from: 1, count: 2 },
      { op: "interpolate", a: 0, b: 1, alpha: 0.5, after: 3 },
    ]);
    expect(describeSurgery(recipes)).toEqual([
      { layer: 0, sources: [1], recipe: "1", changed: true },
      { layer: 1, sources: [2, 3], recipe: "merge(2, 3)", changed: true },
      { layer: 2, sources: [4], recipe: "4", changed: true },
      { layer: 3, sources: [5], recipe: "5", changed: true },
      { layer: 4, sources: [1, 2, 3], recipe: "lerp(1, merge(2, 3), 0.5)", changed: true },
    ]);
    expect(describeSurgery(applySurgery(2, [{ op: "duplicate", layer: 1, after: 1 }])).map((r) => r.changed)).toEqual([false, false, true]);
  });

  it("the table folds runs of consecutive copies", () => {
    const rows = describeSurgery(applySurgery(12, [{ op: "delete", layers: [4, 5] }, { op: "duplicate", layer: 2, after: 9 }]));
    expect(formatSurgeryTable(rows, 12)).toEqual([
      "layer surgery: 12 input layers → 11 layers (final ← source)",
      "    0-3 ← 0-3",
      "    4-9 ← 6-11",
      "     10 ← 2",
    ]);
  });
});
