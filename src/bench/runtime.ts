// The llama.cpp runtime hquant measures with: node-llama-cpp's CPU prebuilt binary (never a build,
// never a download), one context of `ctx` tokens with batch = ctx so a chunk is one decode, threads
// fixed for repeatable results. `controlledEvaluate` returns the next-token distribution only at
// the positions asked for — the scored half of the chunk — because building the full-vocabulary
// map is the expensive part.
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

/** One loaded model with one evaluation context. */
export class ModelEvaluator {
  private constructor(
    readonly path: string,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequence: LlamaContextSequence,
  ) {}

  static async open(path: string, opts: EvaluatorOptions): Promise<ModelEvaluator> {
    const { llama } = await getRuntime();
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    } catch (err) {
      throw new UserError(`${path}: llama.cpp cannot load this model (${oneLine(err)})`);
    }
    try {
      const context = await model.createContext({
        contextSize: opts.ctx,
        batchSize: opts.ctx,
        sequences: 1,
        threads: opts.threads,
        flashAttention: "auto", // llama-perplexity's default (LLAMA_FLASH_ATTN_TYPE_AUTO)
      });
      return new ModelEvaluator(path, model, context, context.getSequence());
    } catch (err) {
      await model.dispose();
      throw new UserError(`${path}: llama.cpp cannot create a context of ${opts.ctx} tokens (${oneLine(err)})`);
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
   * Evaluates one chunk from an empty cache and returns the next-token probabilities (indexed by
   * token id) at positions first … input.length−2.
   */
  async evaluateChunk(input: readonly number[], first: number): Promise<Float32Array[]> {
    await this.sequence.clearHistory();
    const last = input.length - 2;
    const items = input.map(
      (tok, pos): ControlledEvaluateInputItem => (pos >= first && pos <= last ? [tok as Token, { generateNext: { probabilities: true } }] : (tok as Token)),
    );
    const out = await this.sequence.controlledEvaluate(items);
    const result: Float32Array[] = [];
    for (let pos = first; pos <= last; pos++) {
      const map = out[pos]?.next.probabilities;
      if (!map) throw new Error(`${this.path}: llama.cpp returned no probabilities at position ${pos}`);
      const probs = new Float32Array(map.size);
      for (const [tok, p] of map) {
        if (tok >= probs.length) throw new Error(`${this.path}: token id ${tok} outside a vocabulary of ${map.size}`);
        probs[tok] = p;
      }
      result.push(probs);
    }
    return result;
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}

function oneLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split("\n")[0];
}
