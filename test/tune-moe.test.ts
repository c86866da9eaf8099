// `hquant tune` end to end on the factory MoE model (llama with 4 experts, 3-D ffn_{gate,up,down}_exps):
// measure mode with an imatrix at a low-bit budget → the schedule → the build → llama.cpp loads and
// evaluates the tuned file. The expert tensors are measured and scaled per kind (gate/up/down apart)
// and per layer, the file is the planned size to the byte within the budget, and --objective picks
// what is minimised (measurements reused from the cache).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { planSizes, planWithOptions } from "../src/cli/commands/plan.js";
import { registerTune } from "../src/cli/commands/tune.js";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { openModel, readHeaderAt } from "../src/gguf/reader.js";
import { loadImatrix, readImatrixInfo } from "../src/imatrix/index.js";
import { parseBudget } from "../src/tune/budget.js";
import { tuneSpace } from "../src/tune/candidates.js";
import { tune } from "../src/tune/index.js";
import { proxyErrors } from "../src/tune/proxy.js";
import { costTable, kindFactors } from "../src/tune/sensitivity.js";
import { runCommand } from "./cli-util.js";
import { makeModel, SMALL_LLAMA, syntheticImatrix } from "./factory.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-moe-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TEXT = fs.readFileSync(path.resolve(__dirname, "fixtures/imatrix/moe/letters.txt"), "utf8");
const KINDS = ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"];

describe("tune on an MoE model", () => {
  it("tunes experts per layer and kind; the schedule builds to its planned size and llama.cpp evaluates it", { timeout: 900_000 }, async () => {
    const model = await makeModel({ ...SMALL_LLAMA, nLayer: 3, nEmbd: 256, nFf: 256, nExpert: 4, nExpertUsed: 2, nVocab: 96, seed: 17, dir: tmp });
    const imatrixFile = await syntheticImatrix(model, 29, tmp);
    const out = path.join(tmp, "out");
    const common = {
      base: model,
      text: TEXT.slice(0, 1500),
      textName: "letters-a",
      evalText: TEXT.slice(1500),
      evalTextName: "letters-b",
      budgets: [parseBudget("2.6")],
      imatrix: imatrixFile,
      ctx: 64,
      chunks: 1,
      threads: 2,
      cacheDir: path.join(tmp, "cache"),
      workDir: tmp,
      keepFiles: true,
    };
    const r = await tune({ ...common, outDir: out });
    const b = r.budgets[0]!;
    // every expert kind was measured alone in the sampled layers
    for (const k of KINDS) for (const l of [0, 1, 2]) expect(r.measurements.some((m) => m.group === `blk.${l}.${k}`), `blk.${l}.${k}`).toBe(true);
    // and has its own scale
    const m = await openModel(model);
    const space = tuneSpace(m, undefined, await loadImatrix(imatrixFile));
    const errors = await proxyErrors(m, space, await loadImatrix(imatrixFile));
    const beta = kindFactors(space, errors, r.measurements);
    expect(new Set(KINDS.map((k) => beta.get(k))).size).toBe(3);
    // the costs differ per layer for the same kind and type (each layer's FFN group has its own α)
    const costs = costTable(space, errors, r.measurements, "group");
    const perLayer = [0, 1, 2].map((l) => costs.get(`blk.${l}.ffn_down_exps.weight`)!.get(GGMLType.Q3_K)! / errors.get(`blk.${l}.ffn_down_exps.weight`)!.get(GGMLType.Q3_K)!);
    expect(new Set(perLayer.map((x) => x.toPrecision(6))).size).toBe(3);

    // the written schedule plans to the tuned size, within the budget; the kept file is that size and has those types
    const { plan } = planWithOptions(m, { schedule: b.scheduleFile }, model);
    const sizes = planSizes(m, plan, await readImatrixInfo(plan.schedule.imatrix!));
    expect(sizes.fileBytes).toBe(b.chosen.fileBytes);
    expect((plan.tensorBytes * 8) / plan.elements).toBeLessThanOrEqual(2.6);
    expect(fs.statSync(b.gguf!).size).toBe(b.chosen.fileBytes);
    const header = await readHeaderAt(b.gguf!);
    for (const [name, type] of Object.entries(b.types)) expect(typeName(header.tensors.find((t) => t.name === name)!.type), name).toBe(type);
    // the experts are tuned (low-bit types among them) and kinds may differ
    const expertTypes = Object.entries(b.types).filter(([n]) => n.includes("_exps"));
    expect(expertTypes.length).toBe(9);
    expect(expertTypes.some(([, t]) => t.startsWith("iq"))).toBe(true);
    // llama.cpp loaded and evaluated the tuned file on the held-out text
    expect(b.heldOut).toBe(true);
    expect(Number.isFinite(b.eval!.kld)).toBe(true);
    expect(b.eval!.kld).toBeGreaterThan(0);
    expect(b.eval!.topTokenPct).toBeGreaterThan(0);
    // the report names each measurement's ±
    expect(b.noise).toBeDefined();
    for (const x of r.measurements) expect(x.kldErr).toBeGreaterThan(0);

    // --objective top: the same measurements (none made again), a schedule that says so
    const top = await tune({ ...common, outDir: path.join(tmp, "top"), objective: "top" });
    expect(top.measuredNow).toBe(0);
    expect(top.objective).toBe("top");
    expect(top.budgets[0]!.schedule.description).toContain("objective top");
    const p99 = await tune({ ...common, outDir: path.join(tmp, "p99"), objective: "p99" });
    // p99 allocates on the mean-KLD model and keeps the candidate with the lowest measured p99
    const best = Math.min(...p99.budgets[0]!.candidates.map((c) => c.calib!.kld99));
    expect(p99.budgets[0]!.chosen.calib!.kld99).toBe(best);
  });

  it("--objective must be mean, p99 or top", async () => {
    expect(await runCommand(registerTune, "tune", ["models/tinyllama-16l-f16.gguf", "--budget", "4", "--text", "test/fixtures/calib.txt", "--objective", "max"])).toBe(
      '--objective must be mean, p99, top (got "max")',
    );
  });
});
