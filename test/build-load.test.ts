// The main job works in llama.cpp: the Q4_K_H build of the bundled model loads in node-llama-cpp
// (the npm package's prebuilt llama.cpp, CPU only), reports the types hquant chose, and generates.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { MODEL } from "./build-util.js";
import { generateInLlamaCpp } from "./oracle/generate.js";
import { oracleReadHeader } from "./oracle/llama.js";
import { referencePerplexity } from "./oracle/perplexity.js";

const EVAL_TEXT = path.resolve(__dirname, "fixtures/eval-test.txt");
/** Chunks of 256 tokens scored in the test; HQUANT_FULL_PPL=1 scores the whole text (198 chunks, minutes). */
const PPL_CHUNKS = process.env.HQUANT_FULL_PPL ? 198 : 4;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-load-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const out = path.join(tmp, "tinyllama-16l-Q4_K_H.gguf");

describe("Q4_K_H build in llama.cpp", () => {
  it("loads and generates", async () => {
    const result = await buildModel({
      input: MODEL,
      output: out,
      threads: 2,
      hquant: { version: "test" },
      schedule: (m) => scheduleFromOptions({ preset: "Q4_K_H" }, mixtureHParams(m.kv).nLayer),
    });
    expect(result.plan.schedule.name).toBe("Q4_K_H");
    // a hybrid: more than one k-quant among the layer matrices, as llama.cpp's own parser reads them
    const types = new Set(oracleReadHeader(out).tensors.filter((t) => t.name.startsWith("blk.") && t.type !== 0).map((t) => t.type));
    expect(types.size).toBeGreaterThan(1);

    const generated = await generateInLlamaCpp(out, 8);
    expect(generated.tensorCount).toBe(147);
    expect(generated.tokens.length).toBe(8);
    for (const t of generated.tokens) expect(Number(t)).toBeLessThan(4096);
    expect(generated.text.trim().length).toBeGreaterThan(0);
  });

  it("has a perplexity close to the F16 model's, as llama-perplexity measures it", () => {
    const text = fs.readFileSync(EVAL_TEXT, "utf8");
    const hybrid = referencePerplexity(out, text, 256, PPL_CHUNKS).ppl;
    expect(Number.isFinite(hybrid)).toBe(true);
    if (PPL_CHUNKS === 198) {
      // ../shared/models/anchors.json, llama-perplexity on the whole text: Q4_K_M 87.108014, Q3_K_M 87.608588
      expect(hybrid).toBeGreaterThanOrEqual(87.108014);
      expect(hybrid).toBeLessThanOrEqual(87.608588);
    } else {
      // on a few chunks: within 3 % of F16 (Q3_K_M…Q4_K_M are within 1 % on the whole text;
      // a broken tensor sends the PPL far off)
      const base = referencePerplexity(MODEL, text, 256, PPL_CHUNKS).ppl;
      expect(Math.abs(hybrid / base - 1)).toBeLessThan(0.03);
    }
  });
});
