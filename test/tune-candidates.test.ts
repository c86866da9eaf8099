// Tune's candidate types against llama.cpp's constraints: the low-bit types that need an importance
// vector (tensor_requires_imatrix, ggml_quantize_requires_imatrix) are candidates only where the
// build gives the tensor one, row-width fallbacks are what is offered, and a tuned low-bit schedule
// (dense and MoE, expert tensors and shared experts per kind) builds byte-identical to llama-quantize
// given the same per-tensor types; budgets below the reachable minimum get the one-line error with
// the smallest size and what would reach lower.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { registerTune } from "../src/cli/commands/tune.js";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import type { GGUFModel } from "../src/gguf/model.js";
import { openModel } from "../src/gguf/reader.js";
import { loadImatrix, readImatrixInfo, type Imatrix } from "../src/imatrix/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { requiresImatrix } from "../src/plan/planner.js";
import { resolveSchedule } from "../src/plan/schedule.js";
import { shapeFallback } from "../src/plan/tensors.js";
import { QuantizePool } from "../src/pool/index.js";
import { parseTypeList, tuneSpace, typeBits, type TuneSpace } from "../src/tune/candidates.js";
import { allocate, smallestAssignment } from "../src/tune/fit.js";
import { checkPlanMatches, scheduleFile, sizeSchedule, type Assignment } from "../src/tune/schedule.js";
import type { CostTable } from "../src/tune/sensitivity.js";
import { writeArchModel, archKV, embd, head, denseLayer, moeFfn, type ArchModel } from "./arch-models.js";
import { firstDifference } from "./build-util.js";
import { runCommand } from "./cli-util.js";
import { makeModel, SMALL_LLAMA, syntheticImatrix, u32kv } from "./factory.js";
import { BUNDLED_IMATRIX, BUNDLED_MODEL } from "./lowbit-models.js";
import { llamaQuantize } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-candidates-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const LOW = [GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.IQ3_XXS];
/** ggml_quantize_requires_imatrix: no importance weights, no file (llama.cpp aborts) */
const ABORTS = [GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S];

/** Costs that make the knapsack use many types: error halves per bit, each tensor with its own weight. */
function syntheticCosts(space: TuneSpace): CostTable {
  return new Map(space.tensors.map((t, i) => [t.name, new Map(t.options.map((o) => [o.type, ((1 + ((i * 7) % 11)) * t.elements * 2 ** -typeBits(o.type)) / 1e6]))]));
}

const optionTypes = (space: TuneSpace, name: string) => space.tensors.find((t) => t.name === name)!.options.map((o) => o.type);

describe("candidate types on the bundled model", () => {
  let model: GGUFModel;
  let imatrix: Imatrix;
  beforeAll(async () => {
    model = await openModel(BUNDLED_MODEL);
    imatrix = await loadImatrix(BUNDLED_IMATRIX);
  });

  it("offers the imatrix-only types only where the build gives the tensor importance weights", () => {
    const without = tuneSpace(model);
    const withIm = tuneSpace(model, undefined, imatrix);
    for (const t of without.tensors) {
      const types = optionTypes(without, t.name);
      // tensor_requires_imatrix: every layer tensor loses iq1_*, iq2_*, iq3_xxs
      for (const type of LOW) {
        if (requiresImatrix(t.name, type, "Q8_0")) expect(types, `${t.name} ${typeName(type)}`).not.toContain(type);
      }
      // ggml cannot make these without weights at all, embeddings included
      for (const type of ABORTS) expect(types).not.toContain(type);
    }
    // the embeddings and the output may take iq1_m / iq2_s / iq3_xxs without an imatrix (llama.cpp does)
    expect(optionTypes(without, "token_embd.weight")).toEqual(expect.arrayContaining([GGMLType.IQ1_M, GGMLType.IQ2_S, GGMLType.IQ3_XXS]));
    expect(optionTypes(without, "output.weight")[0]).toBe(GGMLType.IQ1_M);
    // with the imatrix: every tensor it has an entry for gets all of them; token_embd (no entry) still not the aborting ones
    for (const t of withIm.tensors) {
      const has = imatrix.vectors.get(t.name)?.length === t.shape[0]! * (t.shape[2] ?? 1);
      for (const type of LOW) {
        const offered = optionTypes(withIm, t.name).includes(type);
        expect(offered, `${t.name} ${typeName(type)}`).toBe(has || !(requiresImatrix(t.name, type, "Q8_0") || ABORTS.includes(type)));
      }
    }
    expect(imatrix.vectors.has("token_embd.weight")).toBe(false);
    expect(optionTypes(withIm, "token_embd.weight")).not.toContain(GGMLType.IQ2_XXS);
    expect(withIm.excluded.filter((x) => x.tensor === "token_embd.weight").map((x) => typeName(x.type)).sort()).toEqual(["iq1_s", "iq2_xs", "iq2_xxs"]);
  });

  it("the excluded choices really fail in the build, the offered embedding ones build", async () => {
    const nLayer = 16;
    const plan = (types: string[], im?: string) => ({
      input: BUNDLED_MODEL,
      output: path.join(tmp, "excluded.gguf"),
      pool,
      imatrix: im,
      schedule: resolveSchedule({ ftype: "Q8_0", tensor_types: types }, nLayer, "test"),
    });
    await expect(buildModel(plan(["^blk\\.0\\.attn_q\\.weight$=iq2_s"]))).rejects.toThrow("blk.0.attn_q.weight: type iq2_s (file type Q8_0) needs an importance matrix (--imatrix)");
    await expect(buildModel(plan(["^token_embd\\.weight$=iq2_xxs"], BUNDLED_IMATRIX))).rejects.toThrow(
      `token_embd.weight: type iq2_xxs cannot be made without importance weights, and ${BUNDLED_IMATRIX} has no usable entry for it (llama.cpp aborts)`,
    );
    // the smallest file tune may plan without an imatrix builds: iq1_m embeddings and output, q2_K elsewhere
    const space = tuneSpace(await openModel(BUNDLED_MODEL));
    const smallest = smallestAssignment(space);
    expect(new Set(smallest.values())).toEqual(new Set([GGMLType.IQ1_M, GGMLType.Q2_K]));
    const file = scheduleFile(space, smallest, { name: "smallest", description: "test" });
    const built = await buildModel({ input: BUNDLED_MODEL, output: path.join(tmp, "smallest.gguf"), pool, schedule: resolveSchedule(file, nLayer, "test") });
    expect(built.plan.tensorBytes).toBe(sizeSchedule(await openModel(BUNDLED_MODEL), file, undefined).plan.tensorBytes);
    checkPlanMatches(space, smallest, built.plan);
    fs.rmSync(path.join(tmp, "smallest.gguf"));
  }, 300_000);

  it("row-width fallbacks: an option is the type written, q1_0 where its block does not fit is no option", async () => {
    // the factory's GQA model with 320-wide ffn_down rows: every 256-block type falls back there
    const m = await makeModel({ ...SMALL_LLAMA, nLayer: 2, nEmbd: 256, nHead: 8, nHeadKv: 2, nFf: 320, nVocab: 64, seed: 131, dir: tmp });
    const space = tuneSpace(await openModel(m), parseTypeList("iq2_xxs,q2_K,q3_K,iq4_xs,q4_K,q1_0,q8_0"), "every tensor");
    const down = space.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!;
    expect(down.shape[0]).toBe(320);
    expect(down.options.map((o) => typeName(o.type))).toEqual(["q4_0", "iq4_nl", "q5_0", "q8_0"]);
    for (const o of down.options) expect(shapeFallback(320, o.type).type).toBe(o.type);
    expect(space.excluded).toContainEqual({ tensor: "blk.0.ffn_down.weight", type: GGMLType.Q1_0, reason: "shape" });
    const up = space.tensors.find((t) => t.name === "blk.0.ffn_up.weight")!;
    expect(up.options.map((o) => typeName(o.type))).toEqual(["q1_0", "iq2_xxs", "q2_K", "q3_K", "iq4_xs", "q4_K", "q8_0"]);
  });
});

/** Builds a tuned low-bit schedule with hquant and llama-quantize (the same per-tensor types as --tensor-type) and compares the bytes. */
async function expectTunedIdentity(modelFile: string, imatrixFile: string | undefined, bpw: number, tag: string): Promise<Assignment> {
  const model = await openModel(modelFile);
  const nLayer = mixtureHParams(model.kv).nLayer;
  const imatrix = imatrixFile ? await loadImatrix(imatrixFile) : undefined;
  const space = tuneSpace(model, undefined, imatrix);
  const info = imatrixFile ? { ...(await readImatrixInfo(imatrixFile)), file: imatrixFile } : undefined;
  const size = (a: Assignment) => sizeSchedule(model, scheduleFile(space, a, { name: tag, description: "test", imatrix: imatrixFile }), info);
  const limit = { kind: "bpw" as const, bpw, maxTensorBytes: Math.floor((bpw * space.elements) / 8), label: `${bpw}` };
  const a = allocate(space, syntheticCosts(space), limit, size)!;
  checkPlanMatches(space, a.assignment, a.sized.plan);
  // never a type without the importance vector it needs
  for (const t of a.sized.plan.tensors) if (t.requiresImatrix) expect(imatrix?.vectors.has(t.name), t.name).toBe(true);
  const scheduleName = path.join(tmp, `${tag}.schedule.json`);
  fs.writeFileSync(scheduleName, JSON.stringify(a.sized.file));
  const ours = path.join(tmp, `${tag}.hquant.gguf`);
  const ref = path.join(tmp, `${tag}.llama.gguf`);
  const built = await buildModel({ input: modelFile, output: ours, pool, schedule: scheduleFromOptions({ schedule: scheduleName }, nLayer) });
  expect(built.plan.tensorBytes).toBe(a.sized.plan.tensorBytes);
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const tensorTypes = [...a.assignment].map(([n, type]): [string, string] => [`^${escape(n)}$`, typeName(type).toLowerCase()]);
  llamaQuantize(modelFile, ref, { ftype: a.sized.file.ftype!, threads: 2, imatrixFile, tensorTypes });
  const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
  expect(same, same ? "" : `${tag}: ${firstDifference(ref, ours)}`).toBe(true);
  fs.rmSync(ours);
  fs.rmSync(ref);
  return a.assignment;
}

describe("tuned low-bit schedules build byte-identical to llama-quantize", () => {
  it("qwen3 MoE (3-D experts, one importance slice per expert) at 2.4 bpw, with the imatrix", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, arch: "qwen3", nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 256, nVocab: 300, nExpert: 4, seed: 9, dir: tmp });
    const imatrix = await syntheticImatrix(model, 23, tmp);
    for (const bpw of [2.4]) {
      const a = await expectTunedIdentity(model, imatrix, bpw, `moe-${bpw}`);
      const lowbit = [...a.values()].filter((t) => LOW.includes(t));
      expect(lowbit.length, `${bpw} bpw uses low-bit types`).toBeGreaterThan(0);
    }
  }, 300_000);

  it("qwen3 MoE without an imatrix: only the types llama.cpp makes without one", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, arch: "qwen3", nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 256, nVocab: 300, nExpert: 4, seed: 9, dir: tmp });
    const a = await expectTunedIdentity(model, undefined, 2.9, "moe-noimat");
    for (const [n, t] of a) if (n !== "token_embd.weight" && n !== "output.weight") expect(LOW, n).not.toContain(t);
  }, 300_000);

  it("shared experts: their own kind, in their layer's FFN group; a per-kind schedule plans exactly", async () => {
    const m: ArchModel = {
      label: "qwen2moe shared experts",
      arch: "qwen2moe",
      kv: archKV("qwen2moe", 2, { nHead: 4, nHeadKv: 4, extra: [u32kv("qwen2moe.expert_count", 4), u32kv("qwen2moe.expert_used_count", 2)] }),
      tensors: [...embd(), ...[0, 1].flatMap((l) => [...denseLayer(l).filter((t) => !/ffn_(gate|up|down)\./.test(t.name)), ...moeFfn(l, 4, 256, true)]), ...head()],
    };
    const file = await writeArchModel(m, tmp, 0);
    const model = await openModel(file);
    const space = tuneSpace(model);
    const kinds = new Set(space.tensors.filter((t) => t.layer === 1).map((t) => t.kind));
    expect(kinds).toEqual(new Set(["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"]));
    for (const t of space.tensors) if (t.kind.includes("exp")) expect(t.group).toBe(`blk.${t.layer}.ffn`);
    // the router is never quantized by llama.cpp: not a candidate
    expect(space.tensors.some((t) => t.name.includes("ffn_gate_inp"))).toBe(false);
    // gate/up/down experts and shared experts at different types, per layer
    const pick: Record<string, GGMLType> = { ffn_gate_exps: GGMLType.Q3_K, ffn_up_exps: GGMLType.Q4_K, ffn_down_exps: GGMLType.Q5_K, ffn_gate_shexp: GGMLType.Q6_K, ffn_up_shexp: GGMLType.Q8_0, ffn_down_shexp: GGMLType.Q4_0 };
    const a = new Map(space.tensors.map((t) => [t.name, pick[t.kind] ?? t.options[t.layer === 0 ? 0 : t.options.length - 2]!.type]));
    const sized = sizeSchedule(model, scheduleFile(space, a, { name: "shexp", description: "test" }), undefined);
    checkPlanMatches(space, a, sized.plan);
  });
});

describe("budgets below the reachable minimum", () => {
  const run = (args: string[]) => runCommand(registerTune, "tune", args);
  const CALIB = "test/fixtures/calib.txt";
  it("say the smallest reachable size and what would reach lower, in one line", async () => {
    const model = await openModel(BUNDLED_MODEL);
    const mk = (space: TuneSpace, im?: { file: string; datasets: string[]; entries: number; chunks: number }) =>
      sizeSchedule(model, scheduleFile(space, smallestAssignment(space), { name: "tune-IQ2_XXS", description: "x", imatrix: im?.file }), im);
    const noIm = mk(tuneSpace(model));
    const mib = (n: number) => `${n} bytes (${(n / 1048576).toFixed(2)} MiB)`;
    const out = path.join(tmp, "never");
    // IQ2_XXS's size needs the imatrix-only types
    const everyTensor = tuneSpace(model, undefined, "every tensor");
    const msg = await run([BUNDLED_MODEL, "--budget", "IQ2_XXS", "--text", CALIB, "--out", out]);
    expect(msg).toMatch(new RegExp(`^--budget IQ2_XXS: below the smallest file these types can make of this model, ${noIm.fileBytes} bytes \\(\\d+\\.\\d\\d MiB\\); the low-bit --types \\(iq1_s … iq3_xxs\\) with an --imatrix reach \\d+ bytes`));
    const reach = Number(/reach (\d+) bytes/.exec(msg)![1]);
    // the hint is the smallest file with an imatrix covering every tensor (iq1_s everywhere llama.cpp allows)
    expect(reach).toBe(sizeSchedule(model, scheduleFile(everyTensor, smallestAssignment(everyTensor), { name: "tune-IQ2_XXS", description: "x" }), undefined).fileBytes);
    expect(msg).toBe(`--budget IQ2_XXS: below the smallest file these types can make of this model, ${mib(noIm.fileBytes)}; the low-bit --types (iq1_s … iq3_xxs) with an --imatrix reach ${mib(reach)}`);
    // with the imatrix the same budget is reachable (no error before the work: checked with a budget just below the minimum)
    const im = { ...(await readImatrixInfo(BUNDLED_IMATRIX)), file: path.join(out, path.relative(out, path.resolve(BUNDLED_IMATRIX))) };
    const withIm = mk(tuneSpace(model, undefined, await loadImatrix(BUNDLED_IMATRIX)), im);
    expect(withIm.fileBytes).toBeLessThan(noIm.fileBytes);
    // restricted --types with the imatrix: the hint points at the default --types
    const q = await run([BUNDLED_MODEL, "--budget", "1.8", "--text", CALIB, "--imatrix", BUNDLED_IMATRIX, "--types", "q2_K,q4_K", "--out", out]);
    expect(q).toMatch(/^--budget 1\.8: below the smallest file these types can make of this model, 2\.\d{4} bpw; the default --types reach 1\.\d{4} bpw$/);
    // 1.8 bpw is reachable with the default types and the imatrix
    const minBpw = Number(/reach (1\.\d{4}) bpw/.exec(q)![1]);
    expect(minBpw).toBeLessThan(1.8);
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);

  it("a candidate list no tensor can use without an imatrix is a one-line error", async () => {
    expect(await run([BUNDLED_MODEL, "--budget", "3", "--text", CALIB, "--types", "iq2_xxs,iq1_s", "--out", path.join(tmp, "never")])).toBe(
      "--types: no candidate type can be made for output.weight (iq2_xxs needs an imatrix entry, iq1_s needs an imatrix entry); add a type such as q4_K or give --imatrix",
    );
  });
});
