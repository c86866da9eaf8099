// Independent reference for the evaluator tests: llama-perplexity's perplexity() loop written
// directly against the prebuilt libllama.v0.4.0.so (koffi) — llama_tokenize with add_special,
// BOS substituted at each chunk start, raw logits from llama_get_logits_ith, log-softmax in double.
// It shares no code with src/runtime and src/eval (their own koffi binding, decode layout and math).
// Each chunk is one llama_decode of a llama_batch (llama_batch_init) filled from JS, outputs requested
// only at the scored positions — as perplexity() does.
import path from "node:path";
import { createRequire } from "node:module";
import { LLAMA_BINS } from "./ggml.js";

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require("koffi") as typeof import("koffi");

type Fn = (...args: unknown[]) => unknown;
interface Lib {
  [name: string]: Fn;
}

// llama_model_params is 80 bytes, llama_context_params 160 (include/llama.h at 80fb11a, x86-64):
// passed by value as opaque 8-byte-aligned blobs; the few fields set here are at fixed offsets.
const CTX_N_CTX = 0;
const CTX_N_BATCH = 4;
const CTX_N_UBATCH = 8;
const CTX_N_THREADS = 28;
const CTX_N_THREADS_BATCH = 32;

let lib: Lib | undefined;
function load(): Lib {
  if (lib) return lib;
  const ggml = koffi.load(path.join(LLAMA_BINS, "libggml.v0.4.0.so"));
  const l = koffi.load(path.join(LLAMA_BINS, "libllama.v0.4.0.so"));
  koffi.struct("hq_model_params", { w: koffi.array("uint64_t", 10) });
  koffi.struct("hq_context_params", { w: koffi.array("uint64_t", 20) });
  koffi.struct("hq_batch", { n_tokens: "int32_t", token: "void *", embd: "void *", pos: "void *", n_seq_id: "void *", seq_id: "void *", logits: "void *" });
  const logCb = koffi.proto("void hq_log_cb(int level, const char *text, void *user)");
  const f = (decl: string) => l.func(decl) as unknown as Fn;
  lib = {
    logSet: f("void llama_log_set(hq_log_cb *cb, void *user)"),
    backendInit: f("void llama_backend_init()"),
    modelDefault: f("hq_model_params llama_model_default_params()"),
    ctxDefault: f("hq_context_params llama_context_default_params()"),
    modelLoad: f("void *llama_model_load_from_file(const char *path, hq_model_params params)"),
    modelFree: f("void llama_model_free(void *model)"),
    initCtx: f("void *llama_init_from_model(void *model, hq_context_params params)"),
    free: f("void llama_free(void *ctx)"),
    getVocab: f("void *llama_model_get_vocab(void *model)"),
    nTokens: f("int32_t llama_vocab_n_tokens(void *vocab)"),
    bos: f("int32_t llama_vocab_bos(void *vocab)"),
    addBos: f("bool llama_vocab_get_add_bos(void *vocab)"),
    tokenize: f("int32_t llama_tokenize(void *vocab, const char *text, int32_t len, _Out_ int32_t *tokens, int32_t n_max, bool add_special, bool parse_special)"),
    batchInit: f("hq_batch llama_batch_init(int32_t n, int32_t embd, int32_t n_seq_max)"),
    batchFree: f("void llama_batch_free(hq_batch batch)"),
    decode: f("int32_t llama_decode(void *ctx, hq_batch batch)"),
    logitsIth: f("float *llama_get_logits_ith(void *ctx, int32_t i)"),
    getMemory: f("void *llama_get_memory(void *ctx)"),
    memoryClear: f("void llama_memory_clear(void *mem, bool data)"),
  };
  const quiet = koffi.register(() => {}, koffi.pointer(logCb));
  lib.logSet(quiet, null);
  ggml.func("void ggml_backend_load_all_from_path(const char *dir)")(LLAMA_BINS);
  lib.backendInit();
  return lib;
}

export interface ReferencePerplexity {
  tokens: number[];
  /** NLL of each scored token, chunk by chunk */
  nll: number[];
  /** log-softmax of every scored position (double), when asked for */
  logProbs?: Float64Array[];
  ppl: number;
}

/** llama-perplexity's PPL of the first `nChunk` chunks of `text` at context `ctx`. */
export function referencePerplexity(modelPath: string, text: string, ctx: number, nChunk: number, keepLogProbs = false, threads = 2): ReferencePerplexity {
  const l = load();
  const model = l.modelLoad(modelPath, l.modelDefault());
  if (!model) throw new Error(`reference: cannot load ${modelPath}`);
  const cp = l.ctxDefault() as { w: bigint[] };
  const buf = Buffer.alloc(160);
  cp.w.forEach((v, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), i * 8));
  buf.writeUInt32LE(ctx, CTX_N_CTX);
  buf.writeUInt32LE(ctx, CTX_N_BATCH);
  buf.writeUInt32LE(ctx, CTX_N_UBATCH);
  buf.writeInt32LE(threads, CTX_N_THREADS);
  buf.writeInt32LE(threads, CTX_N_THREADS_BATCH);
  const params = { w: Array.from({ length: 20 }, (_, i) => buf.readBigUInt64LE(i * 8)) };
  const context = l.initCtx(model, params);
  if (!context) throw new Error("reference: cannot create a context");
  try {
    const vocab = l.getVocab(model);
    const nVocab = l.nTokens(vocab) as number;
    const bytes = Buffer.byteLength(text, "utf8");
    const out = new Int32Array(bytes + 16);
    const n = l.tokenize(vocab, text, bytes, out, out.length, true, false) as number;
    if (n < 0) throw new Error("reference: tokenize failed");
    const tokens = Array.from(out.subarray(0, n));
    const addBos = l.addBos(vocab) as boolean;
    const bos = l.bos(vocab) as number;
    const first = Math.floor(ctx / 2);
    const nll: number[] = [];
    const logProbs: Float64Array[] = [];
    const batch = l.batchInit(ctx, 0, 1) as Record<string, unknown>;
    try {
      const seqIds = koffi.decode(batch.seq_id, "void *", ctx) as unknown[];
      for (const p of seqIds) koffi.encode(p, "int32_t", 0);
      koffi.encode(batch.n_seq_id, koffi.array("int32_t", ctx), new Array(ctx).fill(1));
      koffi.encode(batch.pos, koffi.array("int32_t", ctx), Array.from({ length: ctx }, (_, k) => k));
      koffi.encode(batch.logits, koffi.array("int8_t", ctx), Array.from({ length: ctx }, (_, k) => (k >= first ? 1 : 0)));
      batch.n_tokens = ctx;
      for (let c = 0; c < nChunk; c++) {
        const chunk = tokens.slice(c * ctx, (c + 1) * ctx);
        if (addBos) chunk[0] = bos;
        koffi.encode(batch.token, koffi.array("int32_t", ctx), chunk);
        l.memoryClear(l.getMemory(context), true);
        if (l.decode(context, batch) !== 0) throw new Error("reference: decode failed");
        for (let k = first; k < ctx - 1; k++) {
          const logits = koffi.decode(l.logitsIth(context, k), "float", nVocab) as number[];
          let max = logits[0];
          for (const v of logits) if (v > max) max = v;
          let sum = 0;
          for (const v of logits) sum += Math.exp(v - max);
          const lse = max + Math.log(sum);
          nll.push(-(logits[tokens[c * ctx + k + 1]] - lse));
          if (keepLogProbs) logProbs.push(Float64Array.from(logits, (v) => v - lse));
        }
      }
    } finally {
      l.batchFree(batch);
    }
    const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
    return { tokens, nll, ppl: Math.exp(mean), logProbs: keepLogProbs ? logProbs : undefined };
  } finally {
    l.free(context);
    l.modelFree(model);
  }
}
