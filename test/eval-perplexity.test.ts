// The evaluator (node-llama-cpp controlledEvaluate) against an independent implementation of
// llama-perplexity's loop on raw llama.cpp logits (test/oracle/perplexity.ts), on a few chunks.
// The full-text comparison with llama-perplexity's own figures is test/eval-anchors.test.ts.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateAgainstBase, evaluateBase, type BaseEvaluation } from "../src/bench/evaluate.js";
import { chunkInput, planChunks, scoredTarget } from "../src/bench/chunks.js";
import { nearestInt, packedRowLength, packLogProbs, percentile, unpackLogProb, newKldAccumulator, scorePosition, summarizeKld } from "../src/bench/kld-math.js";
import { BaseCacheReader } from "../src/bench/base-cache.js";
import { referencePerplexity, type ReferencePerplexity } from "./oracle/perplexity.js";
import { llamaQuantize } from "./oracle/llama.js";

const MODEL = "models/tinyllama-16l-f16.gguf";
const TEXT_FILE = "test/fixtures/eval-test.txt";
const CTX = 256;
const CHUNKS = 3;

describe("llama-perplexity arithmetic", () => {
  it("nearest_int rounds half to even like the float32 1.5·2^23 trick", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4999, 65534.5, 7.50001].map(nearestInt)).toEqual([0, 2, 2, 0, 2, 65534, 8]);
  });

  it("packs log-probs on 16 bits within half a step, zero below max−16, and unpacks the header", () => {
    const logits = [3, 2.5, -1, -20, 0.25, 3];
    const lse = Math.log(logits.reduce((s, v) => s + Math.exp(v), 0));
    const probs = Float32Array.from(logits, (v) => Math.exp(v - lse));
    const out = new Uint16Array(packedRowLength(probs.length));
    expect(out.length).toBe(2 * 3 + 4);
    packLogProbs(probs, out, 0);
    const scale = (3 - (3 - 16)) / 65535;
    expect(out[4 + 0]).toBe(65535);
    expect(out[4 + 5]).toBe(65535);
    expect(out[4 + 3]).toBe(0); // −20 is below max − 16
    for (const i of [0, 1, 2, 4]) expect(Math.abs(unpackLogProb(out, 0, i) - (logits[i] - lse))).toBeLessThan(scale);
  });

  it("KLD of a distribution against its own packing is ~0, and against another is Σ p (log p − log q)", () => {
    const p = Float32Array.from([0.5, 0.25, 0.125, 0.125]);
    const qs = [0.1, 0.2, 0.3, 0.4];
    const q = Float32Array.from(qs);
    const packed = new Uint16Array(packedRowLength(4));
    packLogProbs(p, packed, 0);
    const acc = newKldAccumulator();
    expect(Math.abs(scorePosition(p, packed, 0, 1, acc))).toBeLessThan(1e-5);
    const exact = [0.5, 0.25, 0.125, 0.125].reduce((s, pi, i) => s + pi * Math.log(pi / qs[i]), 0);
    expect(scorePosition(q, packed, 0, 0, acc)).toBeCloseTo(exact, 5);
    const s = summarizeKld(acc);
    expect(s.topTokenPct).toBe(50); // p's top token is 0; q's is 3
    expect(s.positions).toBe(2);
    expect(s.ppl).toBeCloseTo(Math.exp((-Math.log(0.25) - Math.log(0.1)) / 2), 5);
  });

  it("percentile interpolates at fraction·(n−1) as llama.cpp does", () => {
    const v = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(v, 0.99)).toBeCloseTo(9.9, 5);
    expect(percentile(v, 0.5)).toBe(5);
    expect(percentile(v, 0)).toBe(0);
    expect(percentile(v, 1)).toBe(10);
    expect(percentile([1, 3], 0.25)).toBeCloseTo(1.5, 6);
  });

  it("cuts chunks as perplexity(): ⌊n/ctx⌋ chunks, BOS first, the second half scored", () => {
    const tokens = Array.from({ length: 1030 }, (_, i) => 100 + i);
    const plan = planChunks(tokens.length, 256, undefined, "t.txt");
    expect(plan).toEqual({ ctx: 256, nChunk: 4, first: 128, scoredPerChunk: 127 });
    expect(planChunks(tokens.length, 256, 2, "t.txt").nChunk).toBe(2);
    expect(planChunks(tokens.length, 256, 99, "t.txt").nChunk).toBe(4);
    const input = chunkInput(tokens, plan, 1, 1);
    expect(input[0]).toBe(1);
    expect(input.slice(1, 3)).toEqual([357, 358]);
    expect(scoredTarget(tokens, plan, 1, 0)).toBe(100 + 256 + 129);
    expect(scoredTarget(tokens, plan, 1, 126)).toBe(100 + 256 + 255);
    expect(() => planChunks(511, 256, undefined, "t.txt")).toThrow("t.txt: tokenizes to only 511 tokens; a context of 256 needs at least 512");
    expect(() => planChunks(4096, 256, 0, "t.txt")).toThrow("--chunks must be a positive integer (got 0)");
  });
});

describe("evaluator vs an independent llama-perplexity loop (first 3 chunks, ctx 256)", () => {
  const text = fs.readFileSync(TEXT_FILE, "utf8");
  let dir: string;
  let quant: string;
  let base: BaseEvaluation;
  let refBase: ReferencePerplexity;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-eval-"));
    quant = path.join(dir, "q3_k_m.gguf");
    llamaQuantize(MODEL, quant, { ftype: "Q3_K_M", threads: 2 });
    refBase = referencePerplexity(MODEL, text, CTX, CHUNKS, true);
    base = await evaluateBase(MODEL, text, "eval-test.txt", { ctx: CTX, chunks: CHUNKS, threads: 2, cacheDir: dir });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("tokenizes like common_tokenize(add_special = true): BOS then the text", () => {
    expect(base.tokens).toEqual(refBase.tokens);
    expect(base.plan.nChunk).toBe(CHUNKS);
    expect(base.positions).toBe(CHUNKS * 127);
  });

  it("gives the base model's PPL of those chunks", () => {
    expect(Math.abs(base.ppl / refBase.ppl - 1)).toBeLessThan(1e-4);
  });

  it("caches the base distributions in llama.cpp's kl-divergence-base layout and reuses them", async () => {
    const file = `${base.cacheFile}.kld`;
    const buf = fs.readFileSync(file);
    expect(buf.toString("latin1", 0, 8)).toBe("_logits_");
    expect([buf.readUInt32LE(8), buf.readInt32LE(12), buf.readInt32LE(16)]).toEqual([CTX, 4096, CHUNKS]);
    expect(buf.length).toBe(20 + 4 * CTX * CHUNKS + CHUNKS * 127 * packedRowLength(4096) * 2);
    // the stored log-probs are the reference's, within the 16-bit step
    const reader = BaseCacheReader.open(file, base.tokens, CTX, CHUNKS)!;
    const chunk1 = reader.readChunk(1);
    let worst = 0;
    for (const j of [0, 60, 126]) {
      const ref = refBase.logProbs![127 + j];
      let max = -Infinity;
      for (const v of ref) max = Math.max(max, v);
      for (let t = 0; t < 4096; t += 7) {
        if (ref[t] < max - 15) continue;
        worst = Math.max(worst, Math.abs(unpackLogProb(chunk1, j * reader.rowLength, t) - ref[t]));
      }
    }
    reader.close();
    expect(worst).toBeLessThan(2e-3);
    const again = await evaluateBase(MODEL, text, "eval-test.txt", { ctx: CTX, chunks: CHUNKS, threads: 2, cacheDir: dir });
    expect(again.cached).toBe(true);
    expect(again.ppl).toBe(base.ppl);
  });

  it("gives a quantized file's PPL and its KLD / top-token agreement against the reference's raw logits", async () => {
    const refQuant = referencePerplexity(quant, text, CTX, CHUNKS, true);
    const got = await evaluateAgainstBase(base, quant, { ctx: CTX, chunks: CHUNKS, threads: 2, cacheDir: dir });
    expect(Math.abs(got.ppl / refQuant.ppl - 1)).toBeLessThan(1e-4);
    // KL(base‖quant) from the two reference distributions in double, no 16-bit packing
    let sum = 0;
    let same = 0;
    const argmax = (a: Float64Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);
    refBase.logProbs!.forEach((lp, i) => {
      const lq = refQuant.logProbs![i];
      for (let t = 0; t < lp.length; t++) if (lp[t] > -16) sum += Math.exp(lp[t]) * (lp[t] - lq[t]);
      if (argmax(lp) === argmax(lq)) same++;
    });
    const refKld = sum / refBase.logProbs!.length;
    expect(got.kld).toBeGreaterThan(0);
    expect(Math.abs(got.kld / refKld - 1)).toBeLessThan(0.02);
    expect(Math.abs(got.topTokenPct - (100 * same) / refBase.logProbs!.length)).toBeLessThan(1);
    expect(got.kld99).toBeGreaterThan(got.kld);
    expect(got.positions).toBe(CHUNKS * 127);
  });

  it("scores the base file against itself as KLD ≈ 0 and 100 % same top token", async () => {
    const self = await evaluateAgainstBase(base, MODEL, { ctx: CTX, chunks: 1, threads: 2, cacheDir: dir });
    expect(self.kld).toBeLessThan(1e-5);
    expect(self.topTokenPct).toBe(100);
  });
});
