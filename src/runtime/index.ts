// The one module that talks to llama.cpp (bench, scan, tune and imatrix all evaluate through it):
// models, contexts, tokenization, batched decoding and raw logits, on the prebuilt libllama of
// @node-llama-cpp/<platform> through koffi (library.ts). Raw logits stay in llama.cpp's output
// buffer; callers get their address and copy rows out with memcpy, in any thread (memcpy.ts).
import { UserError } from "../errors.js";
import { llamaApi, type LlamaApi } from "./library.js";
import { registerEvalCallback, type EvalCallback } from "./graph.js";
import { contextParams, modelParams, placement, type ModelLoadOptions, type Placement } from "./params.js";
import type { OffloadOptions } from "./backends.js";

export interface ContextCreateOptions {
  /** tokens per sequence */
  ctx: number;
  /** sequences decoded together */
  nSeq: number;
  threads: number;
  /** graph-evaluation callback for every node of every decode (hquant imatrix) */
  onEval?: EvalCallback;
}

export { locateLlamaLibrary, LLAMA_PACKAGE_VERSION, type LlamaLibraryLocation } from "./library.js";
export { LLAMA_BACKENDS, type LlamaBackend, type OffloadOptions } from "./backends.js";
export type { ModelLoadOptions } from "./params.js";
export { evaluationRuntime, llamaRuntime, offloadOf, runtimeCacheDir, runtimeLine, type LlamaRuntimeReport } from "./report.js";
export { readOp, readTensor, copyTensor, tensorByteLength, tensorBytesView, GGML_F32, type EvalCallback, type GraphTensor } from "./graph.js";

function llamaError(api: LlamaApi): string {
  return api.lastError() ?? "no reason given";
}

/** llama_model_load_from_splits, bound at first use (library.ts binds the rest). */
let modelLoadFromSplits: ((...a: unknown[]) => unknown) | undefined;

/** A model loaded by llama.cpp: on the CPU, or with `gpuLayers` of its layers on the GPU build's devices. */
export class LlamaModel {
  private disposed = false;

  private constructor(
    private readonly api: LlamaApi,
    readonly path: string,
    /** llama_model * */
    readonly handle: bigint,
    private readonly vocab: bigint,
    readonly nVocab: number,
    /** BOS token id when the vocabulary prepends one (llama_vocab_get_add_bos), else null */
    readonly bos: number | null,
    /** where llama.cpp put it */
    readonly placement: Placement,
  ) {}

  static load(file: string, offload?: OffloadOptions, load?: ModelLoadOptions): LlamaModel {
    return LlamaModel.loadWith(file, offload, (api, blob) => api.modelLoad(file, blob) as bigint | null, "this model", load);
  }

  /**
   * A model from shards given as a list (llama_model_load_from_splits): the first holds the
   * metadata and split.count, each other one split.no = its index; a tensor may be in any of them.
   * Tune's measurements load the base's shards with a few of them replaced.
   */
  static loadSplits(files: readonly string[], offload?: OffloadOptions): LlamaModel {
    if (files.length === 1) return LlamaModel.load(files[0]!, offload);
    return LlamaModel.loadWith(files[0]!, offload, (api, blob) => {
      const loadFromSplits = (modelLoadFromSplits ??= api.koffi
        .load(api.location.llama)
        .func("void *llama_model_load_from_splits(const char **paths, size_t n_paths, hq_llama_model_params params)") as unknown as (...a: unknown[]) => unknown);
      return loadFromSplits([...files], files.length, blob) as bigint | null;
    }, `these ${files.length} shards`);
  }

  /** Placement, params and the vocabulary around one llama.cpp load call; `file` names the model. */
  private static loadWith(file: string, offload: OffloadOptions | undefined, loadCall: (api: LlamaApi, blob: unknown) => bigint | null, what: string, load?: ModelLoadOptions): LlamaModel {
    const api = llamaApi(offload);
    const where = placement(api, offload);
    api.clearError();
    const params = modelParams(api, where, load);
    let handle: bigint | null;
    try {
      handle = loadCall(api, params.blob);
    } finally {
      params.release();
    }
    if (!handle) throw new UserError(`${file}: llama.cpp cannot load ${what} (${llamaError(api)})`);
    const vocab = api.modelGetVocab(handle) as bigint;
    const bos = (api.vocabGetAddBos(vocab) as boolean) ? (api.vocabBos(vocab) as number) : null;
    return new LlamaModel(api, file, handle, vocab, api.vocabNTokens(vocab) as number, bos, where);
  }

  /** The text's tokens as common_tokenize(add_special = true) gives them: BOS first when the vocabulary adds it. */
  tokenize(text: string): Int32Array {
    const bytes = Buffer.from(text, "utf8");
    let out = new Int32Array(bytes.length + 2);
    let n = this.api.tokenize(this.vocab, bytes, bytes.length, out, out.length, true, false) as number;
    if (n < 0 && n !== -2147483648) {
      out = new Int32Array(-n);
      n = this.api.tokenize(this.vocab, bytes, bytes.length, out, out.length, true, false) as number;
    }
    if (n < 0) throw new UserError(`${this.path}: llama.cpp cannot tokenize the text (${n})`);
    return out.slice(0, n);
  }

  /** tokenize() on a libuv thread: it can run while this thread decodes with another context of the model. */
  async tokenizeAsync(text: string): Promise<Int32Array> {
    const bytes = Buffer.from(text, "utf8");
    const call = (out: Int32Array) =>
      new Promise<number>((resolve, reject) =>
        (this.api.tokenize as unknown as { async: (...a: unknown[]) => void }).async(this.vocab, bytes, bytes.length, out, out.length, true, false, (err: unknown, n: number) => (err ? reject(err) : resolve(n))),
      );
    let out = new Int32Array(bytes.length + 2);
    let n = await call(out);
    if (n < 0 && n !== -2147483648) {
      out = new Int32Array(-n);
      n = await call(out);
    }
    if (n < 0) throw new UserError(`${this.path}: llama.cpp cannot tokenize the text (${n})`);
    return out.slice(0, n);
  }

  /** A context of `nSeq` sequences of `ctx` tokens, decoded together. */
  createContext(opts: ContextCreateOptions): LlamaContext {
    return LlamaContext.create(this.api, this, opts);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.api.modelFree(this.handle);
  }
}

/** llama_batch as koffi returns it (pointers as bigint). */
export interface Batch {
  n_tokens: number;
  token: bigint;
  embd: bigint;
  pos: bigint;
  n_seq_id: bigint;
  seq_id: bigint;
  logits: bigint;
}

/**
 * A context for decoding up to `nSeq` independent sequences of `ctx` tokens in one llama_decode,
 * as llama-perplexity lays out its batch: sequence s at batch indices s·ctx … s·ctx+ctx−1,
 * positions 0 … ctx−1, seq_id s.
 */
export class LlamaContext {
  private readonly tokens: Int32Array;
  private readonly outputs: Int8Array;
  /** position of the first output of each sequence in the last decode */
  private firstOutput = 0;
  private disposed = false;

  private constructor(
    private readonly api: LlamaApi,
    readonly model: LlamaModel,
    /** llama_context * */
    readonly handle: bigint,
    private readonly batch: Batch,
    readonly ctx: number,
    readonly nSeq: number,
  ) {
    const koffi = api.koffi;
    const n = ctx * nSeq;
    this.tokens = new Int32Array(koffi.view(batch.token, 4 * n));
    this.outputs = new Int8Array(koffi.view(batch.logits, n));
    const pos = new Int32Array(koffi.view(batch.pos, 4 * n));
    new Int32Array(koffi.view(batch.n_seq_id, 4 * n)).fill(1);
    const seqIds = koffi.decode(batch.seq_id, "void *", n) as bigint[];
    for (let i = 0; i < n; i++) {
      pos[i] = i % ctx;
      new Int32Array(koffi.view(seqIds[i], 4))[0] = Math.floor(i / ctx);
    }
  }

  static create(api: LlamaApi, model: LlamaModel, opts: ContextCreateOptions): LlamaContext {
    const { ctx, nSeq, threads } = opts;
    // one llama_decode per group of sequences (llama-perplexity's n_batch = n_seq·ctx ≤ 2048; a
    // longer context is one sequence per decode rather than llama-perplexity's split decodes, which
    // give the same logits)
    const nBatch = ctx * nSeq;
    api.clearError();
    const callback = opts.onEval ? registerEvalCallback(opts.onEval) : undefined;
    const handle = api.initFromModel(model.handle, contextParams(api, { ctx, nSeq, nBatch, threads, evalCallback: callback?.pointer })) as bigint | null;
    if (!handle) {
      callback?.unregister();
      throw new UserError(`${model.path}: llama.cpp cannot create a context of ${ctx} tokens × ${nSeq} sequences (${llamaError(api)})`);
    }
    const batch = api.batchInit(nBatch, 0, 1) as Batch;
    const context = new LlamaContext(api, model, handle, batch, ctx, nSeq);
    context.unregisterCallback = callback?.unregister;
    return context;
  }

  /**
   * Decodes `inputs` (at most nSeq sequences of ctx tokens) from an empty cache, with outputs at
   * positions ≥ `firstOutput` of each. Their logits are then at logitsAddress(s, k − firstOutput).
   */
  decode(inputs: readonly ArrayLike<number>[], firstOutput: number): void {
    const { ctx } = this;
    if (inputs.length < 1 || inputs.length > this.nSeq) throw new Error(`decode: ${inputs.length} sequences for a context of ${this.nSeq}`);
    inputs.forEach((input, s) => {
      if (input.length !== ctx) throw new Error(`decode: sequence ${s} has ${input.length} tokens, expected ${ctx}`);
      this.tokens.set(input, s * ctx);
    });
    for (let i = 0; i < inputs.length * ctx; i++) this.outputs[i] = i % ctx >= firstOutput ? 1 : 0;
    this.api.memoryClear(this.api.getMemory(this.handle), true);
    this.api.clearError();
    const rc = this.api.decode(this.handle, { ...this.batch, n_tokens: inputs.length * ctx }) as number;
    if (rc !== 0) throw new Error(`${this.model.path}: llama_decode failed (${rc}: ${llamaError(this.api)})`);
    this.firstOutput = firstOutput;
  }

  /** Address of the n_vocab float logits of sequence `seq` at output `k` (position firstOutput + k). */
  logitsAddress(seq: number, k: number): bigint {
    const p = this.api.getLogitsIth(this.handle, seq * this.ctx + this.firstOutput + k) as bigint | null;
    if (!p) throw new Error(`${this.model.path}: no logits for sequence ${seq}, output ${k}`);
    return p;
  }

  /** The sizes llama.cpp made this context with (what it read from the params blob). */
  settings(): { nCtx: number; nBatch: number; nUbatch: number; nSeqMax: number; nThreads: number; nThreadsBatch: number } {
    const a = this.api;
    const h = this.handle;
    return {
      nCtx: a.nCtx(h) as number,
      nBatch: a.nBatch(h) as number,
      nUbatch: a.nUbatch(h) as number,
      nSeqMax: a.nSeqMax(h) as number,
      nThreads: a.nThreads(h) as number,
      nThreadsBatch: a.nThreadsBatch(h) as number,
    };
  }

  /** One output's logits in llama.cpp's buffer (no copy; valid until the next decode). */
  logitsView(seq: number, k: number): Float32Array {
    return new Float32Array(this.api.koffi.view(this.logitsAddress(seq, k), 4 * this.model.nVocab));
  }

  private unregisterCallback?: () => void;

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.api.batchFree(this.batch);
    this.api.free(this.handle);
    this.unregisterCallback?.();
  }
}
