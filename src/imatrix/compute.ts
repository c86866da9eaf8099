// `hquant imatrix`: llama-imatrix's compute_imatrix() on the libllama hquant already ships. The
// text is tokenized with BOS, cut into chunks of `ctx` tokens, and ⌊n_batch/ctx⌋ chunks are decoded
// at once (one sequence each, BOS in front, every position an output), with llama-imatrix's
// context settings — so the graph, the ubatch split and hence the activations the graph callback
// sees are the ones llama-imatrix sees. The callback (cb_eval) accumulates every MUL_MAT whose
// weight is a `blk.*` tensor (and `output.weight` with processOutput) and every MUL_MAT_ID; the
// logits give the running perplexity llama-imatrix prints.
import os from "node:os";
import { UserError } from "../errors.js";
import { llamaRuntime, type EvalCallback, type LlamaRuntime } from "./llama-graph.js";
import { ImatrixCollector } from "./collect.js";

export interface ImatrixComputeOptions {
  model: string;
  text: string;
  /** what the text file is called (for errors) */
  textName: string;
  /** tokens per chunk (llama-imatrix -c; default 512) */
  ctx?: number;
  /** at most this many chunks (default: all) */
  chunks?: number;
  /** also collect output.weight */
  processOutput?: boolean;
  /** compute the perplexity too (default true, as llama-imatrix) */
  computePpl?: boolean;
  threads?: number;
  /** logical batch (llama-imatrix -b; default 2048) */
  batch?: number;
  /** start from these statistics (--in-file) */
  collector?: ImatrixCollector;
  /** after each decode: chunks done, total, running PPL (NaN without it) */
  onProgress?: (done: number, total: number, ppl: number) => void;
  /** after each decode, with the chunk count reached (for --save-frequency) */
  onChunks?: (collector: ImatrixCollector) => Promise<void> | void;
  signal?: AbortSignal;
}

export interface ImatrixComputeResult {
  collector: ImatrixCollector;
  chunks: number;
  tokens: number;
  /** final perplexity estimate and its uncertainty (NaN without computePpl) */
  ppl: number;
  pplErr: number;
}

/** llama-imatrix's n_seq and context: ⌊n_batch/ctx⌋ sequences of ctx tokens in one KV cache. */
export function imatrixLayout(ctx: number, batch = 2048): { nSeq: number; nKv: number; nBatch: number; chunkSize: number } {
  const nSeq = Math.max(1, Math.floor(batch / ctx));
  const nKv = nSeq * ctx;
  return { nSeq, nKv, nBatch: Math.min(batch, nKv), chunkSize: ctx };
}

export async function computeImatrix(opts: ImatrixComputeOptions): Promise<ImatrixComputeResult> {
  const ctx = opts.ctx ?? 512;
  const { nSeq, nKv, nBatch, chunkSize } = imatrixLayout(ctx, opts.batch);
  if (!(nBatch < ctx || nBatch % ctx === 0)) throw new UserError(`--batch ${nBatch} must be below --ctx ${ctx} or a multiple of it`);
  const collector = opts.collector ?? new ImatrixCollector(chunkSize);
  if (collector.chunkSize !== chunkSize) throw new Error("collector chunk size differs from --ctx");
  const rt: LlamaRuntime = llamaRuntime();
  const model = rt.loadModel(opts.model);
  try {
    const tokens = rt.tokenize(model, opts.text);
    if (tokens.length < 2 * ctx) {
      throw new UserError(`${opts.textName}: ${tokens.length} tokens; an imatrix at --ctx ${ctx} needs at least ${2 * ctx}`);
    }
    const nChunkMax = Math.floor(tokens.length / ctx);
    const nChunk = opts.chunks === undefined ? nChunkMax : Math.min(opts.chunks, nChunkMax);
    const processOutput = opts.processOutput ?? false;
    let failure: unknown;
    const onEval: EvalCallback = (t, ask) => {
      try {
        return collectNode(rt, collector, t, ask, processOutput);
      } catch (err) {
        failure ??= err;
        return false; // stops the graph computation; the error is thrown after llama_decode
      }
    };
    const context = rt.createContext(model, { nCtx: nKv, nBatch, nSeq, threads: opts.threads ?? os.availableParallelism(), onEval });
    try {
      const computePpl = opts.computePpl ?? true;
      const bos = rt.addBos(model) ? rt.bos(model) : null;
      const nVocab = rt.nVocab(model);
      const numBatches = Math.ceil(ctx / nBatch);
      const first = Math.floor(ctx / 2);
      const batch = rt.newBatch(Math.min(nBatch, ctx * nSeq));
      let nll = 0;
      let nll2 = 0;
      let count = 0;
      try {
        for (let i = 0; i < nChunk; i += nSeq) {
          if (opts.signal?.aborted) throw opts.signal.reason ?? new Error("aborted");
          const start = i * ctx;
          const nSeqBatch = Math.min(nSeq, nChunk - i);
          rt.clearMemory(context);
          // with ctx > n_batch a chunk takes several decodes; their logits are concatenated
          const chunkLogits: Float32Array[] = [];
          for (let j = 0; j < numBatches; j++) {
            const batchStart = start + j * nBatch;
            const batchSize = Math.min(start + ctx - batchStart, nBatch);
            batch.clear();
            for (let seq = 0; seq < nSeqBatch; seq++) {
              const seqStart = batchStart + seq * ctx;
              for (let k = 0; k < batchSize; k++) {
                const tok = k === 0 && j === 0 && bos !== null ? bos : tokens[seqStart + k];
                // every position is an output: the last layer's FFN and output.weight see all tokens
                batch.add(tok, j * nBatch + k, seq, true);
              }
            }
            const rc = rt.decode(context, batch);
            if (failure) throw failure;
            if (rc !== 0) throw new Error(`${opts.model}: llama_decode failed (${rc})`);
            if (computePpl && numBatches > 1) chunkLogits.push(rt.logits(context, 0, batchSize * nVocab).slice());
          }
          if (computePpl) {
            for (let seq = 0; seq < nSeqBatch; seq++) {
              const all = numBatches > 1 ? concat(chunkLogits) : rt.logits(context, seq * ctx, ctx * nVocab);
              for (let p = first; p < ctx - 1; p++) {
                const v = -logSoftmaxAt(all, p * nVocab, nVocab, tokens[start + seq * ctx + p + 1]);
                nll += v;
                nll2 += v * v;
              }
              count += ctx - 1 - first;
            }
          }
          opts.onProgress?.(i + nSeqBatch, nChunk, computePpl ? Math.exp(nll / count) : NaN);
          await opts.onChunks?.(collector);
          // llama_decode blocks the event loop: let signals (Ctrl-C → opts.signal) through between decodes
          await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        batch.free();
      }
      let ppl = NaN;
      let pplErr = NaN;
      if (computePpl && count > 0) {
        const mean = nll / count;
        ppl = Math.exp(mean);
        const variance = nll2 / count - mean * mean;
        pplErr = variance > 0 ? Math.sqrt(variance / (count - 1)) * ppl : NaN;
      }
      return { collector, chunks: nChunk, tokens: tokens.length, ppl, pplErr };
    } finally {
      rt.freeContext(context);
    }
  } finally {
    rt.freeModel(model);
  }
}

/** The graph callback's work for one node (llama-imatrix's collect_imatrix). */
function collectNode(rt: LlamaRuntime, c: ImatrixCollector, t: bigint, ask: boolean, processOutput: boolean): boolean {
  const node = rt.tensor(t);
  if (node.op !== "MUL_MAT" && node.op !== "MUL_MAT_ID") return !ask;
  const src0 = rt.tensor(node.src[0]);
  const src1 = rt.tensor(node.src[1]);
  const name = weightName(src0.name);
  if (ask) {
    if (node.op === "MUL_MAT_ID") return true;
    // llama-imatrix ignores small batches and non-f32 activations
    if (src1.ne[1] < 16 || src1.type !== 0) return false;
    return name.startsWith("blk.") || (processOutput && name === "output.weight");
  }
  if (src1.nb[0] !== 4) throw new Error(`${name}: activations are not contiguous f32 rows`);
  const activations = { data: rt.f32View(src1), ne: src1.ne, nb: src1.nb };
  if (node.op === "MUL_MAT_ID") {
    const ids = rt.tensor(node.src[2]);
    if (src1.ne[3] !== 1) throw new UserError(`${name}: activations of more than 3 dimensions`);
    c.addMatMulId(name, src0.ne[2], activations, { data: rt.byteView(ids), ne: [ids.ne[0], ids.ne[1]], nb: [ids.nb[0], ids.nb[1]] });
  } else {
    c.addMatMul(name, src0.ne, activations);
  }
  return true;
}

/** The weight's name without a backend prefix or suffix (CUDA0#blk.0.attn_k.weight#0 → blk.0.attn_k.weight). */
export function weightName(name: string): string {
  const p = name.indexOf("#");
  if (p < 0) return name;
  const q = name.indexOf("#", p + 1);
  return q < 0 ? name.slice(p + 1) : name.slice(p + 1, q);
}

/** llama-imatrix's log_softmax: f32 max, double sum of expf, the token's log-probability. */
function logSoftmaxAt(logits: Float32Array, at: number, n: number, tok: number): number {
  let max = logits[at];
  for (let i = 1; i < n; i++) if (logits[at + i] > max) max = logits[at + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.fround(Math.exp(Math.fround(logits[at + i] - max)));
  return Math.fround(logits[at + tok] - max) - Math.log(sum);
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
