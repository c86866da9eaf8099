// Perplexity and KL-divergence of GGUF files on a text, measured as llama-perplexity does
// (`-c ctx`, then `--kl-divergence-base` for the base model and `--kl-divergence` for the others).
import path from "node:path";
import { UserError } from "../errors.js";
import { BaseCacheReader, BaseCacheWriter, cachePath, readBaseSummary, sha256File, sha256Text, type BaseSummary } from "./base-cache.js";
import { chunkInput, planChunks, scoredTarget, type ChunkPlan } from "./chunks.js";
import { addPosition, meanAndUncertainty, newKldAccumulator, packedRowLength, summarizeKld, type KldSummary } from "./kld-math.js";
import { chunksPerDecode, ModelEvaluator, type LogitsBlock } from "../runtime/evaluator.js";
import type { OffloadOptions } from "../runtime/index.js";
import { VocabPool } from "./vocab-math.js";

/** With -ngl/--device/--backend the models run on llama.cpp's GPU build (src/runtime/backends.ts). */
export interface EvalOptions extends OffloadOptions {
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
  // the file's hash (the cache key): its reads run on libuv threads from now on, its hashing on
  // this thread while llama.cpp tokenizes the text on another
  const hashing = sha256File(file);
  hashing.catch(() => {});
  let evaluator: ModelEvaluator;
  try {
    evaluator = await ModelEvaluator.open(file, opts);
  } catch (err) {
    // an unreadable file is named as such (as when the hash came first)
    throw (await hashing.then(() => undefined, (e: unknown) => e)) ?? err;
  }
  try {
    const tokens = await evaluator.tokenizeAsync(text);
    const modelSha256 = await hashing;
    const plan = planChunks(tokens.length, opts.ctx, opts.chunks, textName);
    const cacheFile = cachePath(opts.cacheDir, { modelSha256, textSha256: sha256Text(text), ctx: opts.ctx, nChunk: plan.nChunk });
    const summary = readBaseSummary(cacheFile);
    const existing = summary && BaseCacheReader.open(`${cacheFile}.kld`, tokens, opts.ctx, plan.nChunk);
    if (summary && existing) {
      existing.close();
      opts.onProgress?.(file, plan.nChunk, plan.nChunk);
      opts.signal?.throwIfAborted();
      return { file, text, tokens, plan, cacheFile, cached: true, ...summary };
    }
    const computed = await computeBase(evaluator, tokens, plan, cacheFile, opts);
    return { file, text, tokens, plan, cacheFile, cached: false, ...computed };
  } finally {
    await evaluator.dispose();
  }
}

/** Packed base rows per vocabulary job at most (a job is a slice of one decode's chunks): two such buffers are in use. */
const JOB_BYTES = 32 << 20;

/** Shared buffers for one vocabulary job of up to `chunks` chunks. */
interface JobBuffers {
  chunks: number;
  base: Uint16Array;
  targets: Int32Array;
  results: Float64Array;
  next: Int32Array;
  /** I/O using `base` (a cache write or read), awaited before the buffer is reused */
  io: Promise<void>;
}

function jobBuffers(plan: ChunkPlan, nVocab: number): [JobBuffers, JobBuffers] {
  const chunkRows = plan.scoredPerChunk;
  const chunkBytes = chunkRows * packedRowLength(nVocab) * 2;
  const chunks = Math.max(1, Math.min(chunksPerDecode(plan.ctx), Math.floor(JOB_BYTES / chunkBytes)));
  const make = (): JobBuffers => ({
    chunks,
    base: new Uint16Array(new SharedArrayBuffer(chunks * chunkBytes)),
    targets: new Int32Array(new SharedArrayBuffer(4 * chunks * chunkRows)),
    results: new Float64Array(new SharedArrayBuffer(24 * chunks * chunkRows)),
    next: new Int32Array(new SharedArrayBuffer(4)),
    io: Promise.resolve(),
  });
  return [make(), make()];
}

function fillTargets(buf: JobBuffers, tokens: ArrayLike<number>, plan: ChunkPlan, firstChunk: number, count: number): void {
  for (let k = 0; k < count; k++) {
    for (let j = 0; j < plan.scoredPerChunk; j++) buf.targets[k * plan.scoredPerChunk + j] = scoredTarget(tokens, plan, firstChunk + k, j);
  }
}

/** Jobs of one decoded group: slices of at most `perJob` chunks. */
function* jobSlices(groupFirst: number, blocks: LogitsBlock[], perJob: number): Generator<{ first: number; blocks: LogitsBlock[] }> {
  for (let k = 0; k < blocks.length; k += perJob) yield { first: groupFirst + k, blocks: blocks.slice(k, k + perJob) };
}

async function computeBase(evaluator: ModelEvaluator, tokens: number[], plan: ChunkPlan, cacheFile: string, opts: EvalOptions): Promise<BaseSummary> {
  const nVocab = evaluator.nVocab;
  const writer = new BaseCacheWriter(cacheFile, plan.ctx, nVocab, plan.nChunk, tokens);
  const pool = VocabPool.get(opts.threads);
  const bufs = jobBuffers(plan, nVocab);
  const rowLength = packedRowLength(nVocab);
  let nll = 0;
  let nll2 = 0;
  let count = 0;
  let jobIndex = 0;
  let writes = Promise.resolve();
  try {
    await evaluator.forEachGroup(plan.nChunk, (c) => chunkInput(tokens, plan, c, evaluator.bos), plan.first, async (groupFirst, blocks) => {
      for (const job of jobSlices(groupFirst, blocks, bufs[0].chunks)) {
        const buf = bufs[jobIndex++ % 2];
        await buf.io;
        const rows = job.blocks.length * plan.scoredPerChunk;
        fillTargets(buf, tokens, plan, job.first, job.blocks.length);
        await pool.run({ kind: "pack", nVocab, blocks: job.blocks, targets: buf.targets, base: buf.base, results: buf.results, next: buf.next }, opts.threads);
        for (let r = 0; r < rows; r++) {
          const v = buf.results[3 * r];
          nll += v;
          nll2 += v * v;
          count++;
        }
        // written while the next job computes; writes stay in chunk order
        writes = writes.then(() => writer.appendChunksAsync(buf.base.subarray(0, rows * rowLength), job.blocks.length));
        buf.io = writes;
        writes.catch(() => {});
        opts.onProgress?.(evaluator.path, job.first + job.blocks.length, plan.nChunk);
        opts.signal?.throwIfAborted();
      }
    });
    await writes;
    const [lnPpl, lnErr] = meanAndUncertainty(nll, nll2, count);
    const summary = { ppl: Math.exp(lnPpl), pplErr: Math.exp(lnPpl) * lnErr, positions: count };
    writer.finish(summary);
    return summary;
  } catch (err) {
    await writes.catch(() => {});
    writer.abort();
    throw err;
  }
}

/** PPL of `model` (a file, or a list of shards named by the first) and its KL-divergence from the base distributions, over the base's chunks. */
export async function evaluateAgainstBase(base: BaseEvaluation, model: string | readonly string[], opts: EvalOptions): Promise<KldSummary> {
  const file = typeof model === "string" ? model : model[0]!;
  const reader = BaseCacheReader.open(`${base.cacheFile}.kld`, base.tokens, base.plan.ctx, base.plan.nChunk);
  if (!reader) throw new Error(`base distributions missing: ${base.cacheFile}.kld`);
  let evaluator: ModelEvaluator | undefined;
  let tokenCheck: Promise<void> = Promise.resolve();
  const bufs = jobBuffers(base.plan, reader.nVocab);
  try {
    evaluator = await ModelEvaluator.open(model, opts);
    const ev = evaluator;
    if (ev.nVocab !== reader.nVocab) {
      throw new UserError(`${file}: vocabulary of ${ev.nVocab} tokens, but the base model ${path.basename(base.file)} has ${reader.nVocab}`);
    }
    // The chunks are the base's tokens; that this file's tokenizer agrees is checked on another
    // thread while the chunks decode, so it adds no time per file.
    tokenCheck = ev.tokenizeAsync(base.text).then((tokens) => {
      if (tokens.length !== base.tokens.length || tokens.some((t, i) => t !== base.tokens[i])) {
        throw new UserError(`${file}: tokenizes the text differently from the base model ${path.basename(base.file)} (another vocabulary?)`);
      }
    });
    tokenCheck.catch(() => {});
    const { plan } = base;
    const pool = VocabPool.get(opts.threads);
    const nVocab = reader.nVocab;
    const acc = newKldAccumulator();
    // the base rows of job i+1 are read while job i computes
    let jobIndex = 0;
    const perJob = bufs[0].chunks;
    const perDecode = chunksPerDecode(plan.ctx);
    const slices: { first: number; count: number }[] = [];
    for (let g = 0; g < plan.nChunk; g += perDecode) {
      const end = Math.min(plan.nChunk, g + perDecode);
      for (let k = g; k < end; k += perJob) slices.push({ first: k, count: Math.min(perJob, end - k) });
    }
    const prefetch = (i: number) => {
      if (i >= slices.length) return;
      const buf = bufs[i % 2];
      buf.io = reader.readChunksAsync(slices[i].first, slices[i].count, buf.base);
      buf.io.catch(() => {});
    };
    prefetch(0);
    await ev.forEachGroup(plan.nChunk, (c) => chunkInput(base.tokens, plan, c, ev.bos), plan.first, async (groupFirst, blocks) => {
      for (const job of jobSlices(groupFirst, blocks, perJob)) {
        const buf = bufs[jobIndex % 2];
        await buf.io;
        prefetch(jobIndex + 1);
        jobIndex++;
        const rows = job.blocks.length * plan.scoredPerChunk;
        fillTargets(buf, base.tokens, plan, job.first, job.blocks.length);
        await pool.run({ kind: "kld", nVocab, blocks: job.blocks, targets: buf.targets, base: buf.base, results: buf.results, next: buf.next }, opts.threads);
        for (let r = 0; r < rows; r++) addPosition(acc, buf.results[3 * r], buf.results[3 * r + 1], buf.results[3 * r + 2] === 1);
        opts.onProgress?.(file, job.first + job.blocks.length, plan.nChunk);
        opts.signal?.throwIfAborted();
      }
    });
    await tokenCheck;
    return summarizeKld(acc);
  } finally {
    await Promise.allSettled([...bufs.map((b) => b.io), tokenCheck]);
    reader.close();
    await evaluator?.dispose();
  }
}
