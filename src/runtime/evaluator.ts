// The evaluator's view of llama.cpp: one model and one context of ⌊2048/ctx⌋
// sequences, decoded as llama-perplexity decodes with its default -b 2048 (n_seq = n_batch / n_ctx
// chunks per llama_decode, outputs at the scored half of each chunk). The raw logits stay in
// llama.cpp's buffer until the next decode; the caller's vocabulary math reads them there.
import { LlamaModel, offloadOf, type LlamaContext, type OffloadOptions } from "./index.js";

/** Contiguous rows of logits in llama.cpp's output buffer. */
export interface LogitsBlock {
  address: bigint;
  rows: number;
}

export interface EvaluatorOptions extends OffloadOptions {
  ctx: number;
  threads: number;
}

/** llama-perplexity's default batch (common_params.n_batch): it decodes ⌊2048/ctx⌋ chunks at once. */
const PERPLEXITY_BATCH = 2048;

/** Chunks decoded together: llama-perplexity's n_seq = max(1, n_batch / n_ctx). */
export function chunksPerDecode(ctx: number): number {
  return Math.max(1, Math.floor(PERPLEXITY_BATCH / ctx));
}

/** One loaded model with its evaluation context. */
export class ModelEvaluator {
  private constructor(
    readonly path: string,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
  ) {}

  /** `path`: a GGUF file, or a list of shards (LlamaModel.loadSplits) named by the first. */
  static async open(path: string | readonly string[], opts: EvaluatorOptions): Promise<ModelEvaluator> {
    const model = typeof path === "string" ? LlamaModel.load(path, offloadOf(opts)) : LlamaModel.loadSplits(path, offloadOf(opts));
    try {
      return new ModelEvaluator(model.path, model, model.createContext({ ctx: opts.ctx, nSeq: chunksPerDecode(opts.ctx), threads: opts.threads }));
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  /** BOS token id when the vocabulary prepends one (llama_vocab_get_add_bos), else null. */
  get bos(): number | null {
    return this.model.bos;
  }

  get nVocab(): number {
    return this.model.nVocab;
  }

  /** The text's tokens as llama-perplexity gets them (common_tokenize with add_special): BOS first when the vocabulary adds it. */
  tokenize(text: string): number[] {
    return Array.from(this.model.tokenize(text));
  }

  /** tokenize() without blocking this thread (the decode can run meanwhile). */
  async tokenizeAsync(text: string): Promise<number[]> {
    return Array.from(await this.model.tokenizeAsync(text));
  }

  /**
   * Decodes chunks 0 … nChunk−1, ⌊2048/ctx⌋ per llama_decode, each from an empty cache, and after
   * each decode awaits `use(firstChunk, blocks)`: blocks[k] holds the logits at positions
   * first … ctx−2 of chunk firstChunk + k (the scored positions), valid until `use` settles.
   */
  async forEachGroup(
    nChunk: number,
    input: (chunk: number) => number[],
    first: number,
    use: (firstChunk: number, blocks: LogitsBlock[]) => Promise<void>,
  ): Promise<void> {
    const perDecode = this.context.nSeq;
    const scored = this.context.ctx - 1 - first;
    for (let c0 = 0; c0 < nChunk; c0 += perDecode) {
      const inputs = Array.from({ length: Math.min(perDecode, nChunk - c0) }, (_, k) => input(c0 + k));
      this.context.decode(inputs, first);
      await use(c0, inputs.map((_, s) => ({ address: this.context.logitsAddress(s, 0), rows: scored })));
    }
  }

  async dispose(): Promise<void> {
    this.context.dispose();
    this.model.dispose();
  }
}
