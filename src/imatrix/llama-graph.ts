// The part of libllama `hquant imatrix` needs, through koffi: models, contexts with a graph
// evaluation callback (cb_eval), batches, decode, logits, and reading ggml tensors the callback
// hands over. Struct layouts are those of include/llama.h and ggml.h of llama.cpp 80fb11a (the
// library of @node-llama-cpp/<platform>@3.21.1), x86-64/aarch64 LP64.
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";

const require = createRequire(import.meta.url);
type Koffi = typeof import("koffi");
type Fn = (...args: unknown[]) => unknown;

// llama_context_params (160 bytes): the fields set here
const CTX_PARAMS_BYTES = 160;
const CTX_N_CTX = 0;
const CTX_N_BATCH = 4;
const CTX_N_SEQ_MAX = 12;
const CTX_N_THREADS = 28;
const CTX_N_THREADS_BATCH = 32;
const CTX_CB_EVAL = 88;
const CTX_CB_EVAL_USER_DATA = 96;

// struct ggml_tensor (336 bytes)
const T_TYPE = 0;
const T_NE = 16;
const T_NB = 48;
const T_OP = 80;
const T_SRC = 152;
const T_DATA = 248;
const T_NAME = 256;
const T_BYTES = 336;
const GGML_MAX_NAME = 64;

export type EvalCallback = (tensor: bigint, ask: boolean) => boolean;

export interface GraphTensor {
  type: number;
  ne: [number, number, number, number];
  nb: [number, number, number, number];
  op: string;
  src: bigint[];
  data: bigint;
  name: string;
}

export interface ContextOptions {
  nCtx: number;
  nBatch: number;
  nSeq: number;
  threads: number;
  onEval?: EvalCallback;
}

export interface Batch {
  clear(): void;
  add(token: number, pos: number, seq: number, output: boolean): void;
  free(): void;
}

export interface LlamaRuntime {
  loadModel(file: string): bigint;
  freeModel(model: bigint): void;
  tokenize(model: bigint, text: string): number[];
  addBos(model: bigint): boolean;
  bos(model: bigint): number;
  nVocab(model: bigint): number;
  createContext(model: bigint, opts: ContextOptions): bigint;
  freeContext(ctx: bigint): void;
  clearMemory(ctx: bigint): void;
  newBatch(n: number): Batch;
  decode(ctx: bigint, batch: Batch): number;
  /** `n` floats of the logits from output `i` on (a view: valid until the next decode) */
  logits(ctx: bigint, i: number, n: number): Float32Array;
  tensor(t: bigint): GraphTensor;
  f32View(t: GraphTensor): Float32Array;
  byteView(t: GraphTensor): DataView;
}

/** Where the platform package keeps llama.cpp's libraries. */
function libraryDir(): string {
  const platform = `${process.platform}-${process.arch}`;
  try {
    // the package exports only its entry (dist/index.js), not package.json
    return path.join(path.dirname(require.resolve(`@node-llama-cpp/${platform}`)), "..", "bins", platform);
  } catch {
    throw new UserError(`llama.cpp runtime: no prebuilt llama.cpp for ${platform} (npm package @node-llama-cpp/${platform}@3.21.1 is not installed)`);
  }
}

let runtime: LlamaRuntime | undefined;

export function llamaRuntime(): LlamaRuntime {
  runtime ??= openRuntime();
  return runtime;
}

function openRuntime(): LlamaRuntime {
  let koffi: Koffi;
  try {
    koffi = require("koffi") as Koffi;
  } catch {
    throw new UserError("llama.cpp runtime: the npm package koffi is not installed");
  }
  const dir = libraryDir();
  const ext = process.platform === "darwin" ? "dylib" : "so";
  const ggmlBase = koffi.load(path.join(dir, `libggml-base.${ext}`));
  const ggml = koffi.load(path.join(dir, `libggml.v0.4.0.${ext}`));
  const l = koffi.load(path.join(dir, `libllama.v0.4.0.${ext}`));
  koffi.struct("hqi_model_params", { w: koffi.array("uint64_t", 10) });
  koffi.struct("hqi_context_params", { w: koffi.array("uint64_t", CTX_PARAMS_BYTES / 8) });
  koffi.struct("hqi_batch", { n_tokens: "int32_t", token: "void *", embd: "void *", pos: "void *", n_seq_id: "void *", seq_id: "void *", logits: "void *" });
  const logCb = koffi.proto("void hqi_log_cb(int level, const char *text, void *user)");
  const evalCb = koffi.proto("bool hqi_eval_cb(void *t, bool ask, void *user)");
  const f = (decl: string) => l.func(decl) as unknown as Fn;
  const fn = {
    logSet: f("void llama_log_set(hqi_log_cb *cb, void *user)"),
    backendInit: f("void llama_backend_init()"),
    modelDefault: f("hqi_model_params llama_model_default_params()"),
    ctxDefault: f("hqi_context_params llama_context_default_params()"),
    modelLoad: f("void *llama_model_load_from_file(const char *path, hqi_model_params params)"),
    modelFree: f("void llama_model_free(void *model)"),
    initCtx: f("void *llama_init_from_model(void *model, hqi_context_params params)"),
    free: f("void llama_free(void *ctx)"),
    getVocab: f("void *llama_model_get_vocab(void *model)"),
    nTokens: f("int32_t llama_vocab_n_tokens(void *vocab)"),
    bos: f("int32_t llama_vocab_bos(void *vocab)"),
    addBos: f("bool llama_vocab_get_add_bos(void *vocab)"),
    tokenize: f("int32_t llama_tokenize(void *vocab, const char *text, int32_t len, _Out_ int32_t *tokens, int32_t n_max, bool add_special, bool parse_special)"),
    batchInit: f("hqi_batch llama_batch_init(int32_t n, int32_t embd, int32_t n_seq_max)"),
    batchFree: f("void llama_batch_free(hqi_batch batch)"),
    decode: f("int32_t llama_decode(void *ctx, hqi_batch batch)"),
    logitsIth: f("void *llama_get_logits_ith(void *ctx, int32_t i)"),
    getMemory: f("void *llama_get_memory(void *ctx)"),
    memoryClear: f("void llama_memory_clear(void *mem, bool data)"),
  };
  const opName = ggmlBase.func("const char *ggml_op_name(int op)") as unknown as (op: number) => string;
  const quiet = koffi.register(() => {}, koffi.pointer(logCb));
  fn.logSet(quiet, null);
  (ggml.func("void ggml_backend_load_all_from_path(const char *dir)") as unknown as Fn)(dir);
  fn.backendInit();

  const opNames: string[] = [];
  const nameOf = (op: number) => (opNames[op] ??= opName(op));
  const callbacks = new Map<bigint, bigint>(); // context → registered callback
  const decoder = new TextDecoder();
  const vocab = (model: bigint) => fn.getVocab(model) as bigint;
  const view = (p: bigint, n: number) => koffi.view(p, n);

  return {
    loadModel(file) {
      const model = fn.modelLoad(file, fn.modelDefault()) as bigint | null;
      if (!model) throw new UserError(`${file}: llama.cpp cannot load this model`);
      return model;
    },
    freeModel: (m) => void fn.modelFree(m),
    tokenize(model, text) {
      const bytes = Buffer.byteLength(text, "utf8");
      const out = new Int32Array(bytes + 16);
      const n = fn.tokenize(vocab(model), text, bytes, out, out.length, true, false) as number;
      if (n < 0) throw new Error("llama_tokenize failed");
      return Array.from(out.subarray(0, n));
    },
    addBos: (m) => fn.addBos(vocab(m)) as boolean,
    bos: (m) => fn.bos(vocab(m)) as number,
    nVocab: (m) => fn.nTokens(vocab(m)) as number,
    createContext(model, opts) {
      const words = (fn.ctxDefault() as { w: bigint[] }).w;
      const buf = Buffer.alloc(CTX_PARAMS_BYTES);
      words.forEach((v, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), i * 8));
      buf.writeUInt32LE(opts.nCtx, CTX_N_CTX);
      buf.writeUInt32LE(opts.nBatch, CTX_N_BATCH);
      buf.writeUInt32LE(opts.nSeq, CTX_N_SEQ_MAX);
      buf.writeInt32LE(opts.threads, CTX_N_THREADS);
      buf.writeInt32LE(opts.threads, CTX_N_THREADS_BATCH);
      let cb: bigint | undefined;
      if (opts.onEval) {
        const onEval = opts.onEval;
        cb = koffi.register((t: bigint, ask: boolean) => onEval(t, ask), koffi.pointer(evalCb));
        buf.writeBigUInt64LE(cb, CTX_CB_EVAL);
        buf.writeBigUInt64LE(0n, CTX_CB_EVAL_USER_DATA);
      }
      const params = { w: Array.from({ length: CTX_PARAMS_BYTES / 8 }, (_, i) => buf.readBigUInt64LE(i * 8)) };
      const ctx = fn.initCtx(model, params) as bigint | null;
      if (!ctx) {
        if (cb) koffi.unregister(cb);
        throw new UserError(`llama.cpp cannot create a context of ${opts.nCtx} tokens`);
      }
      if (cb) callbacks.set(ctx, cb);
      return ctx;
    },
    freeContext(ctx) {
      fn.free(ctx);
      const cb = callbacks.get(ctx);
      if (cb) koffi.unregister(cb);
      callbacks.delete(ctx);
    },
    clearMemory: (ctx) => void fn.memoryClear(fn.getMemory(ctx), true),
    newBatch(n) {
      const raw = fn.batchInit(n, 0, 1) as Record<string, unknown>;
      const token = new Int32Array(view(raw.token as bigint, 4 * n));
      const pos = new Int32Array(view(raw.pos as bigint, 4 * n));
      const nSeqId = new Int32Array(view(raw.n_seq_id as bigint, 4 * n));
      const logits = new Int8Array(view(raw.logits as bigint, n));
      const seqIdPtrs = new BigUint64Array(view(raw.seq_id as bigint, 8 * n));
      const seqIds = Array.from(seqIdPtrs, (p) => new Int32Array(view(p, 4)));
      let count = 0;
      const batch: Batch & { raw: Record<string, unknown> } = {
        raw,
        clear: () => void (count = 0),
        add(tok, p, seq, output) {
          if (count >= n) throw new Error(`batch of ${n} tokens is full`);
          token[count] = tok;
          pos[count] = p;
          nSeqId[count] = 1;
          seqIds[count][0] = seq;
          logits[count] = output ? 1 : 0;
          count++;
          raw.n_tokens = count;
        },
        free: () => void fn.batchFree(raw),
      };
      return batch;
    },
    decode: (ctx, batch) => fn.decode(ctx, (batch as Batch & { raw: unknown }).raw) as number,
    logits(ctx, i, n) {
      const p = fn.logitsIth(ctx, i) as bigint | null;
      if (!p) throw new Error(`no logits at output ${i}`);
      return new Float32Array(view(p, 4 * n));
    },
    tensor(t) {
      const dv = new DataView(view(t, T_BYTES));
      const i64 = (at: number) => Number(dv.getBigInt64(at, true));
      const nameBytes = new Uint8Array(dv.buffer, T_NAME, GGML_MAX_NAME);
      const end = nameBytes.indexOf(0);
      return {
        type: dv.getInt32(T_TYPE, true),
        ne: [i64(T_NE), i64(T_NE + 8), i64(T_NE + 16), i64(T_NE + 24)],
        nb: [i64(T_NB), i64(T_NB + 8), i64(T_NB + 16), i64(T_NB + 24)],
        op: nameOf(dv.getInt32(T_OP, true)),
        src: [0, 1, 2].map((k) => dv.getBigUint64(T_SRC + 8 * k, true)),
        data: dv.getBigUint64(T_DATA, true),
        name: decoder.decode(nameBytes.subarray(0, end < 0 ? GGML_MAX_NAME : end)),
      };
    },
    f32View: (t) => new Float32Array(view(t.data, tensorBytes(t))),
    byteView: (t) => new DataView(view(t.data, tensorBytes(t))),
  };
}

/** ggml_nbytes for a tensor of 1-element blocks: the last element's end. */
function tensorBytes(t: GraphTensor): number {
  let n = t.nb[0] * t.ne[0];
  for (let i = 1; i < 4; i++) n += (t.ne[i] - 1) * t.nb[i];
  return n;
}

export const defaultThreads = (): number => os.availableParallelism();
