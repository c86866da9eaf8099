// The search on the bundled 16-layer model over one 256-token chunk of the calibration text: a
// one-step greedy merge search through the CLI writes a schedule that `hquant build --schedule`
// turns into the searched stack; a second measurer on the same cache builds nothing; LaCo's
// similarity (final hidden states through llama.cpp) is 1 for the unedited model and far lower
// after deleting layer 0 than after deleting layer 3 (measured over 16 chunks: 0.049 vs 0.96+).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { registerBuild } from "../src/cli/commands/build.js";
import { registerScan } from "../src/cli/commands/scan.js";
import { openModel } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { parseSchedule } from "../src/plan/schedule.js";
import type { GreedyResult } from "../src/scan/greedy.js";
import { hiddenStates, HiddenStateSimilarity, meanCosine } from "../src/scan/laco.js";
import { CandidateMeasurer } from "../src/scan/measure.js";
import { evaluateAgainstBase } from "../src/eval/evaluate.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { runCommand } from "./cli-util.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const CALIB = "test/fixtures/calib.txt";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-scan-search-model-"));
const cacheDir = path.join(tmp, "cache");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("greedy search on the bundled model", () => {
  it("writes a schedule that hquant build reproduces; the cache serves a second run", { timeout: 600_000 }, async () => {
    const json = path.join(tmp, "search.json");
    const schedule = path.join(tmp, "schedule.json");
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => (printed.push(s), true)) as typeof process.stdout.write;
    let result: string;
    try {
      result = await runCommand(registerScan, "scan", [BASE, "--text", CALIB, "--op", "merge", "--merge-count", "15", "--greedy", "1", "--ctx", "256", "--chunks", "1",
        "--threads", "2", "--cache-dir", cacheDir, "--json", json, "--schedule-out", schedule, "--no-progress"]);
    } finally {
      process.stdout.write = write;
    }
    expect(result).toBe("ok");
    const report = JSON.parse(fs.readFileSync(json, "utf8")) as { chunks: number; result: GreedyResult };
    expect(report.chunks).toBe(1);
    const [step] = report.result.steps;
    expect(report.result.steps.length).toBe(1);
    // the two merges of 15 layers: 0-14 or 1-15 (keeping layer 0 intact is far less harmful)
    expect(step!.label).toBe("merge 1-15");
    expect(step!.candidates).toBe(2);
    expect(step!.measurement.layers).toBe(2);
    expect(printed.join("")).toMatch(/\| 1 \| merge 1-15 \| 2 \| /);

    const parsed = parseSchedule(fs.readFileSync(schedule, "utf8"), schedule);
    expect(parsed.surgery).toEqual([{ op: "merge", from: 1, count: 15 }]);
    expect(parsed.ftype).toBe("F16");
    const built = path.join(tmp, "built.gguf");
    expect(await runCommand(registerBuild, "build", [BASE, built, "--schedule", schedule, "--threads", "2"])).toBe("ok");
    const builtModel = await openModel(built);
    expect(mixtureHParams(builtModel.kv, built).nLayer).toBe(2);

    const again = await CandidateMeasurer.open({ base: BASE, text: fs.readFileSync(CALIB, "utf8"), textName: "calib.txt", ctx: 256, chunks: 1, threads: 2, cacheDir });
    try {
      expect(await again.measure([{ op: "merge", from: 1, count: 15 }])).toEqual(step!.measurement);
      expect(await again.measure([{ op: "merge", from: 0, count: 15 }])).toHaveProperty("layers", 2);
      expect([again.hits, again.misses]).toEqual([2, 0]);
      // the measured model (shards) holds the CLI build's tensors, byte for byte (the CLI adds hquant.* keys to the header)
      const builtBytes = fs.readFileSync(built);
      await again.withBuild([{ op: "merge", from: 1, count: 15 }], async (files, bytes) => {
        expect(bytes).toBe(step!.measurement.bytes);
        const names: string[] = [];
        for (const f of files.slice(1)) {
          const h = await readHeaderAt(f);
          expect(h.tensors.length).toBe(1);
          const t = h.tensors[0]!;
          const ref = builtModel.tensors.find((x) => x.name === t.name)!;
          expect([t.name, t.type]).toEqual([ref.name, ref.type]);
          const at = builtModel.files[0]!.dataOffset + ref.offset;
          expect(fs.readFileSync(f).subarray(h.dataOffset + t.offset, h.dataOffset + t.offset + t.bytes).equals(builtBytes.subarray(at, at + ref.bytes))).toBe(true);
          names.push(t.name);
        }
        expect(names.sort()).toEqual(builtModel.tensors.map((t) => t.name).sort());
      });
      // and evaluates exactly as the whole file
      const whole = await evaluateAgainstBase(again.base, built, { ctx: 256, chunks: 1, threads: 2, cacheDir });
      expect(whole.kld).toBe(step!.measurement.kld);
      expect(whole.ppl).toBe(step!.measurement.ppl);
    } finally {
      await again.close();
    }
  });
});

describe("LaCo's similarity on the bundled model", () => {
  it("is 1 for the unedited model and ranks deleting layer 0 far below deleting layer 3", { timeout: 600_000 }, async () => {
    const measurer = await CandidateMeasurer.open({ base: BASE, text: fs.readFileSync(CALIB, "utf8"), textName: "calib.txt", ctx: 256, chunks: 1, threads: 2, cacheDir });
    try {
      const sim = await HiddenStateSimilarity.open(measurer);
      expect(await sim.similarity([])).toBeCloseTo(1, 6);
      const del3 = await sim.similarity([{ op: "delete", layers: [3] }]);
      const del0 = await sim.similarity([{ op: "delete", layers: [0] }]);
      expect(del3).toBeGreaterThan(0.9);
      expect(del3).toBeLessThan(1 - 1e-4);
      expect(del0).toBeLessThan(0.5);
      expect(measurer.cache.get("cosine", [{ op: "delete", layers: [0] }])).toBe(del0);
    } finally {
      await measurer.close();
    }
  });

  it("gives the same hidden states, bit for bit, in the evaluation process as in this one (HQUANT_ISOLATION=0)", { timeout: 600_000 }, async () => {
    const measurer = await CandidateMeasurer.open({ base: BASE, text: fs.readFileSync(CALIB, "utf8"), textName: "calib.txt", ctx: 256, chunks: 1, threads: 2, cacheDir });
    const input = { tokens: measurer.base.tokens, plan: measurer.base.plan, threads: 2 };
    const both = async (file: string | string[]) => {
      const isolated = await hiddenStates(file, input);
      const saved = process.env.HQUANT_ISOLATION;
      process.env.HQUANT_ISOLATION = "0";
      try {
        return { isolated, direct: await hiddenStates(file, input) };
      } finally {
        if (saved === undefined) delete process.env.HQUANT_ISOLATION;
        else process.env.HQUANT_ISOLATION = saved;
      }
    };
    const bits = (states: Float32Array[]) => states.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength).toString("base64"));
    try {
      const base = await both(BASE);
      expect(base.isolated.nEmbd).toBe(base.direct.nEmbd);
      expect(base.isolated.states.length).toBe(1);
      expect(bits(base.isolated.states)).toEqual(bits(base.direct.states));
      await measurer.withBuild([{ op: "delete", layers: [3] }], async (files) => {
        const edit = await both(files);
        expect(bits(edit.isolated.states)).toEqual(bits(edit.direct.states));
        // and so LaCo's figure: the same cosine sum, exactly
        const n = base.direct.nEmbd;
        const cos = meanCosine(base.isolated.states[0]!, edit.isolated.states[0]!, n);
        expect(cos).toEqual(meanCosine(base.direct.states[0]!, edit.direct.states[0]!, n));
        expect(cos.sum / cos.count).toBeLessThan(1 - 1e-4);
      });
    } finally {
      await measurer.close();
    }
  });
});
