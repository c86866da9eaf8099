// Perplexity and KL-divergence of GGUF files on a text, measured as llama-perplexity does
// (`-c ctx`, then `--kl-divergence-base` for the base model and `--kl-divergence` for the others).
import path from "node:path";
import { UserError } from "../errors.js";
import { BaseCacheReader, BaseCacheWriter, cachePath, readBaseSummary, sha256File, sha256Text, type BaseSummary } from "./base-cache.js";
import { chunkInput, planChunks, scoredTarget, type ChunkPlan } from "./chunks.js";
import { meanAndUncertainty, newKldAccumulator, packedRowLength, packLogProbs, scorePosition, summarizeKld, type KldSummary } from "./kld-math.js";
import { ModelEvaluator } from "./runtime.js";

export interface EvalOptions {
  /** context length (llama-perplexity -c) */
  ctx: number;
  /** evaluate at most this many chunks (llama-perplexity --chunks) */
  chunks?: number;
  threads: number;
  /** where base distributions are cached */
  cacheDir: string;
  /** progress after each chunk */
  onProgress?: (file: string, done: number, total: number) => void;
  /** cancels between chunks */
  signal?: AbortSignal;
}

export interface BaseEvaluation extends BaseSummary {
  file: string;
  text: string;
  tokens: number[];
  plan: ChunkPlan;
  /** cache file (without extension) holding the base distributions */
  cacheFile: string;
  /** true when the distributions came from the cache */
  cached: boolean;
}

/** Evaluates the base model once per (file, text, ctx, chunks), caching its distributions on disk. */
export async function evaluateBase(file: string, text: string, textName: string, opts: EvalOptions): Promise<BaseEvaluation> {
  opts.signal?.throwIfAborted();
  const modelSha256 = await sha256File(file);
  const evaluator = await ModelEvaluator.open(file, opts);
  try {
    const tokens = evaluator.tokenize(text);
    const plan = planChunks(tokens.length, opts.ctx, opts.chunks, textName);
    const cacheFile = cachePath(opts.cacheDir, { modelSha256, textSha256: sha256Text(text), ctx: opts.ctx, nChunk: plan.nChunk });
    const summary = readBaseSummary(cacheFile);
    const existing = summary && BaseCacheReader.open(`${cacheFile}.kld`, tokens, opts.ctx, plan.nChunk);
    if (summary && existing) {
      existing.close();
      opts.onProgress?.(file, plan.nChunk, plan.nChunk);
      return { file, text, tokens, plan, cacheFile, cached: true, ...summary };
    }
    const computed = await computeBase(evaluator, tokens, plan, cacheFile, opts);
    return { file, text, tokens, plan, cacheFile, cached: false, ...computed };
  } finally {
    await evaluator.dispose();
  }
}

async function computeBase(evaluator: ModelEvaluator, tokens: number[], plan: ChunkPlan, cacheFile: string, opts: EvalOptions): Promise<BaseSummary> {
  let writer: BaseCacheWriter | undefined;
  let nll = 0;
  let nll2 = 0;
  let count = 0;
  try {
    await evaluator.forEachChunk(plan.nChunk, (c) => chunkInput(tokens, plan, c, evaluator.bos), plan.first, (c, dists) => {
      const nVocab = dists[0].length;
      writer ??= new BaseCacheWriter(`${cacheFile}`, plan.ctx, nVocab, plan.nChunk, tokens);
      const rowLength = packedRowLength(nVocab);
      const packed = new Uint16Array(plan.scoredPerChunk * rowLength);
      dists.forEach((probs, j) => {
        packLogProbs(probs, packed, j * rowLength);
        const v = -Math.log(probs[scoredTarget(tokens, plan, c, j)]);
        nll += v;
        nll2 += v * v;
        count++;
      });
      writer.appendChunk(packed);
      opts.onProgress?.(evaluator.path, c + 1, plan.nChunk);
      opts.signal?.throwIfAborted();
    });
    const [lnPpl, lnErr] = meanAndUncertainty(nll, nll2, count);
    const summary = { ppl: Math.exp(lnPpl), pplErr: Math.exp(lnPpl) * lnErr, positions: count };
    writer!.finish(summary);
    return summary;
  } catch (err) {
    writer?.abort();
    throw err;
  }
}

/** PPL of `file` and its KL-divergence from the base distributions, over the base's chunks. */
export async function evaluateAgainstBase(base: BaseEvaluation, file: string, opts: EvalOptions): Promise<KldSummary> {
  const reader = BaseCacheReader.open(`${base.cacheFile}.kld`, base.tokens, base.plan.ctx, base.plan.nChunk);
  if (!reader) throw new Error(`base distributions missing: ${base.cacheFile}.kld`);
  const evaluator = await ModelEvaluator.open(file, opts);
  try {
    const tokens = evaluator.tokenize(base.text);
    if (tokens.length !== base.tokens.length || tokens.some((t, i) => t !== base.tokens[i])) {
      throw new UserError(`${file}: tokenizes the text differently from the base model ${path.basename(base.file)} (another vocabulary?)`);
    }
    const acc = newKldAccumulator();
    const { plan } = base;
    await evaluator.forEachChunk(plan.nChunk, (c) => chunkInput(base.tokens, plan, c, evaluator.bos), plan.first, (c, dists) => {
      if (dists[0].length !== reader.nVocab) {
        throw new UserError(`${file}: vocabulary of ${dists[0].length} tokens, but the base model ${path.basename(base.file)} has ${reader.nVocab}`);
      }
      const packed = reader.readChunk(c);
      dists.forEach((probs, j) => scorePosition(probs, packed, j * reader.rowLength, scoredTarget(base.tokens, plan, c, j), acc));
      opts.onProgress?.(file, c + 1, plan.nChunk);
      opts.signal?.throwIfAborted();
    });
    return summarizeKld(acc);
  } finally {
    reader.close();
    await evaluator.dispose();
  }
}
