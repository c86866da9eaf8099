// Synthetic GGUF models for tests: llama and qwen3 layouts (tensors in the order llama.cpp's
// convert_hf_to_gguf writes them), chosen dims, F32/F16/BF16 weights from a seeded xorshift,
// 1-D norms in F32, tied or untied output, optional MoE experts, and the metadata a converted
// model carries (hyper-parameters, file type, a tiny gpt2 tokenizer). Written with hquant's writer.
import fs, { existsSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { GGUFFileWriter, serializeHeader, type TensorSpec } from "../src/gguf/writer.js";

export interface FactoryOptions {
  arch: "llama" | "qwen3";
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  dtype: "f32" | "f16" | "bf16";
  tied: boolean;
  /** > 0: MoE layers (ffn_gate_inp + 3-D ffn_{gate,up,down}_exps); qwen3 becomes qwen3moe */
  nExpert?: number;
  nExpertUsed?: number;
  seed: number;
  contextLength?: number;
  /** extra metadata appended after the standard keys */
  extraKV?: GGUFKV[];
  /** output folder (default: a per-process temp folder) */
  dir?: string;
  /** output file name (default: derived from the options) */
  fileName?: string;
}

export const SMALL_LLAMA: FactoryOptions = {
  arch: "llama",
  nLayer: 2,
  nEmbd: 64,
  nHead: 4,
  nHeadKv: 2,
  nFf: 128,
  nVocab: 96,
  dtype: "f16",
  tied: false,
  seed: 1,
};

const DTYPES = {
  f32: { type: GGMLType.F32, fileType: 0 },
  f16: { type: GGMLType.F16, fileType: 1 },
  bf16: { type: GGMLType.BF16, fileType: 32 },
} as const;

/** xorshift32: small, deterministic, good enough for test weights */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → IEEE half, round to nearest even (finite inputs of test weights). */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** f32 → bfloat16, round to nearest even (finite inputs). */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

interface FactoryTensor extends TensorSpec {
  /** norms ≈ 1, weights ≈ ±scale */
  init: "norm" | "weight";
}

function archName(o: FactoryOptions): string {
  return o.arch === "qwen3" && (o.nExpert ?? 0) > 0 ? "qwen3moe" : o.arch;
}

/** Tensors in convert_hf_to_gguf's order. */
export function factoryTensors(o: FactoryOptions): FactoryTensor[] {
  const wt = DTYPES[o.dtype].type;
  const headDim = o.nEmbd / o.nHead;
  const qDim = o.nHead * headDim;
  const kvDim = o.nHeadKv * headDim;
  const nExpert = o.nExpert ?? 0;
  const W = (name: string, shape: number[]): FactoryTensor => ({ name, shape, type: wt, init: "weight" });
  const N = (name: string, n: number): FactoryTensor => ({ name, shape: [n], type: GGMLType.F32, init: "norm" });
  const out: FactoryTensor[] = [W("token_embd.weight", [o.nEmbd, o.nVocab])];
  for (let l = 0; l < o.nLayer; l++) {
    const b = `blk.${l}`;
    out.push(N(`${b}.attn_norm.weight`, o.nEmbd));
    out.push(W(`${b}.attn_q.weight`, [o.nEmbd, qDim]));
    out.push(W(`${b}.attn_k.weight`, [o.nEmbd, kvDim]));
    out.push(W(`${b}.attn_v.weight`, [o.nEmbd, kvDim]));
    if (o.arch === "qwen3") {
      out.push(N(`${b}.attn_q_norm.weight`, headDim));
      out.push(N(`${b}.attn_k_norm.weight`, headDim));
    }
    out.push(W(`${b}.attn_output.weight`, [qDim, o.nEmbd]));
    out.push(N(`${b}.ffn_norm.weight`, o.nEmbd));
    if (nExpert > 0) {
      // the router stays F32 in converted models
      out.push({ name: `${b}.ffn_gate_inp.weight`, shape: [o.nEmbd, nExpert], type: GGMLType.F32, init: "weight" });
      out.push(W(`${b}.ffn_gate_exps.weight`, [o.nEmbd, o.nFf, nExpert]));
      out.push(W(`${b}.ffn_up_exps.weight`, [o.nEmbd, o.nFf, nExpert]));
      out.push(W(`${b}.ffn_down_exps.weight`, [o.nFf, o.nEmbd, nExpert]));
    } else {
      out.push(W(`${b}.ffn_gate.weight`, [o.nEmbd, o.nFf]));
      out.push(W(`${b}.ffn_up.weight`, [o.nEmbd, o.nFf]));
      out.push(W(`${b}.ffn_down.weight`, [o.nFf, o.nEmbd]));
    }
  }
  out.push(N("output_norm.weight", o.nEmbd));
  if (!o.tied) out.push(W("output.weight", [o.nEmbd, o.nVocab]));
  return out;
}

const u32kv = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.UINT32, value });
const f32kv = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.FLOAT32, value: Math.fround(value) });
const strkv = (key: string, value: string): GGUFKV => ({ key, type: GGUFValueType.STRING, value });

function tokenizerKV(nVocab: number): GGUFKV[] {
  const specials = ["<unk>", "<s>", "</s>"];
  const tokens = Array.from({ length: nVocab }, (_, i) => (i < specials.length ? specials[i] : i < 29 ? String.fromCharCode(94 + i) : `tok${i}`));
  const tokenTypes = tokens.map((_, i) => (i < specials.length ? 3 : 1));
  const merges = ["a b", "c d", "ab cd", "e f", "Ġ t"];
  return [
    strkv("tokenizer.ggml.model", "gpt2"),
    strkv("tokenizer.ggml.pre", "default"),
    { key: "tokenizer.ggml.tokens", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: tokens },
    { key: "tokenizer.ggml.token_type", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.INT32, value: tokenTypes },
    { key: "tokenizer.ggml.merges", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: merges },
    u32kv("tokenizer.ggml.bos_token_id", 1),
    u32kv("tokenizer.ggml.eos_token_id", 2),
    u32kv("tokenizer.ggml.unknown_token_id", 0),
    { key: "tokenizer.ggml.add_bos_token", type: GGUFValueType.BOOL, value: true },
  ];
}

export function factoryKV(o: FactoryOptions): GGUFKV[] {
  const arch = archName(o);
  const headDim = o.nEmbd / o.nHead;
  const nExpert = o.nExpert ?? 0;
  const kv: GGUFKV[] = [
    strkv("general.architecture", arch),
    strkv("general.type", "model"),
    strkv("general.name", `hquant test ${arch} ${o.nLayer}L ${o.dtype}${o.tied ? " tied" : ""}`),
    u32kv(`${arch}.block_count`, o.nLayer),
    u32kv(`${arch}.context_length`, o.contextLength ?? 256),
    u32kv(`${arch}.embedding_length`, o.nEmbd),
    u32kv(`${arch}.feed_forward_length`, o.nFf),
    u32kv(`${arch}.attention.head_count`, o.nHead),
    u32kv(`${arch}.attention.head_count_kv`, o.nHeadKv),
    f32kv(`${arch}.rope.freq_base`, o.arch === "qwen3" ? 1000000 : 10000),
    f32kv(`${arch}.attention.layer_norm_rms_epsilon`, 1e-6),
  ];
  if (o.arch === "qwen3") {
    kv.push(u32kv(`${arch}.attention.key_length`, headDim), u32kv(`${arch}.attention.value_length`, headDim));
  } else {
    kv.push(u32kv(`${arch}.rope.dimension_count`, headDim));
  }
  if (nExpert > 0) {
    kv.push(u32kv(`${arch}.expert_count`, nExpert), u32kv(`${arch}.expert_used_count`, o.nExpertUsed ?? Math.min(2, nExpert)));
    if (arch === "qwen3moe") kv.push(u32kv(`${arch}.expert_feed_forward_length`, o.nFf));
  }
  kv.push(u32kv("general.file_type", DTYPES[o.dtype].fileType), u32kv("general.quantization_version", 2));
  kv.push(...tokenizerKV(o.nVocab), ...(o.extraKV ?? []));
  return kv;
}

/** The tensor's data bytes, from the seed and the tensor's position (so every tensor differs). */
function tensorData(t: FactoryTensor, next: () => number, rowLength: number): Uint8Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const scale = 1 / Math.sqrt(rowLength);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = next() / 0x100000000 - 0.5; // [-0.5, 0.5)
    values[i] = t.init === "norm" ? 1 + 0.2 * u : 2 * scale * u;
  }
  if (t.type === GGMLType.F32) return new Uint8Array(values.buffer);
  const toBits = t.type === GGMLType.F16 ? f32ToF16Bits : f32ToBf16Bits;
  const half = new Uint16Array(n);
  for (let i = 0; i < n; i++) half[i] = toBits(values[i]);
  return new Uint8Array(half.buffer);
}

export function defaultFactoryDir(): string {
  return path.join(os.tmpdir(), `hquant-factory-${process.pid}`);
}

export function factoryFileName(o: FactoryOptions): string {
  const moe = (o.nExpert ?? 0) > 0 ? `-x${o.nExpert}` : "";
  const extra = o.extraKV?.length ? `-kv${o.extraKV.length}` : "";
  return `${archName(o)}-${o.nLayer}l-e${o.nEmbd}-h${o.nHead}-${o.nHeadKv}-f${o.nFf}-v${o.nVocab}-${o.dtype}-${o.tied ? "tied" : "untied"}${moe}${extra}-s${o.seed}.gguf`;
}

/** Writes the model (once per process and options) and returns its path. */
export async function makeModel(o: FactoryOptions): Promise<string> {
  if (o.nEmbd % o.nHead !== 0) throw new Error("factory: nEmbd must be a multiple of nHead");
  const dir = o.dir ?? defaultFactoryDir();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, o.fileName ?? factoryFileName(o));
  if (existsSync(file)) return file;
  return writeSeeded(file, factoryKV(o), factoryTensors(o), o.seed * 2654435761 + 12345);
}

/** Writes the tensors with seeded data (tensorData) from `seed`; returns `file`. */
async function writeSeeded(file: string, kv: GGUFKV[], tensors: FactoryTensor[], seed: number, alignment?: number): Promise<string> {
  const writer = await GGUFFileWriter.create(file, kv, tensors, alignment === undefined ? {} : { alignment });
  const next = xorshift32(seed);
  try {
    for (const t of tensors) await writer.writeTensor(tensorData(t, next, t.shape[0]));
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return file;
}

/**
 * A model of real dimensions (an 8B, a 32B) for planning only: the header is written and the file
 * extended to its full size without writing the data (a sparse file, so it costs the header's
 * bytes on disk). `hquant plan` reads only the header; building from it would quantize zeros.
 */
export function makeHeaderOnlyModel(o: FactoryOptions): string {
  const dir = o.dir ?? defaultFactoryDir();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `header-only-${o.fileName ?? factoryFileName(o)}`);
  if (existsSync(file)) return file;
  const { header, dataSize } = serializeHeader(factoryKV(o), factoryTensors(o));
  fs.writeFileSync(file, header);
  fs.truncateSync(file, header.length + dataSize);
  return file;
}

/** Every layout the factory makes: llama/qwen3 × f32/f16/bf16 × tied/untied. */
export function allLayouts(base: Partial<FactoryOptions> = {}): FactoryOptions[] {
  const out: FactoryOptions[] = [];
  for (const arch of ["llama", "qwen3"] as const) {
    for (const dtype of ["f32", "f16", "bf16"] as const) {
      for (const tied of [false, true]) out.push({ ...SMALL_LLAMA, arch, dtype, tied, ...base });
    }
  }
  return out;
}

// ---- any architecture: a given tensor list and metadata ----------------------------------------

export interface CustomTensor {
  name: string;
  shape: number[];
  /** default: F32 for 1-D tensors and names ending in _norm.weight, else `dtype` */
  type?: GGMLType;
}

export interface CustomModelOptions {
  /** file name inside `dir` (must be unique per content) */
  fileName: string;
  dir: string;
  kv: GGUFKV[];
  tensors: CustomTensor[];
  dtype?: "f32" | "f16" | "bf16";
  seed: number;
  /** general.alignment of the file (written as a key when not 32) */
  alignment?: number;
}

const isNormLike = (t: CustomTensor) => t.shape.length === 1 || t.name.endsWith("_norm.weight");

/** The type makeCustomModel stores a tensor in. */
export function customTensorType(t: CustomTensor, dtype: CustomModelOptions["dtype"] = "f16"): GGMLType {
  return t.type ?? (isNormLike(t) ? GGMLType.F32 : DTYPES[dtype].type);
}

/** Writes a model with exactly these tensors (weights ≈ ±1/√row, norms ≈ 1) and metadata. */
export async function makeCustomModel(o: CustomModelOptions): Promise<string> {
  mkdirSync(o.dir, { recursive: true });
  const file = path.join(o.dir, o.fileName);
  if (existsSync(file)) return file;
  const tensors: FactoryTensor[] = o.tensors.map((t) => ({
    name: t.name,
    shape: t.shape,
    type: customTensorType(t, o.dtype),
    init: isNormLike(t) ? "norm" : "weight",
  }));
  const alignment = o.alignment ?? 32;
  const kv = alignment === 32 ? o.kv : [...o.kv, u32kv("general.alignment", alignment)];
  return writeSeeded(file, kv, tensors, o.seed * 2654435761 + 777, alignment);
}

export { u32kv, f32kv, strkv, tokenizerKV };

/** A legacy .dat imatrix with seeded positive values for every matrix but token_embd and the routers (one slice per expert). */
export async function syntheticImatrix(model: string, seed: number, dir: string): Promise<string> {
  const header = await readHeaderAt(model);
  const next = xorshift32(seed);
  const parts: Buffer[] = [];
  const entries = header.tensors.filter((t) => t.shape.length >= 2 && t.name !== "token_embd.weight" && !t.name.includes("ffn_gate_inp"));
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return b;
  };
  parts.push(i32(entries.length));
  for (const t of entries) {
    const n = t.shape[0]! * (t.shape[2] ?? 1);
    const values = new Float32Array(n).map(() => 0.01 + (next() / 2 ** 32) * 4);
    const name = Buffer.from(t.name);
    parts.push(i32(name.length), name, i32(3), i32(n), Buffer.from(values.buffer));
  }
  const file = path.join(dir, `imatrix-${path.basename(model, ".gguf")}-${seed}.dat`);
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

