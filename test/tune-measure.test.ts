// Sensitivity measurements: a real build + evaluation per (group, type), cached on disk — a second
// run reads them instead of measuring, an interrupted one resumes from what was written.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { evaluateBase } from "../src/eval/evaluate.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { openModel } from "../src/gguf/reader.js";
import { tuneSpace } from "../src/tune/candidates.js";
import { measurePoints, type MeasureCost, type MeasureOptions } from "../src/tune/measure.js";
import { buildModel } from "../src/build/index.js";
import { evaluateAgainstBase } from "../src/eval/evaluate.js";
import { tensorBytes } from "../src/gguf/ggml-types.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { unitTensors } from "../src/tune/candidates.js";
import { writtenType } from "../src/tune/measure.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-measure-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("measurePoints", () => {
  it("measures each point once; later runs take it from the cache; a lost entry is re-measured alone", { timeout: 600_000 }, async () => {
    const model = await openModel(BASE);
    const space = tuneSpace(model);
    const text = fs.readFileSync("test/fixtures/calib.txt", "utf8").slice(0, 4000);
    const evalOpts = { ctx: 64, chunks: 1, threads: 2, cacheDir: path.join(tmp, "cache") };
    const baseEval = await evaluateBase(BASE, text, "calib-slice", evalOpts);
    const opts: MeasureOptions = { ...evalOpts, base: BASE, baseEval, dir: path.join(tmp, "measure"), nLayer: 16, restType: GGMLType.F16 };
    const points = [
      { group: "blk.3.ffn", type: GGMLType.Q2_K },
      { group: "blk.3.ffn", type: GGMLType.Q8_0 },
      { group: "output", type: GGMLType.Q2_K },
    ];
    const first = await measurePoints(space, points, opts);
    expect(first.measured).toBe(3);
    const [ffnLow, ffnHigh, output] = first.measurements;
    // lowering a group costs KLD; q2_K far more than q8_0
    expect(ffnLow!.kld).toBeGreaterThan(10 * Math.max(ffnHigh!.kld, 1e-6));
    expect(output!.kld).toBeGreaterThan(0);
    expect(fs.readdirSync(opts.dir).sort()).toEqual(["blk.3.ffn@q2_K.json", "blk.3.ffn@q8_0.json", "output@q2_K.json"]);

    const again = await measurePoints(space, points, opts);
    expect(again.measured).toBe(0);
    expect(again.measurements).toEqual(first.measurements);

    fs.rmSync(path.join(opts.dir, "output@q2_K.json"));
    const resumed = await measurePoints(space, points, opts);
    expect(resumed.measured).toBe(1);
    // the evaluator is deterministic: the re-measured point is the same figure
    expect(resumed.measurements[2]!.kld).toBe(output!.kld);
    expect(resumed.measurements.slice(0, 2)).toEqual(first.measurements.slice(0, 2));
  });

  it("a measurement loaded from shards (the base's, its group's own) evaluates exactly as the whole file; it writes only the group", { timeout: 600_000 }, async () => {
    const model = await openModel(BASE);
    const space = tuneSpace(model);
    const text = fs.readFileSync("test/fixtures/calib.txt", "utf8").slice(0, 4000);
    const evalOpts = { ctx: 64, chunks: 2, threads: 2, cacheDir: path.join(tmp, "cache2") };
    const baseEval = await evaluateBase(BASE, text, "calib-slice", evalOpts);
    const costs: MeasureCost[] = [];
    let baseBytes = 0;
    const opts = {
      ...evalOpts, base: BASE, baseEval, dir: path.join(tmp, "measure2"), nLayer: 16, restType: GGMLType.F16,
      onCost: (_: unknown, c: MeasureCost) => costs.push(c),
      onBase: (bytes: number) => (baseBytes = bytes),
    };
    // token_embd is the first tensor of the file; blk.7.attn_v.weight a one-tensor kind point
    const points = [
      { group: "token_embd", type: GGMLType.Q4_K },
      { group: "blk.7.attn", type: GGMLType.Q3_K },
      { group: "blk.7.attn_v", type: GGMLType.IQ4_XS },
    ];
    const { measurements } = await measurePoints(space, points, opts);
    // the base shards hold the model once (its bytes, one header per tensor)
    expect(baseBytes).toBeGreaterThan(fs.statSync(BASE).size);
    expect(baseBytes).toBeLessThan(fs.statSync(BASE).size + 1024 * 1024);
    for (const [k, p] of points.entries()) {
      // the whole file, as measurements were built before shards
      const file = path.join(tmp, `whole-${k}.gguf`);
      const names = unitTensors(space, p.group).map((t) => t.name);
      await buildModel({
        input: BASE, output: file, threads: 2, hquant: false,
        schedule: uniformSchedule("Q8_0", 16, {
          tensorTypes: [...names.map((n) => ({ pattern: `^${n.replace(/\./g, "\\.")}$`, type: p.type })), { pattern: ".", type: GGMLType.F16 }],
        }),
      });
      const whole = await evaluateAgainstBase(baseEval, file, evalOpts);
      fs.rmSync(file);
      expect(measurements[k]!.kld).toBe(whole.kld);
      expect(measurements[k]!.ppl).toBe(whole.ppl);
      expect(measurements[k]!.kld).toBeGreaterThan(0);
      // written: the group's quantized tensors, one small header each
      const groupBytes = unitTensors(space, p.group).reduce((a, t) => a + tensorBytes(writtenType(t.shape[0]!, p.type), t.shape), 0);
      expect(costs[k]!.bytesWritten).toBeGreaterThanOrEqual(groupBytes);
      expect(costs[k]!.bytesWritten).toBeLessThan(groupBytes + names.length * 4096);
    }
  });
});
