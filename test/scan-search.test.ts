// The search side of `hquant scan`, without llama.cpp: candidate enumeration per op, the greedy
// path on a mocked measure function (deterministic, ties to the earlier candidate, stopping rules),
// LaCo's walk on a mocked similarity, the measurement cache file, and the final schedule's round
// trip through the schedule parser and a real build of a factory model.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { openModel } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { parseSchedule, resolveSchedule } from "../src/plan/schedule.js";
import { enumerateCandidates, parseSearchOps } from "../src/scan/candidates.js";
import { greedySearch, stepCandidates, surgerySchedule } from "../src/scan/greedy.js";
import { lacoSearch, meanCosine } from "../src/scan/laco.js";
import { MeasureCache, type Measurement } from "../src/scan/measure.js";
import { applySurgery, formatRecipe, type SurgeryOp } from "../src/surgery/index.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-scan-search-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("candidate enumeration", () => {
  it("lists every single edit of each op in a fixed order", () => {
    const labels = (op: Parameters<typeof enumerateCandidates>[0], n: number, mergeCount?: number) => enumerateCandidates(op, n, { mergeCount }).map((c) => c.label);
    expect(labels("delete", 4)).toEqual(["delete 0", "delete 1", "delete 2", "delete 3"]);
    expect(labels("delete", 1)).toEqual([]);
    expect(labels("duplicate", 3)).toEqual(["duplicate 0", "duplicate 1", "duplicate 2"]);
    expect(labels("swap", 4)).toEqual(["swap 0-1", "swap 1-2", "swap 2-3"]);
    expect(labels("interpolate", 5)).toEqual(["interpolate 0,2", "interpolate 1,3", "interpolate 2,4"]);
    expect(labels("merge", 5)).toEqual(["merge 0-1", "merge 1-2", "merge 2-3", "merge 3-4"]);
    expect(labels("merge", 5, 3)).toEqual(["merge 0-2", "merge 1-3", "merge 2-4"]);
    expect(labels("merge", 2, 3)).toEqual([]);
  });

  it("makes ops that apply to the stack, with the layer count they say", () => {
    for (const op of parseSearchOps("all")) {
      for (const c of enumerateCandidates(op, 6, { mergeCount: 3 })) {
        expect(applySurgery(6, [c.op]).length).toBe(6 + c.layerDelta);
      }
    }
    // the interpolation of i and i+2 goes between them (after i+1)
    const [interp] = enumerateCandidates("interpolate", 4);
    expect(applySurgery(4, [interp!.op]).map(formatRecipe)).toEqual(["0", "1", "lerp(0, 2, 0.5)", "2", "3"]);
    expect(applySurgery(4, [enumerateCandidates("swap", 4)[2]!.op]).map(formatRecipe)).toEqual(["0", "1", "3", "2"]);
    expect(applySurgery(5, [enumerateCandidates("merge", 5, { mergeCount: 3 })[1]!.op]).map(formatRecipe)).toEqual(["0", "merge(1, 2, 3)", "4"]);
  });

  it("rejects a bad --op or --merge-count in one line", () => {
    expect(() => parseSearchOps("prune")).toThrow('--op must be delete, duplicate, swap, interpolate, merge or all (got "prune")');
    expect(() => enumerateCandidates("merge", 5, { mergeCount: 1 })).toThrow("--merge-count must be an integer ≥ 2 (got 1)");
  });

  it("keeps a target search to edits that move toward the target without passing it", () => {
    const ops = parseSearchOps("all");
    expect(new Set(stepCandidates(6, { ops, mergeCount: 3, targetLayers: 4 }).map((c) => c.op.op))).toEqual(new Set(["delete", "merge"]));
    expect(stepCandidates(5, { ops, mergeCount: 3, targetLayers: 4 }).every((c) => c.op.op === "delete")).toBe(true);
    expect(new Set(stepCandidates(4, { ops, targetLayers: 6 }).map((c) => c.op.op))).toEqual(new Set(["duplicate", "interpolate"]));
  });
});

/**
 * A mocked measurement: the KLD of a stack is the sum, over base layers missing from it, of that
 * layer's cost; PPL follows the KLD. Layers 3 and 5 cost the same, so the tie goes to the earlier
 * candidate.
 */
const COST = [5, 0.9, 0.2, 0.05, 0.3, 0.05, 0.4, 2];
function mockMeasure(calls: string[]) {
  return async (surgery: SurgeryOp[]): Promise<Measurement> => {
    calls.push(JSON.stringify(surgery));
    const recipes = applySurgery(COST.length, surgery);
    const present = new Set(recipes.flatMap((r) => (r.kind === "copy" ? [r.src] : [])));
    let kld = 0;
    COST.forEach((c, i) => (kld += present.has(i) ? 0 : c));
    return { layers: recipes.length, ppl: 10 * Math.exp(kld), pplErr: 0.1, dPpl: 10 * Math.exp(kld) - 10, kld, kldErr: 0.001, topTokenPct: 100 - 10 * kld, bytes: 1000 * recipes.length };
  };
}

describe("greedy search on a mocked measure", () => {
  it("takes the least harmful edit each step, rescans from the edited stack, and is deterministic", async () => {
    const run = async () => {
      const calls: string[] = [];
      const result = await greedySearch({ nLayer: COST.length, ops: ["delete"], targetLayers: 5, measure: mockMeasure(calls) });
      return { result, calls };
    };
    const a = await run();
    const b = await run();
    expect(b).toEqual(a);
    // 8 + 7 + 6 candidates; each step's indices refer to the stack the earlier deletes left
    expect(a.calls.length).toBe(8 + 7 + 6);
    expect(a.result.steps.map((s) => s.label)).toEqual(["delete 3", "delete 4", "delete 2"]);
    expect(a.result.surgery).toEqual([{ op: "delete", layers: [3] }, { op: "delete", layers: [4] }, { op: "delete", layers: [2] }]);
    // base layers 3, 5, 2 are gone (the tie between 3 and 5 went to 3)
    expect(applySurgery(COST.length, a.result.surgery).map(formatRecipe)).toEqual(["0", "1", "4", "6", "7"]);
    expect(a.result.steps.map((s) => s.measurement.layers)).toEqual([7, 6, 5]);
    expect(a.result.steps.map((s) => s.candidates)).toEqual([8, 7, 6]);
    expect(a.result.steps[2]!.measurement.kld).toBeCloseTo(0.05 + 0.05 + 0.2, 12);
    expect(a.result.stopped).toBe("reached 5 layers");
  });

  it("stops after K edits, or when the best edit's KLD reaches --max-kld", async () => {
    const k = await greedySearch({ nLayer: COST.length, ops: ["delete"], maxSteps: 1, measure: mockMeasure([]) });
    expect(k.steps.map((s) => s.label)).toEqual(["delete 3"]);
    expect(k.stopped).toBe("1 edit(s) made");
    const capped = await greedySearch({ nLayer: COST.length, ops: ["delete"], maxSteps: 6, maxKld: 0.2, measure: mockMeasure([]) });
    expect(capped.steps.map((s) => s.label)).toEqual(["delete 3", "delete 4"]);
    expect(capped.stopped).toBe("the best next edit (delete 2) costs KLD 0.300000 ≥ --max-kld 0.2");
    await expect(greedySearch({ nLayer: 8, ops: ["delete"], measure: mockMeasure([]) })).rejects.toThrow("a greedy search needs --greedy K or --target-layers N");
  });
});

describe("LaCo's walk on a mocked similarity", () => {
  it("tries merges from the highest layer down, moves by the interval after a kept merge, by 1 after a rejected one", async () => {
    const tried: string[] = [];
    // merges starting at an odd layer are rejected
    const result = await lacoSearch({
      nLayer: 16, mergeCount: 3, lowest: 2, highest: 12, interval: 2, threshold: 0.85, maxCompression: 0.25,
      similarity: async (s) => {
        const last = s[s.length - 1] as Extract<SurgeryOp, { op: "merge" }>;
        tried.push(`${last.from}`);
        return last.from % 2 === 1 ? 0.5 : 0.9;
      },
    });
    expect(tried).toEqual(["12", "10"]);
    expect(result.surgery).toEqual([{ op: "merge", from: 12, count: 3 }, { op: "merge", from: 10, count: 3 }]);
    expect(result.layers).toBe(12);
    expect(result.stopped).toBe("another merge would compress beyond 25.0 %");

    const odd: string[] = [];
    const r2 = await lacoSearch({
      nLayer: 16, mergeCount: 3, lowest: 2, highest: 11, interval: 3, threshold: 0.85, maxCompression: 0.3,
      similarity: async (s) => {
        const last = s[s.length - 1] as Extract<SurgeryOp, { op: "merge" }>;
        odd.push(`${last.from}`);
        return last.from % 2 === 1 ? 0.5 : 0.9;
      },
    });
    // 11 rejected → 10 kept → 7 rejected → 6 kept → 3 rejected → 2 kept (16 → 10 layers: 37.5 % > 30 %, so not tried)
    expect(odd).toEqual(["11", "10", "7", "6"]);
    expect(r2.trials.map((t) => t.accepted)).toEqual([false, true, false, true]);
    expect(r2.layers).toBe(12);
    expect(r2.stopped).toBe("another merge would compress beyond 30.0 %");
  });

  it("rejects parameters that cannot work, in one line", async () => {
    const base = { nLayer: 16, mergeCount: 3, lowest: 2, highest: 12, interval: 2, threshold: 0.85, maxCompression: 0.25, similarity: async () => 1 };
    await expect(lacoSearch({ ...base, highest: 14 })).rejects.toThrow("--laco-highest 14: a merge of 3 layers from there needs layers up to 16; the model has 16");
    await expect(lacoSearch({ ...base, maxCompression: 1.5 })).rejects.toThrow("--laco-max-compression must be a fraction between 0 and 1 (got 1.5)");
    await expect(lacoSearch({ ...base, lowest: 13 })).rejects.toThrow("--laco-highest 12 is below --laco-lowest 13");
  });

  it("averages per-token cosine similarities", () => {
    const a = new Float32Array([1, 0, 0, 1, 3, 4]);
    const b = new Float32Array([2, 0, 1, 0, 3, 4]);
    const r = meanCosine(a, b, 2);
    expect(r.count).toBe(3);
    expect(r.sum).toBeCloseTo(1 + 0 + 1, 12);
  });
});

describe("measurement cache", () => {
  it("reads back what was appended, keyed by kind and surgery, and drops a line cut short", () => {
    const file = path.join(tmp, "cache", "scan-x.jsonl");
    const c = new MeasureCache(file);
    const s: SurgeryOp[] = [{ op: "delete", layers: [3] }];
    c.put("kld", s, { kld: 0.5 });
    c.put("cosine", s, 0.97);
    fs.appendFileSync(file, '{"key":"kld:[]","value":{"kl');
    const again = new MeasureCache(file);
    expect(again.size).toBe(2);
    expect(again.get("kld", s)).toEqual({ kld: 0.5 });
    expect(again.get("cosine", s)).toBe(0.97);
    expect(again.get("kld", [])).toBeUndefined();
    expect(again.get("kld", [{ op: "delete", layers: [4] }])).toBeUndefined();
  });
});

describe("the search's schedule", () => {
  it("is schema-valid and builds the same model as the search's surgery", async () => {
    const input = await makeModel({ ...SMALL_LLAMA, nLayer: 6 });
    const surgery: SurgeryOp[] = [{ op: "merge", from: 3, count: 3 }, { op: "delete", layers: [1] }, { op: "swap", a: 0, b: 1 }, { op: "interpolate", a: 1, b: 2, alpha: 0.5, after: 2 }];
    const file = path.join(tmp, "schedule.json");
    fs.writeFileSync(file, JSON.stringify(surgerySchedule(surgery, "Q8_0", "search", "a test path"), null, 2));
    const parsed = parseSchedule(fs.readFileSync(file, "utf8"), file);
    expect(parsed.surgery).toEqual(surgery);
    expect(resolveSchedule(parsed, 6, file).recipes!.map(formatRecipe)).toEqual(["2", "0", "merge(3, 4, 5)", "lerp(0, merge(3, 4, 5), 0.5)"]);

    const fromFile = path.join(tmp, "from-schedule.gguf");
    const direct = path.join(tmp, "direct.gguf");
    await buildModel({ input, output: fromFile, threads: 1, hquant: false, schedule: (m) => scheduleFromOptions({ schedule: file }, mixtureHParams(m.kv).nLayer) });
    await buildModel({ input, output: direct, threads: 1, hquant: false, schedule: resolveSchedule({ ftype: "Q8_0", surgery }, 6, "direct", "search") });
    expect(fs.readFileSync(fromFile).equals(fs.readFileSync(direct))).toBe(true);
    expect(mixtureHParams((await openModel(fromFile)).kv).nLayer).toBe(4);
  });
});
