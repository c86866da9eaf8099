// Which tensors llama-quantize quantizes at all, their broad category, the order it visits them in,
// and the shape fallback (tensor_allows_quantization, tensor_get_category, weight_name_comparer,
// tensor_type_fallback in llama.cpp's src/llama-quant.cpp and src/llama-model-loader.h).
import { UserError } from "../errors.js";
import { GGMLType, mustTypeInfo } from "../gguf/ggml-types.js";

export type TensorCategory =
  | "token_embd" | "attn_q" | "attn_v" | "attn_k" | "attn_qkv" | "attn_kv_b" | "attn_output"
  | "ffn_up" | "ffn_gate" | "ffn_down" | "output" | "other";

function isTokenEmbdName(name: string): boolean {
  return name === "token_embd.weight" || name === "per_layer_token_embd.weight";
}

/** Substring → category, tried in this order (first hit wins), after the exact output/token_embd names. */
const CATEGORY_BY_SUBSTRING: ReadonlyArray<readonly [string, TensorCategory]> = [
  ["attn_qkv.weight", "attn_qkv"],
  ["attn_kv_b.weight", "attn_kv_b"],
  ["attn_v.weight", "attn_v"],
  ["attn_k.weight", "attn_k"],
  ["attn_q.weight", "attn_q"],
  ["attn_output.weight", "attn_output"],
  ["ffn_up", "ffn_up"],
  ["ffn_gate", "ffn_gate"],
  ["ffn_down", "ffn_down"],
];

export function tensorCategory(name: string): TensorCategory {
  if (name === "output.weight") return "output";
  if (isTokenEmbdName(name)) return "token_embd";
  for (const [needle, category] of CATEGORY_BY_SUBSTRING) if (name.includes(needle)) return category;
  return "other";
}

/** attn_v-like tensors (attn_v, fused qkv, MLA kv_b) share the attn_v rules and counter. */
export function isAttnVLike(category: TensorCategory): boolean {
  return category === "attn_v" || category === "attn_qkv" || category === "attn_kv_b";
}

/** Name fragments of 2-D weights that llama.cpp never quantizes (small, or precision-critical). */
const NEVER_QUANTIZED_FRAGMENTS: readonly string[] = [
  "_norm.weight",
  "ffn_gate_inp.weight",
  "ffn_gate_tid2eid.weight",
  "altup",
  "laurel",
  "per_layer_model_proj",
  "ssm_conv1d",
  "shortconv.conv.weight",
  "indexer.k_proj.weight",
  "indexer.q_proj.weight",
  "time_mix_first.weight",
  "time_mix_w0.weight",
  "time_mix_w1.weight",
  "time_mix_w2.weight",
  "time_mix_v0.weight",
  "time_mix_v1.weight",
  "time_mix_v2.weight",
  "time_mix_a0.weight",
  "time_mix_a1.weight",
  "time_mix_a2.weight",
  "time_mix_g1.weight",
  "time_mix_g2.weight",
  "time_mix_decay_w1.weight",
  "time_mix_decay_w2.weight",
  "time_mix_lerp_fused.weight",
  "attn_rel_b.weight",
  ".position_embd",
  "sam.pos_embd",
  "sam.neck.",
  "sam.net_",
  ".rel_pos",
  ".patch_embd",
  ".patch_merger",
  "a.rvq.codebook",
  "mm.a.code_embd",
];

/** Exact names never quantized (BERT positional embeddings and token types). */
const NEVER_QUANTIZED_NAMES: readonly string[] = ["position_embd.weight", "token_types.weight"];

/** ggml_n_dims: trailing 1-sized dimensions do not count (at least 1). */
export function nDims(shape: readonly number[]): number {
  let n = shape.length;
  while (n > 1 && shape[n - 1] === 1) n--;
  return Math.max(n, 1);
}

/** Why a tensor is kept as it is, or undefined when llama-quantize may quantize it. */
export function notQuantizedReason(name: string, shape: readonly number[], quantizeOutput: boolean): string | undefined {
  if (nDims(shape) < 2) return "kept: 1-D";
  if (!name.endsWith("weight")) return "kept: not a weight";
  if (!quantizeOutput && name === "output.weight") return "kept: leave output tensor";
  if (NEVER_QUANTIZED_NAMES.includes(name)) return "kept: never quantized";
  const fragment = NEVER_QUANTIZED_FRAGMENTS.find((f) => name.includes(f));
  if (fragment !== undefined) return `kept: never quantized (${fragment})`;
  return undefined;
}

/** `blk.N.` → N (like sscanf("blk.%d.")), else -1. */
export function layerOfName(name: string): number {
  const m = /^blk\.\s*([+-]?\d+)/.exec(name);
  return m ? Number.parseInt(m[1]!, 10) : -1;
}

/** weight_name_comparer: by layer (non-layer tensors, layer -1, first), then by name bytes. */
export function compareWeightNames(a: string, b: string): number {
  const la = layerOfName(a);
  const lb = layerOfName(b);
  if (la !== lb) return la < lb ? -1 : 1;
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Fallback of a type with blocks over 32 when the row length does not fit it (tensor_type_fallback's table). */
const SHAPE_FALLBACK: ReadonlyMap<GGMLType, GGMLType> = new Map([
  [GGMLType.IQ1_S, GGMLType.IQ4_NL],
  [GGMLType.IQ1_M, GGMLType.IQ4_NL],
  [GGMLType.IQ2_XXS, GGMLType.IQ4_NL],
  [GGMLType.IQ2_XS, GGMLType.IQ4_NL],
  [GGMLType.IQ2_S, GGMLType.IQ4_NL],
  [GGMLType.IQ3_XXS, GGMLType.IQ4_NL],
  [GGMLType.IQ3_S, GGMLType.IQ4_NL],
  [GGMLType.IQ4_XS, GGMLType.IQ4_NL],
  [GGMLType.Q2_0, GGMLType.Q4_0],
  [GGMLType.TQ1_0, GGMLType.Q4_0],
  [GGMLType.TQ2_0, GGMLType.Q4_0],
  [GGMLType.Q2_K, GGMLType.Q4_0],
  [GGMLType.Q3_K, GGMLType.Q4_0],
  [GGMLType.Q4_K, GGMLType.Q5_0],
  [GGMLType.Q5_K, GGMLType.Q5_1],
  [GGMLType.Q6_K, GGMLType.Q8_0],
]);

export interface FallbackResult {
  type: GGMLType;
  /** set when the target did not fit the row length */
  from?: GGMLType;
}

/**
 * The type llama.cpp really writes for `target` given the row length: the target when its block
 * divides the row, else its block-32 fallback, else F16. q1_0 and nvfp4 have none: llama.cpp
 * fails the quantization, and so does the plan (naming the tensor).
 */
export function shapeFallback(rowLength: number, target: GGMLType, tensorName = "tensor"): FallbackResult {
  const block = mustTypeInfo(target).blockSize;
  if (rowLength % block === 0) return { type: target };
  let type = SHAPE_FALLBACK.get(target);
  if (type === undefined) {
    if (block > 32) {
      throw new UserError(
        `${tensorName}: rows of ${rowLength} are not a multiple of ${block} and no tensor type fallback is defined for type ${mustTypeInfo(target).name} (llama.cpp fails too)`,
      );
    }
    type = target;
  }
  if (rowLength % mustTypeInfo(type).blockSize !== 0) type = GGMLType.F16;
  return { type, from: target };
}

/** ggml_is_quantized for the types in the table: everything with blocks of more than one element. */
export function isQuantizedType(type: GGMLType): boolean {
  return mustTypeInfo(type).blockSize > 1;
}
