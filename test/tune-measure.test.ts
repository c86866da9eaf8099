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
import { measurePoints, type MeasureOptions } from "../src/tune/measure.js";

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
});
