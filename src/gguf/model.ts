// The in-memory form of a GGUF header: what the reader produces, the planner consumes and the
// writer serializes. Tensor data is never held here; it is read on demand by position.
import type { GGMLType } from "./ggml-types.js";

/** GGUF metadata value types (gguf.h). */
export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** UINT64/INT64 are bigint so that no value is rounded; every other number type is a number. */
export type GGUFScalar = number | bigint | boolean | string;

export interface GGUFKV {
  key: string;
  /** the stored type; ARRAY for arrays (then `arrayType` is the element type) */
  type: GGUFValueType;
  arrayType?: GGUFValueType;
  value: GGUFScalar | GGUFScalar[];
}

export interface TensorInfo {
  name: string;
  /** ggml ne: shape[0] is the row length (the dimension quant blocks run along) */
  shape: number[];
  type: GGMLType;
  /** offset of the data, relative to the start of its file's data section */
  offset: number;
  /** data bytes (from type and shape) */
  bytes: number;
  /** index of the file (split shard) holding the data; 0 for single-file models */
  split: number;
}

/** One GGUF file's header as read from disk. */
export interface GGUFHeader {
  path: string;
  version: number;
  /** general.alignment, or 32 */
  alignment: number;
  /** metadata in file order */
  kv: GGUFKV[];
  /** tensor infos in file order (split = this file's shard index) */
  tensors: TensorInfo[];
  /** absolute offset of the data section */
  dataOffset: number;
  fileSize: number;
}

/** A whole model: one file, or all shards of a split model, seen as one. */
export interface GGUFModel {
  /** shards in order (one entry for a single-file model) */
  files: GGUFHeader[];
  /** metadata of the first shard (llama.cpp reads hyper-parameters from there) */
  kv: GGUFKV[];
  /** all tensors of all shards, in shard then file order */
  tensors: TensorInfo[];
  /** how the shards were opened (timeouts and cancellation of http(s) reads), reused for the data */
  sourceOptions?: import("./source.js").SourceOptions;
}

export function findKV(kv: readonly GGUFKV[], key: string): GGUFKV | undefined {
  return kv.find((e) => e.key === key);
}

/** A metadata value by key (undefined when absent). */
export function kvValue(kv: readonly GGUFKV[], key: string): GGUFScalar | GGUFScalar[] | undefined {
  return findKV(kv, key)?.value;
}

/** general.architecture ("llama", "qwen3", …). */
export function architecture(kv: readonly GGUFKV[]): string | undefined {
  const v = kvValue(kv, "general.architecture");
  return typeof v === "string" ? v : undefined;
}

/** A numeric hyper-parameter `<arch>.<name>` (e.g. "block_count"); arrays give their first element. */
export function archNumber(kv: readonly GGUFKV[], name: string): number | undefined {
  const arch = architecture(kv);
  if (!arch) return undefined;
  let v = kvValue(kv, `${arch}.${name}`);
  if (Array.isArray(v)) v = v[0];
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}
