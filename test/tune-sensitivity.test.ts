// The sensitivity model on a hand-made space: with several measured types a group's predicted ΔKLD
// reproduces each measurement and is interpolated (log α linear in bits) between them; kinds are
// scaled apart (experts vs shared experts); the objective picks what is fitted; the noise check
// counts the allocation's decisions that rest on differences within the measurements' ±.
import { describe, expect, it } from "vitest";
import { GGMLType, tensorBytes } from "../src/gguf/ggml-types.js";
import { typeBits, type TuneSpace, type TuneTensor } from "../src/tune/candidates.js";
import type { Measurement } from "../src/tune/measure.js";
import type { ProxyErrors } from "../src/tune/proxy.js";
import { costTable, kindFactors, measuredCost, noiseCheck } from "../src/tune/sensitivity.js";

const TYPES = [GGMLType.IQ2_XXS, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q6_K];
function tensor(name: string, layer: number, kind: string, category: TuneTensor["category"]): TuneTensor {
  const shape = [256, 256];
  return {
    name, shape, category, layer, kind, group: `blk.${layer}.ffn`, elements: 65536,
    options: TYPES.map((type) => ({ type, bytes: tensorBytes(type, shape), paddedBytes: tensorBytes(type, shape) })),
  };
}
const tensors = [0, 1].flatMap((l) => [
  tensor(`blk.${l}.ffn_down_exps.weight`, l, "ffn_down_exps", "ffn_down"),
  tensor(`blk.${l}.ffn_down_shexp.weight`, l, "ffn_down_shexp", "ffn_down"),
]);
const space: TuneSpace = { tensors, excluded: [], groups: ["blk.0.ffn", "blk.1.ffn"], fixedBytes: 0, fixedPaddedBytes: 0, elements: 4 * 65536 };
// proxy error halves per bit
const errors: ProxyErrors = new Map(tensors.map((t) => [t.name, new Map(TYPES.map((type) => [type, 2 ** -typeBits(type)]))]));
const m = (group: string, type: GGMLType, kld: number, kldErr = kld / 100, topTokenPct = 90): Measurement => ({ group, type, kld, kldErr, ppl: 1, topTokenPct, seconds: 0 });

describe("sensitivity model", () => {
  const ms = [
    m("blk.0.ffn_down_exps", GGMLType.Q3_K, 2e-4),
    m("blk.0.ffn_down_shexp", GGMLType.Q3_K, 1e-4),
    m("blk.0.ffn", GGMLType.Q3_K, 3e-4),
    m("blk.0.ffn", GGMLType.IQ2_XXS, 6e-3),
    m("blk.1.ffn", GGMLType.Q3_K, 1e-4),
  ];

  it("scales expert and shared-expert kinds apart", () => {
    const beta = kindFactors(space, errors, ms);
    expect(beta.get("ffn_down_exps")! / beta.get("ffn_down_shexp")!).toBeCloseTo(2, 10);
  });

  it("reproduces every measured (group, type) and interpolates log α in bits between them", () => {
    const costs = costTable(space, errors, ms, "group");
    const group = (g: string, type: GGMLType) => tensors.filter((t) => t.group === g).reduce((a, t) => a + costs.get(t.name)!.get(type)!, 0);
    expect(group("blk.0.ffn", GGMLType.Q3_K)).toBeCloseTo(3e-4, 12);
    expect(group("blk.0.ffn", GGMLType.IQ2_XXS)).toBeCloseTo(6e-3, 12);
    expect(group("blk.1.ffn", GGMLType.Q3_K)).toBeCloseTo(1e-4, 12);
    // above the highest measured type α is held: q4_K's cost is q3_K's × the proxy's error ratio
    const ratio = 2 ** -(typeBits(GGMLType.Q4_K) - typeBits(GGMLType.Q3_K));
    expect(group("blk.0.ffn", GGMLType.Q4_K)).toBeCloseTo(3e-4 * ratio, 12);
    // one measured type only (blk.1): α is the same at every type
    expect(group("blk.1.ffn", GGMLType.IQ2_XXS) / group("blk.1.ffn", GGMLType.Q3_K)).toBeCloseTo(2 ** (typeBits(GGMLType.Q3_K) - typeBits(GGMLType.IQ2_XXS)), 10);
  });

  it("fits the objective's measure: changed top tokens for top", () => {
    expect(measuredCost(m("x", GGMLType.Q3_K, 1e-3, 1e-5, 97.5), "top")).toBeCloseTo(0.025, 12);
    expect(measuredCost(m("x", GGMLType.Q3_K, 1e-3, 1e-5, 97.5), "mean")).toBe(1e-3);
    const top = costTable(space, errors, [m("blk.0.ffn", GGMLType.Q3_K, 1e-3, 1e-5, 96)], "group", "top");
    const sum = tensors.filter((t) => t.group === "blk.0.ffn").reduce((a, t) => a + top.get(t.name)!.get(GGMLType.Q3_K)!, 0);
    expect(sum).toBeCloseTo(0.04, 12);
  });

  it("counts the decisions that rest on differences within the noise", () => {
    const a = new Map(tensors.map((t) => [t.name, t.layer === 0 ? GGMLType.Q6_K : GGMLType.Q3_K]));
    // the groups differ by 2e-4 with ± 1e-5 each: resolved
    expect(noiseCheck(space, [m("blk.0.ffn", GGMLType.Q3_K, 3e-4, 1e-5), m("blk.1.ffn", GGMLType.Q3_K, 1e-4, 1e-5)], a)).toEqual({ decisive: 1, withinNoise: 0, medianRelativeErr: 0.1 });
    // ± 2e-4 each: the difference is within √2 · 2e-4
    expect(noiseCheck(space, [m("blk.0.ffn", GGMLType.Q3_K, 3e-4, 2e-4), m("blk.1.ffn", GGMLType.Q3_K, 1e-4, 2e-4)], a).withinNoise).toBe(1);
    // the same bits for both groups: no decision between them
    const same = new Map(tensors.map((t) => [t.name, GGMLType.Q4_K]));
    expect(noiseCheck(space, [m("blk.0.ffn", GGMLType.Q3_K, 3e-4, 2e-4), m("blk.1.ffn", GGMLType.Q3_K, 1e-4, 2e-4)], same).decisive).toBe(0);
  });
});
