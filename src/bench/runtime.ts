// The llama.cpp runtime hquant measures with: node-llama-cpp's CPU prebuilt binary (never a build,
// never a download), threads fixed for repeatable results. Chunks are decoded as llama-perplexity
// decodes them with its default -b 2048: ⌊2048/ctx⌋ chunks per llama_decode, one sequence each
// (n_seq = n_batch / n_ctx in perplexity()); the results are bit-identical to one chunk per decode.
// `controlledEvaluate` returns the next-token distribution only at the positions asked for — the
// scored half of each chunk.
//
// Where the time goes (tinyllama-16l, whole eval text = 198 chunks at ctx 256, 2 threads, same
// loaded 2-core machine): this evaluator 56 s, the former one-chunk-per-decode one 69 s, a raw-logit
// loop on the same libllama (test/oracle/perplexity.ts) 25 s; llama-perplexity took 12.6 s on an
// idle one. --cpu-prof shows the decode costing what llama-perplexity's does; the rest is
// node-llama-cpp's full-vocabulary distribution per scored position — a sort and a 2·n_vocab JS
// array built through N-API, its garbage, then a Map — about 1.5× the decode's CPU; our own
// per-token math is ~10 %. node-llama-cpp 3.21.1 has no way to hand over raw logits, so that is
// the floor through its API. What is done about it: every sequence's controlledEvaluate has its
// own sampler, so the sorts of one decode's chunks run in parallel on libuv's pool, and the next
// decode is queued before the current chunks' distributions are consumed.
import type { Llama, LlamaModel, LlamaContext, LlamaContextSequence, ControlledEvaluateInputItem, Token } from "node-llama-cpp";
import { UserError } from "../errors.js";

type NodeLlamaCpp = typeof import("node-llama-cpp");

let runtime: Promise<{ lib: NodeLlamaCpp; llama: Llama }> | undefined;

async function loadRuntime(): Promise<{ lib: NodeLlamaCpp; llama: Llama }> {
  let lib: NodeLlamaCpp;
  try {
    lib = await import("node-llama-cpp");
  } catch {
    throw new UserError("hquant bench needs the npm package node-llama-cpp@3.21.1 (npm install node-llama-cpp@3.21.1)");
  }
  const llama = await lib.getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    progressLogs: false,
    logLevel: lib.LlamaLogLevel.error,
    logger: () => {},
  });
  return { lib, llama };
}

function getRuntime(): Promise<{ lib: NodeLlamaCpp; llama: Llama }> {
  runtime ??= loadRuntime();
  return runtime;
}

export interface EvaluatorOptions {
  ctx: number;
  threads: number;
}

/** llama-perplexity's default batch (common_params.n_batch): it decodes ⌊2048/ctx⌋ chunks at once. */
const PERPLEXITY_BATCH = 2048;

/** Chunks decoded together: llama-perplexity's n_seq = max(1, n_batch / n_ctx). */
export function chunksPerDecode(ctx: number): number {
  return Math.max(1, Math.floor(PERPLEXITY_BATCH / ctx));
}

/** One context of `chunksPerDecode(ctx)` sequences: evaluates that many chunks in one decode. */
class BatchContext {
  constructor(
    readonly context: LlamaContext,
    readonly sequences: LlamaContextSequence[],
  ) {}

  /** Next-token probabilities (indexed by token id) at positions first … length−2 of each input. */
  async evaluate(inputs: readonly (readonly number[])[], first: number, file: string): Promise<Float32Array[][]> {
    const seqs = this.sequences.slice(0, inputs.length);
    await Promise.all(seqs.map((s) => s.clearHistory()));
    const outs = await Promise.all(inputs.map((input, k) => seqs[k].controlledEvaluate(markScored(input, first))));
    return outs.map((out, k) => {
      const result: Float32Array[] = [];
      for (let pos = first; pos <= inputs[k].length - 2; pos++) {
        const map = out[pos]?.next.probabilities;
        if (!map) throw new Error(`${file}: llama.cpp returned no probabilities at position ${pos}`);
        result.push(toArray(map, file));
      }
      return result;
    });
  }
}

/**
 * The chunk as decoded: without its last token, whose logits are never scored and which no scored
 * position attends to (causal attention) — so a decode of ⌊2048/ctx⌋ chunks fits node-llama-cpp's
 * batch, which leaves one token per sequence for a second decode otherwise.
 */
function markScored(input: readonly number[], first: number): ControlledEvaluateInputItem[] {
  const last = input.length - 2;
  return input.slice(0, last + 1).map((tok, pos) => (pos >= first ? [tok as Token, { generateNext: { probabilities: true } }] : (tok as Token)));
}

function toArray(map: Map<Token, number>, file: string): Float32Array {
  const probs = new Float32Array(map.size);
  for (const [tok, p] of map) {
    if (tok >= probs.length) throw new Error(`${file}: token id ${tok} outside a vocabulary of ${map.size}`);
    probs[tok] = p;
  }
  return probs;
}

/** One loaded model with its evaluation contexts. */
export class ModelEvaluator {
  private constructor(
    readonly path: string,
    private readonly model: LlamaModel,
    private readonly batch: BatchContext,
  ) {}

  static async open(path: string, opts: EvaluatorOptions): Promise<ModelEvaluator> {
    const { llama } = await getRuntime();
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    } catch (err) {
      throw new UserError(`${path}: llama.cpp cannot load this model (${oneLine(err)})`);
    }
    const nSeq = chunksPerDecode(opts.ctx);
    try {
      const context = await model.createContext({
        contextSize: opts.ctx, // per sequence
        batchSize: opts.ctx * nSeq,
        sequences: nSeq,
        threads: opts.threads,
        flashAttention: "auto", // llama-perplexity's default (LLAMA_FLASH_ATTN_TYPE_AUTO)
      });
      return new ModelEvaluator(path, model, new BatchContext(context, Array.from({ length: nSeq }, () => context.getSequence())));
    } catch (err) {
      await model.dispose();
      throw new UserError(`${path}: llama.cpp cannot create a context of ${opts.ctx} tokens × ${nSeq} sequences (${oneLine(err)})`);
    }
  }

  /** BOS token id when the vocabulary prepends one (llama_vocab_get_add_bos), else null. */
  get bos(): number | null {
    return this.model.tokens.shouldPrependBosToken ? this.model.tokens.bos : null;
  }

  /** The text's tokens as llama-perplexity gets them (common_tokenize with add_special): BOS first when the vocabulary adds it. */
  tokenize(text: string): number[] {
    const body = this.model.tokenize(text, false) as number[];
    const bos = this.bos;
    return bos === null ? [...body] : [bos, ...body];
  }

  /**
   * Evaluates chunks 0 … nChunk−1 (each from an empty cache) and hands `consume` each chunk's
   * next-token probabilities at positions first … ctx−2, in chunk order. The next decode is
   * queued before `consume` runs, so our per-token math overlaps llama.cpp's work; at most two
   * decodes' distributions are held in memory.
   */
  async forEachChunk(
    nChunk: number,
    input: (chunk: number) => number[],
    first: number,
    consume: (chunk: number, dists: Float32Array[]) => void,
  ): Promise<void> {
    const perDecode = this.batch.sequences.length;
    const nGroup = Math.ceil(nChunk / perDecode);
    let pending: Promise<Float32Array[][]> | undefined;
    const start = (g: number) => {
      const chunks = Array.from({ length: Math.min(perDecode, nChunk - g * perDecode) }, (_, k) => input(g * perDecode + k));
      const p = this.batch.evaluate(chunks, first, this.path);
      p.catch(() => {}); // awaited in the loop; this only keeps a failure during `consume` from going unhandled
      return p;
    };
    try {
      pending = nGroup > 0 ? start(0) : undefined;
      for (let g = 0; g < nGroup; g++) {
        const groupDists = await pending!;
        pending = g + 1 < nGroup ? start(g + 1) : undefined;
        groupDists.forEach((dists, k) => consume(g * perDecode + k, dists));
      }
    } finally {
      if (pending) await Promise.allSettled([pending]);
    }
  }

  async dispose(): Promise<void> {
    await this.batch.context.dispose();
    await this.model.dispose();
  }
}

function oneLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split("\n")[0];
}
