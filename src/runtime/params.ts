// llama_model_params and llama_context_params go to llama.cpp by value. koffi gets them as opaque
// blobs of their x86-64/arm64 size, built from llama.cpp's own defaults (llama_*_default_params)
// with the fields hquant sets written at their offsets in include/llama.h of llama.cpp 80fb11a
// (the source of the 3.21.1 prebuilt libraries). Every context hquant creates is made here.
import type { LlamaApi } from "./library.js";

const MODEL_PARAMS_BYTES = 80;
const CONTEXT_PARAMS_BYTES = 160;

/** llama_model_params field offsets (include/llama.h). */
const MODEL = {
  n_gpu_layers: 16, // int32_t
} as const;

/** llama_context_params field offsets (include/llama.h). */
const CONTEXT = {
  n_ctx: 0, // uint32_t
  n_batch: 4, // uint32_t
  n_ubatch: 8, // uint32_t
  n_seq_max: 12, // uint32_t
  n_threads: 28, // int32_t
  n_threads_batch: 32, // int32_t
  flash_attn_type: 52, // enum llama_flash_attn_type
  cb_eval: 88, // ggml_backend_sched_eval_callback
  cb_eval_user_data: 96, // void *
  swa_full: 132, // bool
  kv_unified: 133, // bool
} as const;

/** enum llama_flash_attn_type */
const LLAMA_FLASH_ATTN_TYPE_AUTO = -1;

type Blob = { w: (bigint | number)[] };

function toBuffer(blob: Blob, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  blob.w.forEach((v, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), i * 8));
  return buf;
}

function toBlob(buf: Buffer): Blob {
  return { w: Array.from({ length: buf.length / 8 }, (_, i) => buf.readBigUInt64LE(i * 8)) };
}

/** CPU only: the platform package is a CPU build, and results must not depend on a GPU. */
export function modelParams(api: LlamaApi): Blob {
  const buf = toBuffer(api.modelDefaultParams() as Blob, MODEL_PARAMS_BYTES);
  buf.writeInt32LE(0, MODEL.n_gpu_layers);
  return toBlob(buf);
}

export interface ContextOptions {
  /** tokens per sequence */
  ctx: number;
  /** sequences decoded together */
  nSeq: number;
  /** logical batch (tokens per llama_decode) */
  nBatch: number;
  threads: number;
  /** a registered ggml_backend_sched_eval_callback (graph.ts), called for every graph node */
  evalCallback?: bigint;
  /** one KV cache shared by all sequences (llama-perplexity sets it for its task modes) */
  kvUnified?: boolean;
}

/**
 * llama-perplexity's context (common_context_params_to_llama with its defaults): n_ctx = n_seq·ctx
 * split into n_seq sequences, n_ubatch 512, flash attention auto, swa_full off, no unified KV cache.
 */
export function contextParams(api: LlamaApi, opts: ContextOptions): Blob {
  const buf = toBuffer(api.contextDefaultParams() as Blob, CONTEXT_PARAMS_BYTES);
  buf.writeUInt32LE(opts.ctx * opts.nSeq, CONTEXT.n_ctx);
  buf.writeUInt32LE(opts.nBatch, CONTEXT.n_batch);
  buf.writeUInt32LE(Math.min(512, opts.nBatch), CONTEXT.n_ubatch);
  buf.writeUInt32LE(opts.nSeq, CONTEXT.n_seq_max);
  buf.writeInt32LE(opts.threads, CONTEXT.n_threads);
  buf.writeInt32LE(opts.threads, CONTEXT.n_threads_batch);
  buf.writeInt32LE(LLAMA_FLASH_ATTN_TYPE_AUTO, CONTEXT.flash_attn_type);
  buf.writeUInt8(0, CONTEXT.swa_full);
  buf.writeUInt8(opts.kvUnified ? 1 : 0, CONTEXT.kv_unified);
  // the graph callback (hquant imatrix); no user data: the JS closure carries its state
  if (opts.evalCallback !== undefined) buf.writeBigUInt64LE(opts.evalCallback, CONTEXT.cb_eval);
  return toBlob(buf);
}
