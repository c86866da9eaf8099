// `hquant imatrix`: llama-imatrix's compute_imatrix() on the libllama hquant already ships. The
// text is tokenized with BOS, cut into chunks of `ctx` tokens, and ⌊n_batch/ctx⌋ chunks are decoded
// at once (one sequence each, BOS in front, every position an output), with llama-imatrix's
// context settings — so the graph, the ubatch split and hence the activations the graph callback
// sees are the ones llama-imatrix sees. The callback (cb_eval) accumulates every MUL_MAT whose
// weight is a `blk.*` tensor (and `output.weight` with processOutput) and every MUL_MAT_ID; the
// logits give the running perplexity llama-imatrix prints.
import os from "node:os";
import { UserError } from "../errors.js";
import { VocabPool } from "../eval/vocab-math.js";
import { copyTensor, GGML_F32, LlamaModel, offloadOf, readOp, readTensor, tensorByteLength, tensorBytesView, type EvalCallback, type OffloadOptions } from "../runtime/index.js";
import { ImatrixCollector } from "./collect.js";

export interface ImatrixComputeOptions extends OffloadOptions {
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

/** llama-imatrix's layout with its default n_batch 2048: ⌊2048/ctx⌋ sequences of ctx tokens per decode. */
export function imatrixLayout(ctx: number): { nSeq: number; chunkSize: number } {
  return { nSeq: Math.max(1, Math.floor(2048 / ctx)), chunkSize: ctx };
}

export async function computeImatrix(opts: ImatrixComputeOptions): Promise<ImatrixComputeResult> {
  const ctx = opts.ctx ?? 512;
  const { nSeq, chunkSize } = imatrixLayout(ctx);
  const collector = opts.collector ?? new ImatrixCollector(chunkSize);
  if (collector.chunkSize !== chunkSize) throw new Error("collector chunk size differs from --ctx");
  const model = LlamaModel.load(opts.model, offloadOf(opts));
  try {
    const tokens = model.tokenize(opts.text);
    if (tokens.length < 2 * ctx) {
      throw new UserError(`${opts.textName}: ${tokens.length} tokens; an imatrix at --ctx ${ctx} needs at least ${2 * ctx}`);
    }
    const nChunkMax = Math.floor(tokens.length / ctx);
    const nChunk = opts.chunks === undefined ? nChunkMax : Math.min(opts.chunks, nChunkMax);
    const processOutput = opts.processOutput ?? false;
    let failure: unknown;
    const onEval: EvalCallback = (t, ask) => {
      try {
        return collectNode(collector, t, ask, processOutput);
      } catch (err) {
        failure ??= err;
        return false; // stops the graph computation; the error is thrown after llama_decode
      }
    };
    // one llama_decode per group of nSeq chunks (for ctx > n_batch llama-imatrix splits a chunk
    // over several decodes; the ubatches, and so the activations, are the same)
    const threads = opts.threads ?? os.availableParallelism();
    const context = model.createContext({ ctx, nSeq, threads, onEval });
    try {
      const computePpl = opts.computePpl ?? true;
      const nVocab = model.nVocab;
      const first = Math.floor(ctx / 2);
      let nll = 0;
      let nll2 = 0;
      let count = 0;
      // the pool's workers start now, during the first decode, not after it
      if (computePpl) VocabPool.get(threads);
      const rows = nSeq * (ctx - 1 - first);
      const pplJob = {
        kind: "nll" as const,
        nVocab,
        targets: new Int32Array(new SharedArrayBuffer(4 * rows)),
        base: new Uint16Array(0),
        results: new Float64Array(new SharedArrayBuffer(24 * rows)),
        next: new Int32Array(new SharedArrayBuffer(4)),
      };
      for (let i = 0; i < nChunk; i += nSeq) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error("aborted");
        const start = i * ctx;
        const nSeqBatch = Math.min(nSeq, nChunk - i);
        const inputs = Array.from({ length: nSeqBatch }, (_, seq) => {
          const input = tokens.slice(start + seq * ctx, start + (seq + 1) * ctx);
          if (model.bos !== null) input[0] = model.bos;
          return input;
        });
        try {
          // every position is an output: the last layer's FFN and output.weight see all tokens
          context.decode(inputs, 0);
        } catch (err) {
          throw failure ?? err;
        }
        if (failure) throw failure;
        if (computePpl) {
          // spread over the threads as llama-imatrix's process_logits does; summed here in position order
          const scored = ctx - 1 - first;
          for (let seq = 0; seq < nSeqBatch; seq++) {
            for (let p = first; p < ctx - 1; p++) pplJob.targets[seq * scored + p - first] = tokens[start + seq * ctx + p + 1];
          }
          const blocks = Array.from({ length: nSeqBatch }, (_, seq) => ({ address: context.logitsAddress(seq, first), rows: scored }));
          await VocabPool.get(threads).run({ ...pplJob, blocks }, threads);
          for (let r = 0; r < nSeqBatch * scored; r++) {
            const v = pplJob.results[3 * r];
            nll += v;
            nll2 += v * v;
          }
          count += nSeqBatch * scored;
        }
        opts.onProgress?.(i + nSeqBatch, nChunk, computePpl ? Math.exp(nll / count) : NaN);
        await opts.onChunks?.(collector);
        // llama_decode blocks the event loop: let signals (Ctrl-C → opts.signal) through between decodes
        await new Promise((resolve) => setImmediate(resolve));
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
      context.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** The graph callback's work for one node (llama-imatrix's collect_imatrix). */
function collectNode(c: ImatrixCollector, t: bigint, ask: boolean, processOutput: boolean): boolean {
  // most nodes are not matrix multiplications: their op alone answers
  const op = readOp(t);
  if (op !== "MUL_MAT" && op !== "MUL_MAT_ID") return !ask;
  const node = readTensor(t);
  const src0 = readTensor(node.src[0]);
  const src1 = readTensor(node.src[1]);
  const name = weightName(src0.name);
  if (ask) {
    if (node.op === "MUL_MAT_ID") return true;
    // llama-imatrix ignores small batches and non-f32 activations
    if (src1.ne[1] < 16 || src1.type !== GGML_F32) return false;
    return name.startsWith("blk.") || (processOutput && name === "output.weight");
  }
  if (src1.nb[0] !== 4) throw new Error(`${name}: activations are not contiguous f32 rows`);
  // copied by the kernels straight into their memory
  const activations = { data: { byteLength: tensorByteLength(src1), copyTo: (dst: Uint8Array) => copyTensor(src1, dst) }, ne: src1.ne, nb: src1.nb };
  if (node.op === "MUL_MAT_ID") {
    const ids = readTensor(node.src[2]);
    if (src1.ne[3] !== 1) throw new UserError(`${name}: activations of more than 3 dimensions`);
    c.addMatMulId(name, src0.ne[2], activations, { data: tensorBytesView(ids), ne: [ids.ne[0], ids.ne[1]], nb: [ids.nb[0], ids.nb[1]] });
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
