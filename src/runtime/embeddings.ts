// Final hidden states through llama.cpp: a context with embeddings on (llama_set_embeddings) and
// the model's pooling (none for a causal LM: llama_context's pooling_type UNSPECIFIED → the
// model's, NONE when the GGUF names none) returns, per token, the graph's t_embd, which for the
// llama graph is the output of the final RMS norm ("result_norm", the lm_head's input). With
// embeddings on, llama_decode outputs every token of the batch (output_all), so
// llama_get_embeddings_ith(i) is the hidden state at batch index i.
// scan --laco opens these in the evaluation process (scan/laco.ts hiddenStates, runtime/isolation.ts).
import { LlamaModel, offloadOf, type LlamaContext, type OffloadOptions } from "./index.js";
import { llamaApi } from "./library.js";

type Fn = (...args: unknown[]) => unknown;

interface EmbeddingsApi {
  setEmbeddings: Fn;
  getEmbeddingsIth: Fn;
  modelNEmbd: Fn;
}

let bound: EmbeddingsApi | undefined;

function embeddingsApi(): EmbeddingsApi {
  if (bound) return bound;
  const api = llamaApi();
  // the same library llamaApi() loaded: dlopen returns the loaded instance
  const lib = api.koffi.load(api.location.llama);
  const f = (decl: string) => lib.func(decl) as unknown as Fn;
  bound = {
    setEmbeddings: f("void llama_set_embeddings(void *ctx, bool embeddings)"),
    getEmbeddingsIth: f("float *llama_get_embeddings_ith(void *ctx, int32_t i)"),
    modelNEmbd: f("int32_t llama_model_n_embd(void *model)"),
  };
  return bound;
}

/** A model with a context that returns the final hidden state of every token. */
export class HiddenStateModel {
  private constructor(
    readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly nEmbd: number,
  ) {}

  /** `file`: a GGUF file, or a list of shards (LlamaModel.loadSplits). */
  static open(file: string | readonly string[], opts: { ctx: number; nSeq: number; threads: number } & OffloadOptions): HiddenStateModel {
    const e = embeddingsApi();
    const model = typeof file === "string" ? LlamaModel.load(file, offloadOf(opts)) : LlamaModel.loadSplits(file, offloadOf(opts));
    try {
      const context = model.createContext({ ctx: opts.ctx, nSeq: opts.nSeq, threads: opts.threads });
      e.setEmbeddings(context.handle, true);
      return new HiddenStateModel(model, context, e.modelNEmbd(model.handle) as number);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  get nSeq(): number {
    return this.context.nSeq;
  }

  /** Decodes up to nSeq sequences of ctx tokens; one Float32Array of ctx·n_embd per sequence (token-major). */
  hiddenStates(inputs: readonly ArrayLike<number>[]): Float32Array[] {
    const e = embeddingsApi();
    const { memcpy } = llamaApi();
    const { ctx } = this.context;
    this.context.decode(inputs, 0);
    return inputs.map((_, s) => {
      const out = new Float32Array(ctx * this.nEmbd);
      for (let k = 0; k < ctx; k++) {
        const p = e.getEmbeddingsIth(this.context.handle, s * ctx + k) as bigint | null;
        if (!p) throw new Error(`${this.model.path}: no hidden state for sequence ${s}, token ${k}`);
        memcpy(out.subarray(k * this.nEmbd, (k + 1) * this.nEmbd), p, 4 * this.nEmbd);
      }
      return out;
    });
  }

  dispose(): void {
    this.context.dispose();
    this.model.dispose();
  }
}
