// The llama.cpp libraries hquant evaluates with: the prebuilt CPU build in node-llama-cpp's platform
// package (@node-llama-cpp/<platform>@3.21.1, llama.cpp 80fb11a), found through Node's module
// resolution and called through koffi. Loaded once per process; the ggml backends are registered
// and llama_backend_init runs once, whatever number of models and contexts follow.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { UserError } from "../errors.js";

type Koffi = typeof import("koffi");
type Fn = (...args: unknown[]) => unknown;

/** The platform packages hquant knows, by `${process.platform}-${process.arch}`. */
const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x64": "@node-llama-cpp/linux-x64",
  "linux-arm64": "@node-llama-cpp/linux-arm64",
  "darwin-arm64": "@node-llama-cpp/mac-arm64-metal",
  "darwin-x64": "@node-llama-cpp/mac-x64",
  "win32-x64": "@node-llama-cpp/win-x64",
  "win32-arm64": "@node-llama-cpp/win-arm64",
};

export const LLAMA_PACKAGE_VERSION = "3.21.1";

export interface LlamaLibraryLocation {
  packageName: string;
  /** folder holding libllama, libggml and the ggml backends */
  binsDir: string;
  llama: string;
  ggml: string;
  /** libggml-base (ggml_op_name and the other core functions) */
  ggmlBase: string;
}

const require = createRequire(import.meta.url);

/** A library file in `dir` named lib<stem>[.v<version>].so / .dylib, or <stem>.dll. */
function findLibrary(dir: string, stem: string): string | undefined {
  const pattern = new RegExp(`^(lib)?${stem}(\\.v[0-9.]+)?\\.(so|dylib|dll)$`);
  return fs.readdirSync(dir).find((f) => pattern.test(f));
}

/**
 * Where this platform's llama.cpp libraries are; a one-line UserError when they are not installed.
 * HQUANT_LLAMA_DIR names a folder with a libllama / libggml of one's own instead (a build of the
 * same llama.cpp: the params blobs follow its include/llama.h).
 */
export function locateLlamaLibrary(platform = `${process.platform}-${process.arch}`): LlamaLibraryLocation {
  const own = process.env.HQUANT_LLAMA_DIR;
  if (own) {
    const llama = fs.existsSync(own) ? findLibrary(own, "llama") : undefined;
    const ggml = fs.existsSync(own) ? findLibrary(own, "ggml") : undefined;
    const ggmlBase = fs.existsSync(own) ? findLibrary(own, "ggml-base") : undefined;
    if (!llama || !ggml || !ggmlBase) throw new UserError(`HQUANT_LLAMA_DIR=${own}: no libllama / libggml / libggml-base there`);
    return { packageName: own, binsDir: own, llama: path.join(own, llama), ggml: path.join(own, ggml), ggmlBase: path.join(own, ggmlBase) };
  }
  const packageName = PLATFORM_PACKAGES[platform];
  if (!packageName) {
    throw new UserError(`no prebuilt llama.cpp for ${platform}: hquant's evaluator supports ${Object.keys(PLATFORM_PACKAGES).join(", ")}`);
  }
  let packageDir: string;
  try {
    // the package's `exports` hide package.json: resolve its entry point and walk up to the package root
    packageDir = path.dirname(require.resolve(packageName));
    while (!fs.existsSync(path.join(packageDir, "package.json")) && path.dirname(packageDir) !== packageDir) packageDir = path.dirname(packageDir);
  } catch {
    throw new UserError(`the llama.cpp runtime is not installed: npm install ${packageName}@${LLAMA_PACKAGE_VERSION}`);
  }
  const bins = path.join(packageDir, "bins");
  const sub = fs.existsSync(bins) ? fs.readdirSync(bins).find((d) => fs.statSync(path.join(bins, d)).isDirectory()) : undefined;
  const binsDir = sub ? path.join(bins, sub) : bins;
  const llama = fs.existsSync(binsDir) ? findLibrary(binsDir, "llama") : undefined;
  const ggml = fs.existsSync(binsDir) ? findLibrary(binsDir, "ggml") : undefined;
  const ggmlBase = fs.existsSync(binsDir) ? findLibrary(binsDir, "ggml-base") : undefined;
  if (!llama || !ggml || !ggmlBase) throw new UserError(`${packageName}: no llama/ggml library under ${binsDir} (reinstall ${packageName}@${LLAMA_PACKAGE_VERSION})`);
  return { packageName, binsDir, llama: path.join(binsDir, llama), ggml: path.join(binsDir, ggml), ggmlBase: path.join(binsDir, ggmlBase) };
}

export interface LlamaApi {
  koffi: Koffi;
  location: LlamaLibraryLocation;
  /** the last error llama.cpp logged (its log is otherwise silenced) */
  lastError(): string | undefined;
  clearError(): void;
  modelDefaultParams: Fn;
  contextDefaultParams: Fn;
  modelLoad: Fn;
  modelFree: Fn;
  initFromModel: Fn;
  free: Fn;
  modelGetVocab: Fn;
  vocabNTokens: Fn;
  vocabBos: Fn;
  vocabGetAddBos: Fn;
  tokenize: Fn;
  batchInit: Fn;
  batchFree: Fn;
  decode: Fn;
  getLogitsIth: Fn;
  getMemory: Fn;
  memoryClear: Fn;
  nCtx: Fn;
  nBatch: Fn;
  nUbatch: Fn;
  nSeqMax: Fn;
  nThreads: Fn;
  nThreadsBatch: Fn;
}

let api: LlamaApi | undefined;

/** Registers one CPU variant of the prebuilt (libggml-cpu-<variant>), refusing one this CPU cannot run. */
function loadCpuVariant(ggml: ReturnType<Koffi["load"]>, binsDir: string, variant: string): void {
  const file = fs.existsSync(binsDir) ? findLibrary(binsDir, `ggml-cpu-${variant}`) : undefined;
  if (!file) {
    const known = fs.existsSync(binsDir) ? fs.readdirSync(binsDir).map((f) => /^(?:lib)?ggml-cpu-([\w-]+)\./.exec(f)?.[1]).filter(Boolean) : [];
    throw new UserError(`HQUANT_GGML_CPU=${variant}: no such CPU variant in ${binsDir} (there: ${known.join(", ") || "none"})`);
  }
  const reg = (ggml.func("void *ggml_backend_load(const char *path)") as unknown as Fn)(path.join(binsDir, file));
  if (!reg) throw new UserError(`HQUANT_GGML_CPU=${variant}: this CPU cannot run ${file}`);
}

/** ggml_log_level (ggml.h): only errors are kept, for the messages hquant prints. */
const GGML_LOG_LEVEL_ERROR = 4;

/** Loads the libraries and initializes the backend, once per process. */
export function llamaApi(): LlamaApi {
  if (api) return api;
  const location = locateLlamaLibrary();
  let koffi: Koffi;
  try {
    koffi = require("koffi") as Koffi;
  } catch {
    throw new UserError("the llama.cpp runtime needs the npm package koffi (npm install koffi)");
  }
  let ggml: ReturnType<Koffi["load"]>;
  let lib: ReturnType<Koffi["load"]>;
  try {
    ggml = koffi.load(location.ggml);
    lib = koffi.load(location.llama);
  } catch (err) {
    throw new UserError(`${location.llama}: cannot load (${String(err instanceof Error ? err.message : err).split("\n")[0]})`);
  }
  // by-value structs are passed as opaque blobs of their size (see params.ts for the fields)
  koffi.struct("hq_llama_model_params", { w: koffi.array("uint64_t", 10) });
  koffi.struct("hq_llama_context_params", { w: koffi.array("uint64_t", 20) });
  koffi.struct("hq_llama_batch", { n_tokens: "int32_t", token: "void *", embd: "void *", pos: "void *", n_seq_id: "void *", seq_id: "void *", logits: "void *" });
  const logCallback = koffi.proto("void hq_ggml_log_cb(int level, const char *text, void *user)");
  const f = (decl: string) => lib.func(decl) as unknown as Fn;
  let lastError: string | undefined;
  const a: LlamaApi = {
    koffi,
    location,
    lastError: () => lastError,
    clearError: () => {
      lastError = undefined;
    },
    modelDefaultParams: f("hq_llama_model_params llama_model_default_params()"),
    contextDefaultParams: f("hq_llama_context_params llama_context_default_params()"),
    modelLoad: f("void *llama_model_load_from_file(const char *path, hq_llama_model_params params)"),
    modelFree: f("void llama_model_free(void *model)"),
    initFromModel: f("void *llama_init_from_model(void *model, hq_llama_context_params params)"),
    free: f("void llama_free(void *ctx)"),
    modelGetVocab: f("void *llama_model_get_vocab(void *model)"),
    vocabNTokens: f("int32_t llama_vocab_n_tokens(void *vocab)"),
    vocabBos: f("int32_t llama_vocab_bos(void *vocab)"),
    vocabGetAddBos: f("bool llama_vocab_get_add_bos(void *vocab)"),
    tokenize: f("int32_t llama_tokenize(void *vocab, const uint8_t *text, int32_t len, _Out_ int32_t *tokens, int32_t n_max, bool add_special, bool parse_special)"),
    batchInit: f("hq_llama_batch llama_batch_init(int32_t n, int32_t embd, int32_t n_seq_max)"),
    batchFree: f("void llama_batch_free(hq_llama_batch batch)"),
    decode: f("int32_t llama_decode(void *ctx, hq_llama_batch batch)"),
    getLogitsIth: f("float *llama_get_logits_ith(void *ctx, int32_t i)"),
    getMemory: f("void *llama_get_memory(void *ctx)"),
    memoryClear: f("void llama_memory_clear(void *mem, bool data)"),
    nCtx: f("uint32_t llama_n_ctx(void *ctx)"),
    nBatch: f("uint32_t llama_n_batch(void *ctx)"),
    nUbatch: f("uint32_t llama_n_ubatch(void *ctx)"),
    nSeqMax: f("uint32_t llama_n_seq_max(void *ctx)"),
    nThreads: f("int32_t llama_n_threads(void *ctx)"),
    nThreadsBatch: f("int32_t llama_n_threads_batch(void *ctx)"),
  };
  const onLog = koffi.register((level: number, text: string) => {
    if (level === GGML_LOG_LEVEL_ERROR && text.trim()) lastError = text.trim().split("\n")[0];
  }, koffi.pointer(logCallback));
  f("void llama_log_set(hq_ggml_log_cb *cb, void *user)")(onLog, null);
  // the CPU backend comes as one library per instruction set; ggml picks the best one for this CPU,
  // unless HQUANT_GGML_CPU names one (results differ in the last bits between instruction sets, so
  // figures recorded on one CPU are reproduced elsewhere by pinning its variant)
  const variant = process.env.HQUANT_GGML_CPU;
  if (variant) loadCpuVariant(ggml, location.binsDir, variant);
  else (ggml.func("void ggml_backend_load_all_from_path(const char *dir)") as unknown as Fn)(location.binsDir);
  (f("void llama_backend_init()") as Fn)();
  api = a;
  return a;
}
