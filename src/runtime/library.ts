// The llama.cpp libraries hquant evaluates with: the prebuilt builds in node-llama-cpp's platform
// packages (@node-llama-cpp/<platform>[-cuda|-vulkan]@3.21.1, llama.cpp 80fb11a), found through
// Node's module resolution and called through koffi. One build per process: the CPU build unless a
// GPU was asked for (backends.ts picks the build); loaded once, the ggml backends registered and
// llama_backend_init run once, whatever number of models and contexts follow.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { UserError } from "../errors.js";
import { BACKEND_NAMES, bindDeviceApi, CPU_PACKAGES, gpuDevices, listDevices, offloadLabel, probeGpuBuild, resolveBackend, wantsGpu, type BuildChoice, type DeviceApi, type LlamaBackend, type LlamaDevice, type OffloadOptions } from "./backends.js";
import { nativeMemcpy, type NativeCopy } from "./memcpy.js";

type Koffi = typeof import("koffi");
type Fn = (...args: unknown[]) => unknown;

export const LLAMA_PACKAGE_VERSION = "3.21.1";

export interface LlamaLibraryLocation {
  packageName: string;
  /** the build: cpu, or the GPU backend the package carries */
  backend: LlamaBackend;
  /** folder holding libllama, libggml and the ggml backends */
  binsDir: string;
  llama: string;
  ggml: string;
  /** libggml-base (ggml_op_name and the other core functions) */
  ggmlBase: string;
}

const require = createRequire(import.meta.url);

/** A library file in `dir` named lib<stem>[.<gpu>][.v<version>].so / .dylib, or <stem>.dll (the GPU builds: libllama.vulkan.v0.4.0.so). */
function findLibrary(dir: string, stem: string): string | undefined {
  const pattern = new RegExp(`^(lib)?${stem}(\\.[a-z]+)?(\\.v[0-9.]+)?\\.(so|dylib|dll)$`);
  return fs.readdirSync(dir).find((f) => pattern.test(f));
}

/**
 * The package folder of `packageName`, or undefined when it is not installed. HQUANT_LLAMA_MODULES
 * (tests) resolves the packages from that folder instead of hquant's own node_modules.
 */
function packageDir(packageName: string): string | undefined {
  const from = process.env.HQUANT_LLAMA_MODULES;
  const req = from ? createRequire(path.join(path.resolve(from), "index.js")) : require;
  try {
    // the package's `exports` hide package.json: resolve its entry point and walk up to the package root
    let dir = path.dirname(req.resolve(packageName));
    while (!fs.existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    return dir;
  } catch {
    return undefined;
  }
}

/** The folder under a package's bins/ that holds its libraries. */
function binsOf(dir: string): string {
  const bins = path.join(dir, "bins");
  const sub = fs.existsSync(bins) ? fs.readdirSync(bins).find((d) => fs.statSync(path.join(bins, d)).isDirectory()) : undefined;
  return sub ? path.join(bins, sub) : bins;
}

/**
 * Where a llama.cpp build's libraries are (the CPU build unless `choice` names another); a
 * one-line UserError when they are not installed. HQUANT_LLAMA_DIR names a folder with a libllama /
 * libggml of one's own instead (a build of the same llama.cpp: the params blobs follow its
 * include/llama.h); it is then the build whatever backend is asked for.
 */
export function locateLlamaLibrary(platform = `${process.platform}-${process.arch}`, choice?: BuildChoice): LlamaLibraryLocation {
  const own = process.env.HQUANT_LLAMA_DIR;
  if (own) {
    const llama = fs.existsSync(own) ? findLibrary(own, "llama") : undefined;
    const ggml = fs.existsSync(own) ? findLibrary(own, "ggml") : undefined;
    const ggmlBase = fs.existsSync(own) ? findLibrary(own, "ggml-base") : undefined;
    if (!llama || !ggml || !ggmlBase) throw new UserError(`HQUANT_LLAMA_DIR=${own}: no libllama / libggml / libggml-base there`);
    return { packageName: own, backend: choice?.backend ?? "cpu", binsDir: own, llama: path.join(own, llama), ggml: path.join(own, ggml), ggmlBase: path.join(own, ggmlBase) };
  }
  const packageName = choice?.packageName ?? CPU_PACKAGES[platform];
  if (!packageName) {
    throw new UserError(`no prebuilt llama.cpp for ${platform}: hquant's evaluator supports ${Object.keys(CPU_PACKAGES).join(", ")}`);
  }
  const dir = packageDir(packageName);
  if (!dir) throw new UserError(`the llama.cpp runtime is not installed: npm install ${packageName}@${LLAMA_PACKAGE_VERSION}`);
  const binsDir = binsOf(dir);
  const llama = fs.existsSync(binsDir) ? findLibrary(binsDir, "llama") : undefined;
  const ggml = fs.existsSync(binsDir) ? findLibrary(binsDir, "ggml") : undefined;
  const ggmlBase = fs.existsSync(binsDir) ? findLibrary(binsDir, "ggml-base") : undefined;
  if (!llama || !ggml || !ggmlBase) throw new UserError(`${packageName}: no llama/ggml library under ${binsDir} (reinstall ${packageName}@${LLAMA_PACKAGE_VERSION})`);
  return { packageName, backend: choice?.backend ?? "cpu", binsDir, llama: path.join(binsDir, llama), ggml: path.join(binsDir, ggml), ggmlBase: path.join(binsDir, ggmlBase) };
}

export interface LlamaApi {
  koffi: Koffi;
  location: LlamaLibraryLocation;
  /** every device the build's ggml backends registered (the CPU too) */
  devices: LlamaDevice[];
  /** the devices llama.cpp offloads to by default (none for the CPU build) */
  gpus: LlamaDevice[];
  /** ggml_backend_buffer_is_host / ggml_backend_tensor_get: graph tensors in GPU memory are copied out */
  bufferIsHost: Fn;
  tensorGet: Fn;
  /** memcpy(dst, src address, bytes): how hot paths read llama.cpp's memory (memcpy.ts says why) */
  memcpy: NativeCopy;
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
  if (!loadBackendLibrary(ggml, binsDir, `ggml-cpu-${variant}`)) throw new UserError(`HQUANT_GGML_CPU=${variant}: this CPU cannot run ${file}`);
}

/** ggml_backend_load of one backend library of the folder (false: none there, or ggml refused it). */
function loadBackendLibrary(ggml: ReturnType<Koffi["load"]>, binsDir: string, stem: string): boolean {
  const file = findLibrary(binsDir, stem);
  return !!file && !!(ggml.func("void *ggml_backend_load(const char *path)") as unknown as Fn)(path.join(binsDir, file));
}

/** ggml_log_level (ggml.h): only errors are kept, for the messages hquant prints. */
const GGML_LOG_LEVEL_ERROR = 4;

/** libgomp's spins before a waiting thread sleeps (GOMP_SPINCOUNT), unless the user sets a policy: see llamaApi. */
export const GOMP_SPINS = 30_000;

function loadKoffi(): Koffi {
  try {
    return require("koffi") as Koffi;
  } catch {
    throw new UserError("the llama.cpp runtime needs the npm package koffi (npm install koffi)");
  }
}

/** The build of this process answers `offload` too, or a one-line error (one build per process). */
function checkSameBuild(loaded: LlamaApi, offload: OffloadOptions): void {
  const backend = loaded.location.backend;
  const gpu = wantsGpu(offload);
  if (gpu !== (backend !== "cpu") || (offload.backend !== undefined && offload.backend !== backend)) {
    throw new UserError(`${offloadLabel(offload)}: this process already runs llama.cpp's ${BACKEND_NAMES[backend]} build (one build per process)`);
  }
}

/**
 * Loads the libraries and initializes the backend, once per process: the CPU build, or the GPU
 * build `offload` asks for (-ngl, --device, --backend). Later calls return it; one that asks for
 * another build is a one-line error.
 */
export function llamaApi(offload?: OffloadOptions): LlamaApi {
  if (api) {
    if (offload) checkSameBuild(api, offload);
    return api;
  }
  // An OpenMP build (the fast path, HQUANT_LLAMA_DIR) keeps its threads spinning between graph
  // computes (libgomp's default: 300 000 spins, several milliseconds); hquant's JS between them (the
  // imatrix callback, the vocabulary math) is longer than llama.cpp's C++, so they spun through it:
  // two thirds of `hquant imatrix`'s CPU under load (perf, libgomp). Passive threads (no spin) cost
  // wall time instead: every one of ggml's barriers between ops sleeps and wakes, 8 % of a quiet
  // `hquant imatrix` (four interleaved runs each). 30 000 spins (well under a millisecond) cover a
  // barrier and give up within a JS gap. Same bits either way; set before libgomp loads (it reads
  // its environment then); a policy or spin count the user set wins.
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT ??= String(GOMP_SPINS);
  const koffi = loadKoffi();
  const platform = `${process.platform}-${process.arch}`;
  const own = process.env.HQUANT_LLAMA_DIR;
  // one's own build needs no platform package (any platform); a GPU request still goes through the driver checks
  const choice: BuildChoice = own && !wantsGpu(offload ?? {}) ? { backend: "cpu", packageName: own } : resolveBackend(
    offload ?? {},
    platform,
    LLAMA_PACKAGE_VERSION,
    (p) => Boolean(process.env.HQUANT_LLAMA_DIR) || packageDir(p) !== undefined,
    (b, explicit) => probeGpuBuild(koffi, b, explicit),
  );
  const location = locateLlamaLibrary(platform, choice);
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
  const base = koffi.load(location.ggmlBase);
  const a: LlamaApi = {
    koffi,
    location,
    devices: [],
    gpus: [],
    bufferIsHost: base.func("bool ggml_backend_buffer_is_host(void *buffer)") as unknown as Fn,
    tensorGet: base.func("void ggml_backend_tensor_get(void *tensor, void *data, size_t offset, size_t size)") as unknown as Fn,
    memcpy: nativeMemcpy(koffi),
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
  // the CPU backend comes as one library per instruction set; ggml picks the best one for this CPU
  // (and a GPU build's backend library, libggml-vulkan / -cuda / -metal, is loaded from there too),
  // unless HQUANT_GGML_CPU names one (results differ in the last bits between instruction sets, so
  // figures recorded on one CPU are reproduced elsewhere by pinning its variant)
  const variant = process.env.HQUANT_GGML_CPU;
  if (variant) {
    loadCpuVariant(ggml, location.binsDir, variant);
    if (choice.backend !== "cpu") loadBackendLibrary(ggml, location.binsDir, `ggml-${choice.backend}`);
  } else (ggml.func("void ggml_backend_load_all_from_path(const char *dir)") as unknown as Fn)(location.binsDir);
  const deviceApi = bindDeviceApi(ggml, base);
  a.devices = listDevices(deviceApi);
  if (choice.backend !== "cpu") loadGpuFallback(ggml, deviceApi, a, choice);
  a.gpus = choice.backend === "cpu" ? [] : gpuDevices(a.devices);
  if (choice.backend !== "cpu" && a.gpus.length === 0) {
    const why = lastError ? `: ${lastError}` : "";
    throw new UserError(`${offloadLabel(offload ?? {})}: llama.cpp's ${BACKEND_NAMES[choice.backend]} build (${location.packageName}) finds no device${why}`);
  }
  (f("void llama_backend_init()") as Fn)();
  api = a;
  return a;
}

/**
 * node-llama-cpp's CUDA fallback: when the build's own backend library registered no device (it
 * links CUDA 13; an older driver or toolkit cannot load it), the -ext package's fallback/ folder
 * holds one built against CUDA 12.
 */
function loadGpuFallback(ggml: ReturnType<Koffi["load"]>, deviceApi: DeviceApi, a: LlamaApi, choice: BuildChoice): void {
  if (gpuDevices(a.devices).length > 0 || !choice.extPackage || process.env.HQUANT_LLAMA_DIR) return;
  const ext = packageDir(choice.extPackage);
  const fallback = ext ? path.join(binsOf(ext), "fallback") : undefined;
  if (!fallback || !fs.existsSync(fallback)) return;
  const load = ggml.func("void *ggml_backend_load(const char *path)") as unknown as Fn;
  for (const f of fs.readdirSync(fallback).filter((n) => /ggml-[a-z]+\.(so|dll|dylib)$/.test(n))) load(path.join(fallback, f));
  a.devices = listDevices(deviceApi);
}
