// llama_model_params and llama_context_params go to llama.cpp by value. koffi gets them as opaque
// blobs of their x86-64/arm64 size, built from llama.cpp's own defaults (llama_*_default_params)
// with the fields hquant sets written at their offsets in include/llama.h of llama.cpp 80fb11a
// (the source of the 3.21.1 prebuilt libraries). Every context hquant creates is made here.
import type { LlamaApi } from "./library.js";
import { BACKEND_NAMES, type LlamaDevice, type OffloadOptions } from "./backends.js";
import { UserError } from "../errors.js";

const MODEL_PARAMS_BYTES = 80;
const CONTEXT_PARAMS_BYTES = 160;

/** llama_model_params field offsets (include/llama.h). */
const MODEL = {
  devices: 0, // ggml_backend_dev_t *, NULL-terminated; NULL: llama.cpp's default (every GPU)
  n_gpu_layers: 16, // int32_t, negative: all layers
  use_extra_bufts: 74, // bool, default true: the CPU backend repacks weights (Q4_K → Q4_K 8×8 …) at load
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

/** Where a model goes: the layers on the GPU and the devices, as llama.cpp is told and as hquant reports. */
export interface Placement {
  /** n_gpu_layers: 0 on the CPU build; -1 (llama.h: all layers) for a GPU build without -ngl */
  gpuLayers: number;
  /** the devices the layers go to: --device's, else every GPU of the build; the CPU device for the CPU build */
  devices: LlamaDevice[];
  /** --device given: llama.cpp is handed exactly these */
  explicit: boolean;
}

/** The placement `offload` asks for on the loaded build; --device names one of its GPUs. */
export function placement(api: LlamaApi, offload: OffloadOptions = {}): Placement {
  if (api.location.backend === "cpu") return { gpuLayers: 0, devices: api.devices.filter((d) => d.type === "CPU").slice(0, 1), explicit: false };
  const gpuLayers = offload.gpuLayers ?? -1;
  if (offload.device === undefined) return { gpuLayers, devices: api.gpus, explicit: false };
  const want = offload.device.toLowerCase();
  const device = api.devices.find((d) => d.type !== "CPU" && d.name.toLowerCase() === want);
  if (!device) {
    const names = api.devices.filter((d) => d.type !== "CPU").map((d) => d.name);
    throw new UserError(`--device ${offload.device}: no such ${BACKEND_NAMES[api.location.backend]} device (there: ${names.join(", ") || "none"})`);
  }
  return { gpuLayers, devices: [device], explicit: true };
}

/** How llama.cpp loads a model, beyond where it goes. */
export interface ModelLoadOptions {
  /**
   * false: no repacked copies of the weights (llama-cli's --no-repack). A load that only checks a
   * file decodes a few tokens: copying a 4-bit model into the repacked layout costs more than that.
   * Evaluation keeps llama.cpp's default (repacked), the layout llama-perplexity computes with.
   */
  repack?: boolean;
}

/**
 * llama.cpp's defaults with hquant's placement: the CPU build keeps everything on the CPU (results
 * must not depend on a GPU unless one was asked for). `release()` frees the device list once
 * llama_model_load has returned.
 */
export function modelParams(api: LlamaApi, where: Placement, load: ModelLoadOptions = {}): { blob: Blob; release(): void } {
  const buf = toBuffer(api.modelDefaultParams() as Blob, MODEL_PARAMS_BYTES);
  buf.writeInt32LE(where.gpuLayers, MODEL.n_gpu_layers);
  if (load.repack === false) buf.writeUInt8(0, MODEL.use_extra_bufts);
  if (!where.explicit) return { blob: toBlob(buf), release: () => {} };
  const koffi = api.koffi;
  const list = koffi.alloc("void *", where.devices.length + 1);
  koffi.encode(list, koffi.array("void *", where.devices.length + 1), [...where.devices.map((d) => d.handle), null]);
  buf.writeBigUInt64LE(koffi.address(list), MODEL.devices);
  return { blob: toBlob(buf), release: () => koffi.free(list) };
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
