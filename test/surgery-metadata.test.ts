// Metadata after surgery (block_count, per-layer arrays, position-dependent keys) and the imatrix
// remap (copies reuse, computed layers average in f32).
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { remapImatrix, surgeryMetadata } from "../src/surgery/metadata.js";
import { applySurgery, type SurgeryOp } from "../src/surgery/ops.js";
import { factoryKV, SMALL_LLAMA } from "./factory.js";

const arr = (key: string, arrayType: GGUFValueType, value: (number | boolean | string)[]): GGUFKV => ({ key, type: GGUFValueType.ARRAY, arrayType, value });

/** A 6-layer llama header with per-layer head_count_kv and feed_forward_length arrays, and extras. */
function kv6(extra: GGUFKV[] = []): GGUFKV[] {
  const perLayer = new Map([
    ["llama.attention.head_count_kv", arr("llama.attention.head_count_kv", GGUFValueType.INT32, [10, 11, 12, 13, 14, 15])],
    ["llama.feed_forward_length", arr("llama.feed_forward_length", GGUFValueType.UINT32, [100, 101, 102, 103, 104, 105])],
  ]);
  const base = factoryKV({
    ...SMALL_LLAMA,
    nLayer: 6,
    extraKV: [
      arr("llama.attention.sliding_window_pattern", GGUFValueType.BOOL, [true, false, true, false, true, false]),
      arr("llama.rope.dimension_sections", GGUFValueType.INT32, [1, 2, 3, 4, 5, 6]),
      arr("llama.some_names", GGUFValueType.STRING, ["a", "b", "c", "d", "e", "f"]),
      arr("llama.short_list", GGUFValueType.INT32, [7, 8]),
      ...extra,
    ],
  });
  return base.map((e) => perLayer.get(e.key) ?? e);
}

const value = (kv: GGUFKV[], key: string) => kv.find((e) => e.key === key)!;

describe("surgeryMetadata", () => {
  const ops: SurgeryOp[] = [
    { op: "delete", layers: [0] }, // 1 2 3 4 5
    { op: "duplicate", layer: 0, after: 4 }, // 1 2 3 4 5 1
    { op: "interpolate", a: 1, b: 2, alpha: 0.75, after: 1 }, // 1 2 lerp(2,3,.75) 3 4 5 1
    { op: "merge", from: 4, count: 2 }, // 1 2 lerp 3 merge(4,5) 1
  ];

  it("block_count and every per-layer array follow the recipes; the rest is untouched", () => {
    const input = kv6();
    const { kv, changed, warnings } = surgeryMetadata(input, applySurgery(6, ops));
    expect(value(kv, "llama.block_count")).toEqual({ key: "llama.block_count", type: GGUFValueType.UINT32, value: 6 });
    // layers: src 1, 2, lerp(2,3,0.75) → nearer end 3, 3, merge(4,5) → base 4, 1
    expect(value(kv, "llama.attention.head_count_kv")).toEqual(arr("llama.attention.head_count_kv", GGUFValueType.INT32, [11, 12, 13, 13, 14, 11]));
    expect(value(kv, "llama.feed_forward_length").value).toEqual([101, 102, 103, 103, 104, 101]);
    expect(value(kv, "llama.feed_forward_length").arrayType).toBe(GGUFValueType.UINT32);
    expect(value(kv, "llama.attention.sliding_window_pattern").value).toEqual([false, true, false, false, true, false]);
    for (const key of ["llama.rope.dimension_sections", "llama.some_names", "llama.short_list", "tokenizer.ggml.tokens", "llama.context_length"]) {
      expect(value(kv, key)).toBe(value(input, key));
    }
    expect(kv.map((e) => e.key)).toEqual(input.map((e) => e.key));
    expect(changed).toEqual(["llama.feed_forward_length", "llama.attention.head_count_kv", "llama.attention.sliding_window_pattern"]);
    expect(warnings).toEqual([]);
  });

  it("block_count changes with the layer count; a UINT64 count stays a bigint", () => {
    const input = kv6().map((e) => (e.key === "llama.block_count" ? { ...e, type: GGUFValueType.UINT64, value: 6n } : e));
    const { kv } = surgeryMetadata(input, applySurgery(6, [{ op: "merge", from: 0, count: 3 }]));
    expect(value(kv, "llama.block_count")).toEqual({ key: "llama.block_count", type: GGUFValueType.UINT64, value: 4n });
  });

  it("interpolate with α ≤ 0.5 takes a's value", () => {
    const { kv } = surgeryMetadata(kv6(), applySurgery(6, [{ op: "interpolate", a: 0, b: 5, alpha: 0.5, after: 0 }]));
    expect(value(kv, "llama.attention.head_count_kv").value).toEqual([10, 10, 11, 12, 13, 14, 15]);
  });

  it("warns about scalars that encode layer positions, unless zero", () => {
    const extra = [
      { key: "llama.leading_dense_block_count", type: GGUFValueType.UINT32, value: 1 },
      { key: "llama.nextn_predict_layers", type: GGUFValueType.UINT32, value: 0 },
    ];
    const { warnings } = surgeryMetadata(kv6(extra), applySurgery(6, [{ op: "swap", a: 0, b: 1 }]));
    expect(warnings).toEqual(["llama.leading_dense_block_count depends on layer positions and is left unchanged by the surgery; check it"]);
    expect(surgeryMetadata(kv6(extra), applySurgery(6, [])).warnings).toEqual([]);
  });

  it("errors name the model file", () => {
    const noArch = kv6().filter((e) => e.key !== "general.architecture");
    expect(() => surgeryMetadata(noArch, applySurgery(6, []), "m.gguf")).toThrow(new UserError("m.gguf: surgery: the model has no general.architecture"));
    expect(() => surgeryMetadata(kv6(), applySurgery(8, []), "m.gguf")).toThrow(new UserError("m.gguf: surgery: layer 6 does not exist (llama.block_count is 6)"));
  });
});

describe("remapImatrix", () => {
  const vec = (...xs: number[]) => Float32Array.from(xs);
  const entries = new Map<string, Float32Array>([
    ["output.weight", vec(9, 9)],
    ["blk.0.ffn_up.weight", vec(1, 0.1)],
    ["blk.1.ffn_up.weight", vec(2, 0.2)],
    ["blk.2.ffn_up.weight", vec(4, 0.7)],
    ["blk.0.attn_q.weight", vec(5, 5)],
    ["blk.1.attn_q.weight", vec(6, 6)],
    // blk.2.attn_q.weight has no entry
  ]);
  const f = (x: number) => Math.fround(x);

  it("copies reuse their source's vectors, computed layers average their sources' in f32", () => {
    const recipes = applySurgery(3, [
      { op: "swap", a: 0, b: 2 }, // 2 1 0
      { op: "duplicate", layer: 1, after: 2 }, // 2 1 0 1
      { op: "interpolate", a: 0, b: 1, alpha: 0.9, after: 3 }, // 2 1 0 1 lerp(2,1)
      { op: "merge", from: 1, count: 3 }, // 2 merge(1,0,1) lerp(2,1)
    ]);
    const out = remapImatrix(entries, recipes);
    expect(out.get("output.weight")).toBe(entries.get("output.weight"));
    expect(out.get("blk.0.ffn_up.weight")).toBe(entries.get("blk.2.ffn_up.weight"));
    expect(out.get("blk.1.ffn_up.weight")).toEqual(vec(f((2 + 1 + 2) / 3), f(f(f(f(0.2) + f(0.1)) + f(0.2)) / 3)));
    expect(out.get("blk.2.ffn_up.weight")).toEqual(vec(3, f(f(f(0.7) + f(0.2)) / 2)));
    // layer 0 (src 2) and layer 2 (lerp(2, 1)) have a source without attn_q: no entry
    expect(out.get("blk.1.attn_q.weight")).toEqual(vec(f(17 / 3), f(17 / 3)));
    expect([...out.keys()].sort()).toEqual(["blk.0.ffn_up.weight", "blk.1.attn_q.weight", "blk.1.ffn_up.weight", "blk.2.ffn_up.weight", "output.weight"]);
  });

  it("deleted layers' entries are dropped", () => {
    const out = remapImatrix(entries, applySurgery(3, [{ op: "delete", layers: [0] }]));
    expect(out.get("blk.0.ffn_up.weight")).toBe(entries.get("blk.1.ffn_up.weight"));
    expect(out.get("blk.1.ffn_up.weight")).toBe(entries.get("blk.2.ffn_up.weight"));
    expect(out.has("blk.2.ffn_up.weight")).toBe(false);
  });

  it("sources of different lengths are an error naming the entry", () => {
    const bad = new Map(entries).set("blk.1.ffn_up.weight", vec(1, 2, 3));
    expect(() => remapImatrix(bad, applySurgery(3, [{ op: "merge", from: 0, count: 2 }]), "im.dat")).toThrow(
      new UserError("im.dat: imatrix entry blk.0.ffn_up.weight: sources have 2 and 3 values"),
    );
  });
});
