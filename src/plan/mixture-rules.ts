// llama.cpp's mixture rules (llama_tensor_get_type_impl in src/llama-quant.cpp), one small function
// per tensor category, for the file types hquant produces. Each takes the tensor's situation and
// returns the chosen type with the name of the rule that chose it; the counters (i_attention_wv …)
// are kept by the caller (planner.ts), which increments them exactly where llama.cpp does.
import { GGMLType, mustTypeInfo } from "../gguf/ggml-types.js";
import { UserError } from "../errors.js";
import type { FileTypeName } from "./ftypes.js";
import type { MixtureHParams } from "./hparams.js";
import type { TensorCategory } from "./tensors.js";

export interface RuleContext {
  ftype: FileTypeName;
  /** the file type's default tensor type (new_type on entry) */
  defaultType: GGMLType;
  hp: MixtureHParams;
  hasImatrix: boolean;
  hasTiedEmbeddings: boolean;
  /** --output-tensor-type (applies here only to a tied token_embd) */
  outputTensorType?: GGMLType;
  /** --token-embedding-type */
  tokenEmbeddingType?: GGMLType;
  name: string;
  rowLength: number;
  /** attn_v-like tensors seen before this one / in the model */
  iAttentionWv: number;
  nAttentionWv: number;
  /** ffn_down tensors seen before this one; n_ffn_down is the layer count */
  iFfnDown: number;
  nFfnDown: number;
}

export interface RuleResult {
  type: GGMLType;
  /** which rule chose it ("default" when none applied) */
  rule: string;
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third in between. */
export function useMoreBits(iLayer: number, nLayers: number): boolean {
  const eighth = Math.trunc(nLayers / 8);
  return iLayer < eighth || iLayer >= Math.trunc((7 * nLayers) / 8) || (iLayer - eighth) % 3 === 2;
}

const kept = (ctx: RuleContext): RuleResult => ({ type: ctx.defaultType, rule: "default" });
const chose = (type: GGMLType, rule: string): RuleResult => ({ type, rule });

/** output.weight, and token_embd.weight when the embeddings are tied (no output.weight). */
export function outputType(ctx: RuleContext): RuleResult {
  if (ctx.outputTensorType !== undefined) return chose(ctx.outputTensorType, "output tensor type");
  const block = mustTypeInfo(ctx.defaultType).blockSize;
  if (ctx.hp.arch === "falcon") return chose(GGMLType.Q8_0, "output: falcon");
  if (ctx.rowLength % block !== 0) return chose(GGMLType.Q8_0, "output: row not a multiple of the block");
  if (ctx.defaultType !== GGMLType.Q8_0) return chose(GGMLType.Q6_K, "output: q6_K");
  return kept(ctx);
}

/** token_embd.weight of untied models: the file type's default for every type hquant makes. */
export function tokenEmbdType(ctx: RuleContext): RuleResult {
  if (ctx.tokenEmbeddingType !== undefined) return chose(ctx.tokenEmbeddingType, "token embedding type");
  return kept(ctx);
}

/** hparams.n_gqa(): llama.cpp aborts reading it from a model without heads (clip). */
function nGqa(ctx: RuleContext): number {
  if (ctx.hp.nGqa === undefined) {
    throw new UserError(`${ctx.name}: file type ${ctx.ftype} reads the attention head counts, which a ${ctx.hp.arch} model does not have (llama.cpp aborts)`);
  }
  return ctx.hp.nGqa;
}

/** attn_v, attn_qkv, attn_kv_b. */
export function attnVType(ctx: RuleContext): RuleResult {
  const { ftype, hp } = ctx;
  let r = kept(ctx);
  if (ftype === "Q2_K") r = chose(nGqa(ctx) >= 4 ? GGMLType.Q4_K : GGMLType.Q3_K, "attn_v: Q2_K (GQA ≥ 4 → q4_K)");
  else if (ftype === "Q2_K_S" && nGqa(ctx) >= 4) r = chose(GGMLType.Q4_K, "attn_v: Q2_K_S GQA ≥ 4");
  else if (ftype === "Q3_K_M") {
    r = chose(ctx.iAttentionWv < 2 ? GGMLType.Q5_K : GGMLType.Q4_K, "attn_v: Q3_K_M (first 2 → q5_K)");
  } else if (ftype === "Q3_K_L") r = chose(GGMLType.Q5_K, "attn_v: Q3_K_L");
  else if ((ftype === "IQ4_NL" || ftype === "IQ4_XS") && nGqa(ctx) >= 4) r = chose(GGMLType.Q5_K, "attn_v: IQ4 GQA ≥ 4");
  else if ((ftype === "Q4_K_M" || ftype === "Q5_K_M") && useMoreBits(ctx.iAttentionWv, ctx.nAttentionWv)) {
    r = chose(GGMLType.Q6_K, "attn_v: use_more_bits");
  } else if (ftype === "Q4_K_S" && ctx.iAttentionWv < 4) r = chose(GGMLType.Q5_K, "attn_v: Q4_K_S first 4");
  if (hp.is70B && (r.type === GGMLType.Q3_K || r.type === GGMLType.Q4_K)) r = chose(GGMLType.Q5_K, "attn_v: 70B");
  if (hp.nExpert === 8) r = chose(GGMLType.Q8_0, "attn_v: 8 experts");
  return r;
}

export function attnKType(ctx: RuleContext): RuleResult {
  if (ctx.hp.nExpert === 8) return chose(GGMLType.Q8_0, "attn_k: 8 experts");
  return kept(ctx);
}

/** ffn_down: the layer is the ffn_down counter, or (MoE) the layer in the tensor's name. */
export function ffnDownType(ctx: RuleContext, iLayer: number): RuleResult {
  const { ftype, hp } = ctx;
  const n = ctx.nFfnDown;
  const falcon = hp.arch === "falcon";
  const firstEighth = iLayer < Math.trunc(n / 8);
  switch (ftype) {
    case "Q2_K":
      return chose(GGMLType.Q3_K, "ffn_down: Q2_K");
    case "Q2_K_S":
      return firstEighth ? chose(GGMLType.Q4_K, "ffn_down: Q2_K_S first eighth") : kept(ctx);
    case "Q3_K_M":
      if (iLayer < Math.trunc(n / 16)) return chose(GGMLType.Q5_K, "ffn_down: Q3_K_M first sixteenth");
      return !falcon || useMoreBits(iLayer, n)
        ? chose(GGMLType.Q4_K, "ffn_down: Q3_K_M")
        : chose(GGMLType.Q3_K, "ffn_down: Q3_K_M falcon");
    case "Q3_K_L":
      return chose(falcon ? GGMLType.Q4_K : GGMLType.Q5_K, "ffn_down: Q3_K_L");
    case "Q4_K_M":
      if (falcon) {
        if (iLayer < Math.trunc(n / 16)) return chose(GGMLType.Q6_K, "ffn_down: Q4_K_M falcon first sixteenth");
        return useMoreBits(iLayer, n)
          ? chose(GGMLType.Q5_K, "ffn_down: Q4_K_M falcon use_more_bits")
          : kept(ctx);
      }
      return useMoreBits(iLayer, n) ? chose(GGMLType.Q6_K, "ffn_down: use_more_bits") : kept(ctx);
  }
  if (firstEighth && (ftype === "IQ4_NL" || ftype === "IQ4_XS") && !ctx.hasImatrix) {
    return chose(GGMLType.Q5_K, "ffn_down: IQ4 first eighth without imatrix");
  }
  if (ftype === "Q5_K_M" && useMoreBits(iLayer, n)) return chose(GGMLType.Q6_K, "ffn_down: use_more_bits");
  if (ftype === "Q4_K_S" && !falcon && firstEighth) return chose(GGMLType.Q5_K, "ffn_down: Q4_K_S first eighth");
  if ((ftype === "Q4_0" || ftype === "Q5_0") && ctx.hasImatrix && firstEighth) {
    return chose(ftype === "Q4_0" ? GGMLType.Q4_1 : GGMLType.Q5_1, "ffn_down: first eighth with imatrix");
  }
  return kept(ctx);
}

/** attn_output: Q5_K for 8-expert models of most types, else one step up for the low K types. */
const ATTN_OUTPUT_8_EXPERTS: ReadonlySet<FileTypeName> = new Set(["Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS"]);
const ATTN_OUTPUT_DENSE: Partial<Record<FileTypeName, GGMLType>> = {
  Q2_K: GGMLType.Q3_K,
  Q3_K_M: GGMLType.Q4_K,
  Q3_K_L: GGMLType.Q5_K,
};

export function attnOutputType(ctx: RuleContext): RuleResult {
  const { ftype, hp } = ctx;
  if (hp.arch === "falcon") {
    return ftype === "Q3_K_L" ? chose(GGMLType.Q4_K, "attn_output: falcon Q3_K_L") : kept(ctx);
  }
  if (hp.nExpert === 8) {
    return ATTN_OUTPUT_8_EXPERTS.has(ftype) ? chose(GGMLType.Q5_K, "attn_output: 8 experts") : kept(ctx);
  }
  const t = ATTN_OUTPUT_DENSE[ftype];
  return t !== undefined ? chose(t, `attn_output: ${ftype}`) : kept(ctx);
}

/**
 * The rule for one tensor (llama_tensor_get_type_impl without the IQ1/IQ2/IQ3/MXFP4/TQ branches,
 * which none of hquant's file types reach). `iLayer` is the layer ffn_down rules look at.
 */
export function mixtureRule(ctx: RuleContext, category: TensorCategory, ffnDownLayer: number): RuleResult {
  if (category === "output" || (ctx.hasTiedEmbeddings && category === "token_embd")) return outputType(ctx);
  switch (category) {
    case "token_embd":
      return tokenEmbdType(ctx);
    case "attn_v":
    case "attn_qkv":
    case "attn_kv_b":
      return attnVType(ctx);
    case "attn_k":
      return attnKType(ctx);
    case "ffn_down":
      return ffnDownType(ctx, ffnDownLayer);
    case "attn_output":
      return attnOutputType(ctx);
    default:
      // attn_q, ffn_gate and ffn_up only change for IQ3 types; the rest keep the default
      return kept(ctx);
  }
}
