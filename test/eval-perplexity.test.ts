// The evaluator (src/runtime's raw logits, kernels/logits.ts's vocabulary math) against an
// independent implementation of llama-perplexity's loop on raw llama.cpp logits
// (test/oracle/perplexity.ts), on a few chunks, per token; and the kernels against scalar
// transcriptions of perplexity.cpp's log_softmax functions. The full-text comparison with
// llama-perplexity's own figures is test/eval-anchors.test.ts.
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { evaluateAgainstBase, evaluateBase, type BaseEvaluation } from "../src/eval/evaluate.js";
import { chunkInput, planChunks, scoredTarget } from "../src/eval/chunks.js";
import { addPosition, nearestInt, packedRowLength, percentile, unpackLogProb, newKldAccumulator, summarizeKld } from "../src/eval/kld-math.js";
import { VocabKernels } from "../src/eval/vocab-math.js";
import { chunksPerDecode, ModelEvaluator } from "../src/runtime/evaluator.js";
import { BaseCacheReader } from "../src/eval/base-cache.js";
import { referencePerplexity, type ReferencePerplexity } from "./oracle/perplexity.js";
import { llamaQuantize } from "./oracle/llama.js";

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require("koffi") as typeof import("koffi");

const MODEL = "models/tinyllama-16l-f16.gguf";
const TEXT_FILE = "test/fixtures/eval-test.txt";
const CTX = 256;
const CHUNKS = 3;

describe("llama-perplexity arithmetic", () => {
  it("nearest_int rounds half to even like the float32 1.5·2^23 trick", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4999, 65534.5, 7.50001].map(nearestInt)).toEqual([0, 2, 2, 0, 2, 65534, 8]);
  });

  const kernels = new VocabKernels();
  const f32 = Math.fround;

  /** perplexity.cpp's log_softmax(n_vocab, logits, log_prob, tok) of the base pass, scalar, with expf as Math.exp rounded to float. */
  function packReference(logits: Float32Array, tok: number): { row: Uint16Array; nll: number } {
    let max = logits[0];
    let min = logits[0];
    for (const v of logits) {
      max = Math.max(max, v);
      min = Math.min(min, v);
    }
    min = Math.max(min, f32(max - 16));
    let sum = 0;
    for (const v of logits) sum += f32(Math.exp(f32(v - max)));
    const lse = f32(Math.log(sum));
    const row = new Uint16Array(packedRowLength(logits.length));
    const header = new Float32Array(row.buffer, 0, 2);
    header[0] = f32(f32(max - min) / 65535);
    header[1] = f32(f32(min - max) - lse);
    const inv = f32(1 / header[0]);
    logits.forEach((v, i) => (row[4 + i] = v > min ? nearestInt(f32(inv * f32(v - min))) : 0));
    return { row, nll: f32(f32(max + lse) - logits[tok]) };
  }

  /** perplexity.cpp's log_softmax(…, base_log_prob, tok, kld) of the KLD pass, scalar: [nll, kld, same top]. */
  function kldReference(logits: Float32Array, base: Uint16Array, tok: number): [number, number, number] {
    let max = logits[0];
    let imax = 0;
    logits.forEach((v, i) => {
      if (v > max) [max, imax] = [v, i];
    });
    let sum = 0;
    for (const v of logits) sum += f32(Math.exp(f32(v - max)));
    const lse = f32(Math.log(sum));
    const nll = f32(f32(max + lse) - logits[tok]);
    const top = f32(max + lse);
    const [scale, minLogProb] = new Float32Array(base.buffer, base.byteOffset, 2);
    let kld = 0;
    let imaxBase = -1;
    let best = 0;
    for (let i = 0; i < logits.length; i++) {
      const pl = f32(f32(scale * base[4 + i]) + minLogProb);
      if (i === 0 || pl > best) [best, imaxBase] = [pl, i];
      if (pl > -16) kld += f32(f32(Math.exp(pl)) * f32(f32(pl - logits[i]) + top));
    }
    return [nll, kld, imax === imaxBase ? 1 : 0];
  }

  /** Logits of a peaked, 17-nat-wide distribution over n tokens (some below max − 16, some ties). */
  function randomLogits(n: number, seed: number): Float32Array {
    let x = seed;
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const l = Float32Array.from({ length: n }, () => 6 - 17 * rnd() ** 0.5);
    l[n >> 1] = 8;
    l[n >> 2] = l[n >> 3];
    return l;
  }

  it("expf: the four-lane kernel gives AssemblyScript's scalar expf (musl's algorithm) bit for bit", () => {
    const values = Float32Array.from({ length: 400_000 }, (_, i) => -110 + (i * 110.5) / 400_000);
    values.set([0, -0, -16, -104, -1e30, -Infinity], 0);
    const simd = kernels.expf(values);
    const scalar = kernels.expf(values, true);
    expect(Buffer.from(simd.buffer).equals(Buffer.from(scalar.buffer))).toBe(true);
    // and is expf: within one float ulp of exp
    let worst = 0;
    values.forEach((v, i) => {
      const e = Math.exp(v);
      if (e > 1e-37) worst = Math.max(worst, Math.abs(simd[i] - e) / e);
    });
    expect(worst).toBeLessThan(2 ** -23);
    expect(Array.from(simd.subarray(0, 6))).toEqual([1, 1, f32(Math.exp(-16)), 0, 0, 0]);
  });

  it("packs a position as perplexity.cpp's base pass does: same uint16 row, header and NLL", () => {
    for (const [n, seed] of [[4099, 1], [4096, 2], [7, 3], [1, 4]] as const) {
      const logits = randomLogits(n, seed);
      const tok = (n * 3) >> 2;
      const ref = packReference(logits, tok);
      const out = new Uint16Array(packedRowLength(n) + 6).fill(0xABCD);
      const nll = kernels.pack(logits, tok, out, 3);
      expect(Array.from(out.subarray(3 + 4, 3 + packedRowLength(n)))).toEqual(Array.from(ref.row.subarray(4)));
      expect(out[3 + packedRowLength(n)]).toBe(0xABCD); // nothing written past the row
      const header = new Float32Array(out.slice(3, 7).buffer);
      const refHeader = new Float32Array(ref.row.buffer, 0, 2);
      expect(header[0]).toBe(refHeader[0]);
      expect(Math.abs(header[1] - refHeader[1])).toBeLessThanOrEqual(Math.abs(refHeader[1]) * 2 ** -23);
      expect(Math.abs(nll - ref.nll)).toBeLessThanOrEqual(Math.max(ref.nll, 1) * 2 ** -22);
    }
    // a flat distribution packs to a zero scale and an all-zero row
    const flat = new Uint16Array(packedRowLength(5));
    kernels.pack(new Float32Array(5).fill(2), 0, flat, 0);
    expect(new Float32Array(flat.buffer, 0, 2)[0]).toBe(0);
    expect(Array.from(flat.subarray(4))).toEqual([0, 0, 0, 0, 0, 0]);
    // logits 3 and 3 − 20 pack to 65535 and 0 (below max − 16)
    const two = new Uint16Array(packedRowLength(3));
    kernels.pack(Float32Array.from([3, -17, 2]), 0, two, 0);
    expect([two[4], two[5]]).toEqual([65535, 0]);
  });

  it("scores a position as perplexity.cpp's KLD pass does: NLL, KL(base‖q), same top token", () => {
    for (const [n, seed] of [[4099, 5], [4096, 6], [9, 7]] as const) {
      const p = randomLogits(n, seed);
      const q = randomLogits(n, seed + 100);
      const base = new Uint16Array(packedRowLength(n));
      kernels.pack(p, 0, base, 0);
      for (const [logits, tok] of [[q, 1], [p, n - 1]] as const) {
        const res = new Float64Array(3);
        kernels.kld(logits, tok, base, 0, res, 0);
        const [nll, kld, same] = kldReference(logits, base, tok);
        expect(Math.abs(res[0] - nll)).toBeLessThanOrEqual(Math.max(nll, 1) * 2 ** -22);
        expect(Math.abs(res[1] - kld)).toBeLessThan(1e-6 * Math.max(kld, 1e-3));
        expect(res[2]).toBe(same);
      }
    }
    // KL of a distribution against its own packing is ~0; against another it is Σ p (log p − log q)
    const lp = [0.5, 0.25, 0.125, 0.125].map(Math.log);
    const lq = [0.1, 0.2, 0.3, 0.4].map(Math.log);
    const base = new Uint16Array(packedRowLength(4));
    kernels.pack(Float32Array.from(lp), 0, base, 0);
    const res = new Float64Array(6);
    kernels.kld(Float32Array.from(lp), 1, base, 0, res, 0);
    kernels.kld(Float32Array.from(lq), 0, base, 0, res, 3);
    expect(Math.abs(res[1])).toBeLessThan(1e-5);
    expect(res[4]).toBeCloseTo(lp.reduce((s, l, i) => s + Math.exp(l) * (l - lq[i]), 0), 5);
    expect([res[2], res[5]]).toEqual([1, 0]); // q's top token is 3, p's is 0
    const acc = newKldAccumulator();
    addPosition(acc, res[0], res[1], res[2] === 1);
    addPosition(acc, res[3], res[4], res[5] === 1);
    const s = summarizeKld(acc);
    expect(s.topTokenPct).toBe(50);
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

  it("reads llama.cpp's raw logits per token: the oracle's log-softmax to the last bit, the kernels' NLL within float rounding", async () => {
    const ev = await ModelEvaluator.open(MODEL, { ctx: CTX, threads: 2 });
    try {
      // all chunks go in one llama_decode of several sequences; the oracle decodes one chunk at a time
      expect(chunksPerDecode(CTX)).toBeGreaterThanOrEqual(CHUNKS);
      const tokens = ev.tokenize(text);
      expect(tokens).toEqual(refBase.tokens);
      const plan = planChunks(tokens.length, CTX, CHUNKS, "eval-test.txt");
      const kernels = new VocabKernels();
      const scratch = new Uint16Array(packedRowLength(ev.nVocab));
      let compared = 0;
      let worstNll = 0;
      await ev.forEachGroup(CHUNKS, (c) => chunkInput(tokens, plan, c, ev.bos), plan.first, async (first, blocks) => {
        blocks.forEach((block, k) => {
          const rows = new Float32Array(koffi.view(block.address, 4 * block.rows * ev.nVocab));
          for (let j = 0; j < block.rows; j++) {
            const logits = rows.subarray(j * ev.nVocab, (j + 1) * ev.nVocab);
            const i = (first + k) * plan.scoredPerChunk + j;
            let max = -Infinity;
            for (const v of logits) max = Math.max(max, v);
            let sum = 0;
            for (const v of logits) sum += Math.exp(v - max);
            const lse = max + Math.log(sum);
            const ref = refBase.logProbs![i];
            if (logits.some((v, t) => v - lse !== ref[t])) throw new Error(`position ${i}: log-softmax differs from the oracle's`);
            const nll = kernels.pack(logits, scoredTarget(tokens, plan, first + k, j), scratch, 0);
            worstNll = Math.max(worstNll, Math.abs(nll - refBase.nll[i]));
            compared++;
          }
        });
      });
      expect(compared).toBe(CHUNKS * 127);
      expect(worstNll).toBeLessThan(1e-5);
    } finally {
      await ev.dispose();
    }
  });

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
