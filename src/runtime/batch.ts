// Free-form batches for llama-perplexity's task modes (--hellaswag, --winogrande,
// --multiple-choice) and for greedy generation: tokens at any position, each in one or more
// sequences, logits where asked. The evaluator's fixed chunk layout (index.ts LlamaContext) stays
// as it is; these are extra llama.cpp functions bound on the same libllama (koffi shares the one
// dlopen handle).
import { UserError } from "../errors.js";
import { llamaApi, type LlamaApi } from "./library.js";
import { contextParams } from "./params.js";
import type { Batch, LlamaModel } from "./index.js";

type Fn = (...args: unknown[]) => unknown;

interface BatchApi {
  getLogits: Fn;
  samplerInitGreedy: Fn;
  samplerSample: Fn;
  samplerFree: Fn;
  tokenToPiece: Fn;
  vocabIsEog: Fn;
}

let batchApi: BatchApi | undefined;

function extraApi(api: LlamaApi): BatchApi {
  if (batchApi) return batchApi;
  const lib = api.koffi.load(api.location.llama);
  const f = (decl: string) => lib.func(decl) as unknown as Fn;
  batchApi = {
    getLogits: f("float *llama_get_logits(void *ctx)"),
    samplerInitGreedy: f("void *llama_sampler_init_greedy()"),
    samplerSample: f("int32_t llama_sampler_sample(void *smpl, void *ctx, int32_t idx)"),
    samplerFree: f("void llama_sampler_free(void *smpl)"),
    tokenToPiece: f("int32_t llama_token_to_piece(void *vocab, int32_t token, _Out_ uint8_t *buf, int32_t length, int32_t lstrip, bool special)"),
    vocabIsEog: f("bool llama_vocab_is_eog(void *vocab, int32_t token)"),
  };
  return batchApi;
}

export interface BatchContextOptions {
  /** llama_context n_ctx (all sequences together) */
  nCtx: number;
  /** n_seq_max */
  nSeq: number;
  /** tokens per llama_decode (llama-perplexity's -b, capped at n_ctx) */
  nBatch: number;
  threads: number;
  /** one KV cache for all sequences (llama-perplexity's task modes set it) */
  kvUnified?: boolean;
}

/**
 * A context plus a llama_batch of n_ctx tokens with room for nSeq sequence ids per token, filled
 * as common_batch_add fills it.
 */
export class BatchContext {
  private readonly tokens: Int32Array;
  private readonly pos: Int32Array;
  private readonly nSeqId: Int32Array;
  private readonly seqIds: Int32Array[];
  private readonly wantLogits: Int8Array;
  private nTokens = 0;
  private disposed = false;

  private constructor(
    private readonly api: LlamaApi,
    private readonly extra: BatchApi,
    readonly model: LlamaModel,
    readonly handle: bigint,
    private readonly batch: Batch,
    readonly nCtx: number,
    readonly nSeq: number,
    readonly nBatch: number,
  ) {
    const k = api.koffi;
    this.tokens = new Int32Array(k.view(batch.token, 4 * nCtx));
    this.pos = new Int32Array(k.view(batch.pos, 4 * nCtx));
    this.nSeqId = new Int32Array(k.view(batch.n_seq_id, 4 * nCtx));
    this.wantLogits = new Int8Array(k.view(batch.logits, nCtx));
    this.seqIds = (k.decode(batch.seq_id, "void *", nCtx) as bigint[]).map((p) => new Int32Array(k.view(p, 4 * nSeq)));
  }

  static create(model: LlamaModel, opts: BatchContextOptions): BatchContext {
    const api = llamaApi();
    const extra = extraApi(api);
    api.clearError();
    const perSeq = Math.ceil(opts.nCtx / opts.nSeq);
    const params = contextParams(api, { ctx: perSeq, nSeq: opts.nSeq, nBatch: opts.nBatch, threads: opts.threads, kvUnified: opts.kvUnified });
    const handle = api.initFromModel(model.handle, params) as bigint | null;
    if (!handle) throw new UserError(`${model.path}: llama.cpp cannot create a context of ${opts.nCtx} tokens (${api.lastError() ?? "no reason given"})`);
    // llama.cpp may round n_ctx up; the batch holds what it made (llama_n_ctx), as llama-perplexity's does
    const nCtx = api.nCtx(handle) as number;
    const batch = api.batchInit(nCtx, 0, opts.nSeq) as Batch;
    return new BatchContext(api, extra, model, handle, batch, nCtx, opts.nSeq, opts.nBatch);
  }

  get length(): number {
    return this.nTokens;
  }

  /** common_batch_clear */
  clear(): void {
    this.nTokens = 0;
  }

  /** common_batch_add */
  add(token: number, pos: number, seqIds: readonly number[], logits: boolean): void {
    const i = this.nTokens;
    if (i >= this.nCtx) throw new Error(`batch of ${this.nCtx} tokens exceeded`);
    this.tokens[i] = token;
    this.pos[i] = pos;
    this.nSeqId[i] = seqIds.length;
    this.seqIds[i].set(seqIds);
    this.wantLogits[i] = logits ? 1 : 0;
    this.nTokens = i + 1;
  }

  /** Asks for the logits of the last token added (batch.logits[n_tokens − 1] = true). */
  setLastLogits(): void {
    this.wantLogits[this.nTokens - 1] = 1;
  }

  /**
   * llama_memory_clear, then llama-perplexity's decode_helper: the batch in views of nBatch
   * tokens, the logits of every output copied out in batch order (n_outputs × n_vocab).
   */
  decodeFromEmpty(): Float32Array {
    const { api } = this;
    const nVocab = this.model.nVocab;
    let nOutputs = 0;
    for (let i = 0; i < this.nTokens; i++) nOutputs += this.wantLogits[i] !== 0 ? 1 : 0;
    const out = new Float32Array(nOutputs * nVocab);
    api.memoryClear(api.getMemory(this.handle), true);
    let prev = 0;
    for (let i = 0; i < this.nTokens; i += this.nBatch) {
      const n = Math.min(this.nBatch, this.nTokens - i);
      const b = this.batch;
      const view = { n_tokens: n, token: b.token + BigInt(4 * i), embd: 0n, pos: b.pos + BigInt(4 * i), n_seq_id: b.n_seq_id + BigInt(4 * i), seq_id: b.seq_id + BigInt(8 * i), logits: b.logits + BigInt(i) };
      api.clearError();
      const rc = api.decode(this.handle, view) as number;
      if (rc !== 0) throw new Error(`${this.model.path}: llama_decode failed (${rc}: ${api.lastError() ?? "no reason given"})`);
      let k = 0;
      for (let j = i; j < i + n; j++) k += this.wantLogits[j] !== 0 ? 1 : 0;
      if (k > 0) {
        const p = this.extra.getLogits(this.handle) as bigint;
        api.memcpy(out.subarray(prev * nVocab, (prev + k) * nVocab), p, 4 * k * nVocab);
      }
      prev += k;
    }
    return out;
  }

  /**
   * Greedy continuation of `prompt` (tokens, BOS included) with llama.cpp's greedy sampler: at most
   * `maxTokens` tokens, stopping at an end-of-generation token. Returns the generated text.
   */
  generateGreedy(prompt: readonly number[], maxTokens: number): { text: string; tokens: number[] } {
    const { api, extra } = this;
    if (prompt.length + maxTokens > this.nCtx) throw new UserError(`${this.model.path}: a prompt of ${prompt.length} tokens and ${maxTokens} new ones exceed the context of ${this.nCtx}`);
    const vocab = api.modelGetVocab(this.model.handle) as bigint;
    const sampler = extra.samplerInitGreedy() as bigint;
    const generated: number[] = [];
    const pieces: Buffer[] = [];
    try {
      api.memoryClear(api.getMemory(this.handle), true);
      let next: number[] = [...prompt];
      let pos = 0;
      for (let step = 0; step < maxTokens; step++) {
        for (let i = 0; i < next.length; i += this.nBatch) {
          this.clear();
          const n = Math.min(this.nBatch, next.length - i);
          for (let j = 0; j < n; j++) this.add(next[i + j], pos + i + j, [0], i + j === next.length - 1);
          const rc = api.decode(this.handle, { ...this.batch, n_tokens: n }) as number;
          if (rc !== 0) throw new Error(`${this.model.path}: llama_decode failed (${rc}: ${api.lastError() ?? "no reason given"})`);
        }
        pos += next.length;
        const tok = extra.samplerSample(sampler, this.handle, -1) as number;
        if (extra.vocabIsEog(vocab, tok) as boolean) break;
        generated.push(tok);
        const buf = Buffer.alloc(256);
        const len = extra.tokenToPiece(vocab, tok, buf, buf.length, 0, false) as number;
        if (len > 0) pieces.push(buf.subarray(0, len));
        next = [tok];
      }
    } finally {
      extra.samplerFree(sampler);
    }
    return { text: Buffer.concat(pieces).toString("utf8"), tokens: generated };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.api.batchFree(this.batch);
    this.api.free(this.handle);
  }
}
