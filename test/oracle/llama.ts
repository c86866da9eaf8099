// Live llama.cpp oracle for whole-model quantization: calls llama_model_quantize from the prebuilt
// libllama.v0.4.0.so of @node-llama-cpp/linux-x64@3.21.1 through koffi, with the parameters
// llama-quantize (tools/quantize/quantize.cpp) would pass — including, when given an imatrix file,
// the `quantize.imatrix.*` metadata that the CLI adds through kv_overrides.
//
// The imatrix file is loaded here independently of src/imatrix: GGUF imatrices through libggml's
// own gguf parser (gguf_init_from_file), legacy .dat files by a direct read of the format — so a
// test comparing hquant's bytes with these is a real cross-check.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { LLAMA_BINS } from "./ggml.js";

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require("koffi") as typeof import("koffi");

/** llama_ftype numbers (include/llama.h), by llama-quantize's names (QUANT_OPTIONS). */
export const LLAMA_FTYPES: Readonly<Record<string, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K_S: 11,
  Q3_K_M: 12,
  Q3_K: 12,
  Q3_K_L: 13,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q4_K: 15,
  Q5_K_S: 16,
  Q5_K_M: 17,
  Q5_K: 17,
  Q6_K: 18,
  IQ2_XXS: 19,
  IQ2_XS: 20,
  Q2_K_S: 21,
  IQ3_XS: 22,
  IQ3_XXS: 23,
  IQ1_S: 24,
  IQ4_NL: 25,
  IQ3_S: 26,
  IQ3_M: 27,
  IQ2_S: 28,
  IQ2_M: 29,
  IQ4_XS: 30,
  IQ1_M: 31,
  BF16: 32,
  TQ1_0: 36,
  TQ2_0: 37,
  MXFP4_MOE: 38,
  NVFP4: 39,
  Q1_0: 40,
  Q2_0: 41,
};

const GGML_TYPE_COUNT = 43;
const KV_OVERRIDE_INT = 0;
const KV_OVERRIDE_FLOAT = 1;
const KV_OVERRIDE_BOOL = 2;
const KV_OVERRIDE_STR = 3;

export type KvOverride =
  | { key: string; type: "int"; value: number | bigint }
  | { key: string; type: "float"; value: number }
  | { key: string; type: "bool"; value: boolean }
  | { key: string; type: "str"; value: string };

export interface LlamaQuantizeOptions {
  /** llama-quantize file type name: "Q4_K_M", "Q8_0", "F16" … */
  ftype: string;
  threads?: number;
  /** importance vectors by tensor name, already normalized (as llama-quantize passes them) */
  imatrix?: Map<string, Float32Array> | null;
  /**
   * an imatrix file, loaded as llama-quantize's --imatrix does: vectors normalized, and the
   * quantize.imatrix.{file,dataset,entries_count,chunks_count} keys added. The file key records
   * the path exactly as given here.
   */
  imatrixFile?: string;
  tokenEmbeddingType?: string;
  outputTensorType?: string;
  pure?: boolean;
  /** --leave-output-tensor */
  leaveOutputTensor?: boolean;
  /** --tensor-type PATTERN=TYPE, in order (the pattern is lower-cased as llama-quantize does) */
  tensorTypes?: [pattern: string, type: string][];
  kvOverrides?: KvOverride[];
  allowRequantize?: boolean;
  /** the COPY file type (params.only_copy): ftype is then ignored */
  onlyCopy?: boolean;
  /** --keep-split: `output` is the shards' prefix */
  keepSplit?: boolean;
}

// --- library -------------------------------------------------------------------------------

type Fn = (...args: unknown[]) => unknown;
interface Llama {
  quantize: Fn;
  defaultParams: Fn;
  ggufFree: Fn;
  ggufFindKey: Fn;
  ggufGetArrN: Fn;
  ggufGetArrStr: Fn;
  ggufGetValU32: Fn;
  ggufNTensors: Fn;
  ggufNKv: Fn;
  ggufTensorName: Fn;
  ggufTensorType: Fn;
  ggufTensorOffset: Fn;
  ggufTensorSize: Fn;
  ggufDataOffset: Fn;
  ggufKvType: Fn;
  ggufArrType: Fn;
  typeName: Fn;
  ParamsPtr: unknown;
  ImatrixData: unknown;
  TensorOverride: unknown;
  KvOverrideT: unknown;
}

let llama: Llama | undefined;
/** the last lines llama.cpp logged, to put the reason into a thrown error */
const recentLog: string[] = [];

function lib(): Llama {
  if (llama) return llama;
  // libllama links against these; loading them first (global) makes the dependency resolvable
  koffi.load(path.join(LLAMA_BINS, "libggml-base.so"), { global: true } as never);
  koffi.load(path.join(LLAMA_BINS, "libggml.v0.4.0.so"), { global: true } as never);
  const base = koffi.load(path.join(LLAMA_BINS, "libggml-base.so"));
  const l = koffi.load(path.join(LLAMA_BINS, "libllama.v0.4.0.so"));

  const Params = koffi.struct("llama_model_quantize_params", {
    nthread: "int32_t",
    ftype: "int32_t",
    output_tensor_type: "int32_t",
    token_embedding_type: "int32_t",
    allow_requantize: "bool",
    quantize_output_tensor: "bool",
    only_copy: "bool",
    pure: "bool",
    keep_split: "bool",
    dry_run: "bool",
    imatrix: "void *",
    kv_overrides: "void *",
    tt_overrides: "void *",
    prune_layers: "void *",
    max_buf_size: "size_t",
  });
  if (koffi.sizeof(Params) !== 64) throw new Error(`llama_model_quantize_params: size ${koffi.sizeof(Params)}, expected 64`);
  const ImatrixData = koffi.struct("llama_model_imatrix_data", { name: "void *", data: "void *", size: "size_t" });
  const TensorOverride = koffi.struct("llama_model_tensor_override", { pattern: "void *", type: "int32_t" });
  const KvOverrideT = koffi.struct("llama_model_kv_override", {
    tag: "int32_t",
    key: koffi.array("char", 128, "Array"),
    // the value union holds int64/double: 8-aligned, after 4 bytes of tag and 128 of key → offset 136
    value: [8, koffi.array("uint8_t", 128, "Array")],
  });
  if (koffi.sizeof(KvOverrideT) !== 264) throw new Error(`llama_model_kv_override: size ${koffi.sizeof(KvOverrideT)}`);

  const LogCallback = koffi.proto("void hquant_llama_log(int level, const char *text, void *user)");
  const logCb = koffi.register((level: number, text: string) => {
    if (process.env.HQUANT_ORACLE_LOG) process.stderr.write(text);
    recentLog.push(text);
    if (recentLog.length > 40) recentLog.shift();
  }, koffi.pointer(LogCallback));
  l.func("void llama_log_set(void *cb, void *user)")(logCb, null);
  l.func("void llama_backend_init(void)")();

  llama = {
    quantize: l.func("uint32_t llama_model_quantize(const char *inp, const char *out, const llama_model_quantize_params *params)") as Fn,
    defaultParams: l.func("llama_model_quantize_params llama_model_quantize_default_params(void)") as Fn,
    ggufFree: base.func("void gguf_free(void *ctx)") as Fn,
    ggufFindKey: base.func("int64_t gguf_find_key(void *ctx, const char *key)") as Fn,
    ggufGetArrN: base.func("size_t gguf_get_arr_n(void *ctx, int64_t key_id)") as Fn,
    ggufGetArrStr: base.func("const char *gguf_get_arr_str(void *ctx, int64_t key_id, size_t i)") as Fn,
    ggufGetValU32: base.func("uint32_t gguf_get_val_u32(void *ctx, int64_t key_id)") as Fn,
    ggufKvType: base.func("int gguf_get_kv_type(void *ctx, int64_t key_id)") as Fn,
    ggufArrType: base.func("int gguf_get_arr_type(void *ctx, int64_t key_id)") as Fn,
    ggufNTensors: base.func("int64_t gguf_get_n_tensors(void *ctx)") as Fn,
    ggufNKv: base.func("int64_t gguf_get_n_kv(void *ctx)") as Fn,
    ggufTensorName: base.func("const char *gguf_get_tensor_name(void *ctx, int64_t id)") as Fn,
    ggufTensorType: base.func("int gguf_get_tensor_type(void *ctx, int64_t id)") as Fn,
    ggufTensorOffset: base.func("size_t gguf_get_tensor_offset(void *ctx, int64_t id)") as Fn,
    ggufTensorSize: base.func("size_t gguf_get_tensor_size(void *ctx, int64_t id)") as Fn,
    ggufDataOffset: base.func("size_t gguf_get_data_offset(void *ctx)") as Fn,
    typeName: base.func("const char *ggml_type_name(int type)") as Fn,
    ParamsPtr: koffi.pointer(Params),
    ImatrixData,
    TensorOverride,
    KvOverrideT,
  };
  return llama;
}

/** ggml type id by ggml name, case-insensitive (llama-quantize's parse_ggml_type). */
function ggmlTypeId(name: string): number {
  const l = lib();
  for (let i = 0; i < GGML_TYPE_COUNT; i++) {
    const n = l.typeName(i) as string | null;
    if (n && n.toLowerCase() === name.toLowerCase()) return i;
  }
  throw new Error(`llama oracle: invalid ggml type '${name}'`);
}

// --- native memory, freed after the call ------------------------------------------------------

class Arena {
  private readonly blocks: unknown[] = [];
  cString(s: string): unknown {
    const bytes = Buffer.from(s + "\0", "utf8");
    const p = koffi.alloc("uint8_t", bytes.length);
    koffi.encode(p, "uint8_t", Array.from(bytes), bytes.length);
    this.blocks.push(p);
    return p;
  }
  floats(v: Float32Array): unknown {
    const p = koffi.alloc("float", Math.max(1, v.length));
    if (v.length) koffi.encode(p, koffi.array("float", v.length, "Typed"), v);
    this.blocks.push(p);
    return p;
  }
  structs(type: unknown, values: object[]): unknown {
    const p = koffi.alloc(type as never, values.length);
    koffi.encode(p, koffi.array(type as never, values.length, "Array"), values);
    this.blocks.push(p);
    return p;
  }
  free(): void {
    for (const p of this.blocks) koffi.free(p);
    this.blocks.length = 0;
  }
}

function fixedChars(s: string, size: number): number[] {
  const out = new Array<number>(size).fill(0);
  const bytes = Buffer.from(s, "utf8");
  // strncpy(…, 127) + terminator: at most size-1 bytes
  for (let i = 0; i < Math.min(bytes.length, size - 1); i++) out[i] = bytes[i] << 24 >> 24;
  return out;
}

function kvOverrideStruct(o: KvOverride): object {
  const value = Buffer.alloc(128);
  let tag: number;
  switch (o.type) {
    case "int":
      tag = KV_OVERRIDE_INT;
      value.writeBigInt64LE(BigInt(o.value));
      break;
    case "float":
      tag = KV_OVERRIDE_FLOAT;
      value.writeDoubleLE(o.value);
      break;
    case "bool":
      tag = KV_OVERRIDE_BOOL;
      value.writeUInt8(o.value ? 1 : 0);
      break;
    case "str": {
      tag = KV_OVERRIDE_STR;
      const b = Buffer.from(o.value, "utf8").subarray(0, 127);
      b.copy(value);
      break;
    }
  }
  return { tag, key: fixedChars(o.key, 128), value: Array.from(value) };
}

// --- imatrix file loading, as llama-quantize does it ---------------------------------------

export interface OracleImatrix {
  vectors: Map<string, Float32Array>;
  datasets: string[];
  chunkCount: number;
}

/** Loads an imatrix file (GGUF through libggml, else legacy .dat) and normalizes it like load_imatrix. */
export function oracleLoadImatrix(file: string): OracleImatrix {
  const l = lib();
  const ctx = callGgufInit(file);
  if (!ctx) return loadLegacy(file);
  try {
    const datasets: string[] = [];
    const dk = l.ggufFindKey(ctx, "imatrix.datasets") as bigint | number;
    if (Number(dk) >= 0 && l.ggufKvType(ctx, dk) === 9 && l.ggufArrType(ctx, dk) === 8) {
      const n = Number(l.ggufGetArrN(ctx, dk));
      for (let i = 0; i < n; i++) datasets.push(l.ggufGetArrStr(ctx, dk, i) as string);
    }
    const ck = Number(l.ggufFindKey(ctx, "imatrix.chunk_count"));
    const sk = Number(l.ggufFindKey(ctx, "imatrix.chunk_size"));
    if (Number(dk) < 0 || ck < 0 || sk < 0) throw new Error(`llama oracle: missing imatrix metadata in ${file}`);
    const chunkCount = l.ggufGetValU32(ctx, ck) as number;
    const dataOffset = Number(l.ggufDataOffset(ctx));
    const fd = fs.openSync(file, "r");
    const sums = new Map<string, Float32Array>();
    const counts = new Map<string, Float32Array>();
    try {
      const n = Number(l.ggufNTensors(ctx));
      for (let i = 0; i < n; i++) {
        const name = l.ggufTensorName(ctx, i) as string;
        const size = Number(l.ggufTensorSize(ctx, i));
        const off = dataOffset + Number(l.ggufTensorOffset(ctx, i));
        if (l.ggufTensorType(ctx, i) !== 0) throw new Error(`llama oracle: ${name} is not F32`);
        const buf = Buffer.alloc(size);
        fs.readSync(fd, buf, 0, size, off);
        const f = new Float32Array(buf.buffer, buf.byteOffset, size / 4);
        if (name.endsWith(".in_sum2")) sums.set(name.slice(0, -".in_sum2".length), f);
        else if (name.endsWith(".counts")) counts.set(name.slice(0, -".counts".length), f);
      }
    } finally {
      fs.closeSync(fd);
    }
    const vectors = new Map<string, Float32Array>();
    for (const [name, s] of sums) {
      const c = counts.get(name);
      if (!c) throw new Error(`llama oracle: mismatched sums and counts for ${name}`);
      const ne0 = s.length / c.length;
      const e = new Float32Array(s.length);
      for (let j = 0; j < c.length; j++) {
        const count = Math.fround(Math.round(c[j])); // lround, then (float)
        for (let i = 0; i < ne0; i++) e[j * ne0 + i] = count > 0 ? Math.fround(s[j * ne0 + i] / count) : 1;
      }
      vectors.set(name, e);
    }
    return { vectors, datasets, chunkCount };
  } finally {
    l.ggufFree(ctx);
  }
}

let ggufInitByValue: Fn | undefined;
/** gguf_init_from_file with gguf_init_params { no_alloc = true, ctx = NULL } (by value): header only. */
function callGgufInit(file: string): unknown {
  lib();
  if (!ggufInitByValue) {
    const InitParams = koffi.struct("gguf_init_params", { no_alloc: "bool", ctx: "void *" });
    const base = koffi.load(path.join(LLAMA_BINS, "libggml-base.so"));
    ggufInitByValue = base.func("gguf_init_from_file", "void *", ["const char *", InitParams]) as Fn;
  }
  return ggufInitByValue(file, { no_alloc: true, ctx: null });
}

function loadLegacy(file: string): OracleImatrix {
  const buf = fs.readFileSync(file);
  let pos = 0;
  const i32 = () => {
    const v = buf.readInt32LE(pos);
    pos += 4;
    return v;
  };
  const nEntries = i32();
  const vectors = new Map<string, Float32Array>();
  for (let k = 0; k < nEntries; k++) {
    const len = i32();
    const name = buf.toString("utf8", pos, pos + len);
    pos += len;
    const ncall = i32();
    const nval = i32();
    const e = new Float32Array(nval);
    for (let i = 0; i < nval; i++) {
      const v = buf.readFloatLE(pos + 4 * i);
      e[i] = ncall > 0 ? Math.fround(v / Math.fround(ncall)) : v;
    }
    pos += 4 * nval;
    vectors.set(name, e);
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (pos < buf.length) {
    chunkCount = i32();
    if (pos + 4 <= buf.length) {
      const len = i32();
      if (len > 0 && pos + len <= buf.length) datasets.push(buf.toString("utf8", pos, pos + len).replace(/\0.*$/s, ""));
    }
  }
  return { vectors, datasets, chunkCount };
}

// --- reading a GGUF header through libggml (independent of src/gguf) ------------------------

export interface OracleTensorInfo {
  name: string;
  type: number;
  /** offset relative to the data section */
  offset: number;
  size: number;
}
export interface OracleHeader {
  dataOffset: number;
  tensors: OracleTensorInfo[];
  /** general.file_type, when present */
  fileType?: number;
  kvCount: number;
}

/** The tensor infos of a GGUF file as llama.cpp's own gguf parser sees them. */
export function oracleReadHeader(file: string): OracleHeader {
  const l = lib();
  const ctx = callGgufInit(file);
  if (!ctx) throw new Error(`llama oracle: gguf_init_from_file failed for ${file}`);
  try {
    const tensors: OracleTensorInfo[] = [];
    const n = Number(l.ggufNTensors(ctx));
    for (let i = 0; i < n; i++) {
      tensors.push({
        name: l.ggufTensorName(ctx, i) as string,
        type: l.ggufTensorType(ctx, i) as number,
        offset: Number(l.ggufTensorOffset(ctx, i)),
        size: Number(l.ggufTensorSize(ctx, i)),
      });
    }
    const ft = Number(l.ggufFindKey(ctx, "general.file_type"));
    return {
      dataOffset: Number(l.ggufDataOffset(ctx)),
      tensors,
      fileType: ft >= 0 ? (l.ggufGetValU32(ctx, ft) as number) : undefined,
      kvCount: Number(l.ggufNKv(ctx)),
    };
  } finally {
    l.ggufFree(ctx);
  }
}

// --- llama_model_quantize ---------------------------------------------------------------------

/** Quantizes `input` to `output` with llama.cpp's llama_model_quantize; throws on failure. */
export function llamaQuantize(input: string, output: string, opts: LlamaQuantizeOptions): void {
  const l = lib();
  const ftype = LLAMA_FTYPES[opts.ftype.toUpperCase()];
  if (ftype === undefined) throw new Error(`llama oracle: unknown ftype ${opts.ftype}`);
  const params = l.defaultParams() as Record<string, unknown>;
  params.ftype = ftype;
  params.nthread = opts.threads ?? 0;
  if (opts.tokenEmbeddingType) params.token_embedding_type = ggmlTypeId(opts.tokenEmbeddingType);
  if (opts.outputTensorType) params.output_tensor_type = ggmlTypeId(opts.outputTensorType);
  if (opts.pure) params.pure = true;
  if (opts.leaveOutputTensor) params.quantize_output_tensor = false;
  if (opts.allowRequantize) params.allow_requantize = true;
  if (opts.onlyCopy) params.only_copy = true;
  if (opts.keepSplit) params.keep_split = true;

  const arena = new Arena();
  try {
    const kvOverrides: KvOverride[] = [...(opts.kvOverrides ?? [])];
    let imatrix = opts.imatrix ?? null;
    if (opts.imatrixFile) {
      const loaded = oracleLoadImatrix(opts.imatrixFile);
      imatrix = loaded.vectors;
      // the same keys, in the same order, as tools/quantize/quantize.cpp
      kvOverrides.push({ key: "quantize.imatrix.file", type: "str", value: opts.imatrixFile });
      if (loaded.datasets.length) kvOverrides.push({ key: "quantize.imatrix.dataset", type: "str", value: loaded.datasets[0] });
      kvOverrides.push({ key: "quantize.imatrix.entries_count", type: "int", value: loaded.vectors.size });
      if (loaded.chunkCount > 0) kvOverrides.push({ key: "quantize.imatrix.chunks_count", type: "int", value: loaded.chunkCount });
    }
    if (imatrix && imatrix.size > 0) {
      const entries = [...imatrix].map(([name, v]) => ({ name: arena.cString(name), data: arena.floats(v), size: v.length }));
      entries.push({ name: null, data: null, size: 0 });
      params.imatrix = arena.structs(l.ImatrixData, entries);
    }
    if (kvOverrides.length) {
      const structs = kvOverrides.map(kvOverrideStruct);
      structs.push({ tag: 0, key: new Array(128).fill(0), value: new Array(128).fill(0) });
      params.kv_overrides = arena.structs(l.KvOverrideT, structs);
    }
    if (opts.tensorTypes?.length) {
      const list = opts.tensorTypes.map(([pattern, type]) => ({ pattern: arena.cString(pattern.toLowerCase()), type: ggmlTypeId(type) }));
      list.push({ pattern: null, type: GGML_TYPE_COUNT } as never);
      params.tt_overrides = arena.structs(l.TensorOverride, list);
    }
    recentLog.length = 0;
    const rc = l.quantize(input, output, params) as number;
    if (rc !== 0) {
      const reason = recentLog.filter((s) => /error|failed/i.test(s)).join("").trim();
      throw new Error(`llama_model_quantize failed (${rc}) for ${input}${reason ? `: ${reason}` : ""}`);
    }
  } finally {
    arena.free();
  }
}
