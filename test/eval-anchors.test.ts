// hquant's PPL for Q8_0, Q6_K, Q4_K_M, Q3_K_M and Q2_K files built by hquant (`buildModel`; its
// files are byte-identical to llama-quantize's, test/build-identity.test.ts) against llama.cpp.
//
// Why two tests: llama-perplexity's own figures (anchors.json) are for the whole eval text, 198
// chunks per model: six models take minutes on 2 shared cores, and more on a loaded machine — too
// slow for every run. And a few chunks can't be compared with
// a full-text figure: two chunks' PPL is 114.7 where the text's is 86.9. So:
// - every run: the first CHUNKS chunks of every type, against test/oracle/perplexity.ts —
//   llama-perplexity's perplexity() loop written independently on raw llama.cpp logits, which is
//   exactly what produced anchors.json — PPL within 1e-4, KLD within 2 %, same-top-token within one
//   token, plus each KLD's order of magnitude against the anchor's (a wrong file shows there);
// - HQUANT_ANCHORS=1: the whole text, PPL within 1 % of anchors.json (the criterion).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { evaluateAgainstBase, evaluateBase, type BaseEvaluation } from "../src/eval/evaluate.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { referencePerplexity, type ReferencePerplexity } from "./oracle/perplexity.js";

const MODEL = "models/tinyllama-16l-f16.gguf";
const TEXT = fs.readFileSync("test/fixtures/eval-test.txt", "utf8");
const anchors = JSON.parse(fs.readFileSync("test/fixtures/bench/anchors.json", "utf8")) as {
  n_ctx: number;
  results: Record<string, { ppl: number; kld_mean?: number; same_top_pct?: number }>;
};
const TYPES: FileTypeName[] = ["Q8_0", "Q6_K", "Q4_K_M", "Q3_K_M", "Q2_K"];
/** chunks checked on every run (2 × 127 scored tokens per model): the suite's time budget; the comparison with the oracle is per token */
const CHUNKS = 2;

let pool: QuantizePool | undefined;
afterAll(async () => {
  await pool?.destroy();
});

async function buildType(dir: string, ftype: FileTypeName): Promise<string> {
  const file = path.join(dir, `${ftype}.gguf`);
  pool ??= new QuantizePool(2);
  await buildModel({ input: MODEL, output: file, threads: 2, pool, schedule: (m) => uniformSchedule(ftype, mixtureHParams(m.kv).nLayer) });
  return file;
}

/** KL(base‖quant) per position from two reference runs' double log-softmax, and same-top-token %. */
function referenceKld(base: ReferencePerplexity, quant: ReferencePerplexity): { kld: number; topTokenPct: number } {
  let sum = 0;
  let same = 0;
  const argmax = (a: Float64Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);
  base.logProbs!.forEach((lp, i) => {
    const lq = quant.logProbs![i];
    for (let t = 0; t < lp.length; t++) if (lp[t] > -16) sum += Math.exp(lp[t]) * (lp[t] - lq[t]);
    if (argmax(lp) === argmax(lq)) same++;
  });
  return { kld: sum / base.logProbs!.length, topTokenPct: (100 * same) / base.logProbs!.length };
}

describe(`hquant-built files: PPL / KLD as llama-perplexity computes them (first ${CHUNKS} chunks, ctx 256)`, () => {
  let dir: string;
  let base: BaseEvaluation;
  let refBase: ReferencePerplexity;
  const opts = () => ({ ctx: anchors.n_ctx, chunks: CHUNKS, threads: 2, cacheDir: dir });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-anchors-"));
    refBase = referencePerplexity(MODEL, TEXT, anchors.n_ctx, CHUNKS, true);
    base = await evaluateBase(MODEL, TEXT, "eval-test.txt", opts());
  }, 120_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("F16", () => {
    expect(base.positions).toBe(CHUNKS * 127);
    expect(Math.abs(base.ppl / refBase.ppl - 1)).toBeLessThan(1e-4);
  });

  for (const t of TYPES) {
    it(t, async () => {
      const file = await buildType(dir, t);
      const ref = referencePerplexity(file, TEXT, anchors.n_ctx, CHUNKS, true);
      const got = await evaluateAgainstBase(base, file, opts());
      fs.rmSync(file);
      expect(Math.abs(got.ppl / ref.ppl - 1)).toBeLessThan(1e-4);
      const refKld = referenceKld(refBase, ref);
      expect(Math.abs(got.kld / refKld.kld - 1)).toBeLessThan(0.02);
      expect(Math.abs(got.topTokenPct - refKld.topTokenPct)).toBeLessThanOrEqual(100 / got.positions + 1e-9);
      // a few chunks' mean KLD is within a factor 2 of the whole text's (measured on 1 chunk: within 40 % for all 24 anchors)
      const a = anchors.results[t];
      expect(got.kld / a.kld_mean!).toBeGreaterThan(0.5);
      expect(got.kld / a.kld_mean!).toBeLessThan(2);
    }, 120_000);
  }
});

describe.skipIf(!process.env.HQUANT_ANCHORS)("PPL within 1 % of llama-perplexity on the whole text (HQUANT_ANCHORS=1)", () => {
  let dir: string;
  let base: BaseEvaluation;
  const opts = () => ({ ctx: anchors.n_ctx, threads: 2, cacheDir: dir });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-anchors-full-"));
    base = await evaluateBase(MODEL, TEXT, "eval-test.txt", opts());
  }, 1_800_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("F16", () => {
    expect(base.plan.nChunk).toBe(198);
    expect(Math.abs(base.ppl / anchors.results.F16.ppl - 1)).toBeLessThan(0.01);
  });

  for (const t of TYPES) {
    it(t, async () => {
      const file = await buildType(dir, t);
      const r = await evaluateAgainstBase(base, file, opts());
      fs.rmSync(file);
      const a = anchors.results[t];
      expect(Math.abs(r.ppl / a.ppl - 1)).toBeLessThan(0.01);
      expect(Math.abs(r.kld / a.kld_mean! - 1)).toBeLessThan(0.1);
      expect(Math.abs(r.topTokenPct - a.same_top_pct!)).toBeLessThan(1);
    }, 1_800_000);
  }
});
