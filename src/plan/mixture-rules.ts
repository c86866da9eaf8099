// llama.cpp's mixture rules (llama_tensor_get_type_impl in src/llama-quant.cpp), one small function
// per tensor category, for the file types hquant produces. Each takes the tensor's situation and
// returns the chosen type with the name of the rule that chose it; the counters (i_attention_wv …)
// are kept by the caller (planner.ts), which increments them exactly where llama.cpp does
// (countsVisit: llama.cpp's IQ1/IQ2 and MXFP4 branches skip some of the increments).
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
  /** ne[2] of the tensor (the expert count of a 3-D expert tensor, else 1) */
  ne2: number;
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

/**
 * The file types of llama.cpp's IQ1/IQ2 branch: one rule set for every tensor but the output and
 * token embeddings, which neither parses expert layers from names nor counts ffn_gate/ffn_up.
 */
const IQ1_IQ2_MIXTURES: ReadonlySet<FileTypeName> = new Set(["IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"]);

export function isIq1Iq2Mixture(ftype: FileTypeName): boolean {
  return IQ1_IQ2_MIXTURES.has(ftype);
}

/**
 * Whether llama_tensor_get_type_impl increments this category's counter for a tensor of this file
 * type: the MXFP4 branch counts nothing, the IQ1/IQ2 branch only attn_v-like and ffn_down.
 */
export function countsVisit(ftype: FileTypeName, category: TensorCategory): boolean {
  if (ftype === "MXFP4_MOE") return false;
  if (isIq1Iq2Mixture(ftype)) return category !== "ffn_gate" && category !== "ffn_up";
  return true;
}

/**
 * Whether the rule reads an expert ffn tensor's layer from its name (layer_info, which fails on a
 * name without one): only the per-category branches do, not the IQ1/IQ2 or MXFP4 ones.
 */
export function readsFfnLayer(ftype: FileTypeName): boolean {
  return ftype !== "MXFP4_MOE" && !isIq1Iq2Mixture(ftype);
}

/** The output rule's Q5_K group (the IQ1/IQ2 mixtures and IQ3_XXS). */
const OUTPUT_Q5_K: ReadonlySet<FileTypeName> = new Set(["IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"]);

/** output.weight, and token_embd.weight when the embeddings are tied (no output.weight). */
export function outputType(ctx: RuleContext): RuleResult {
  if (ctx.outputTensorType !== undefined) return chose(ctx.outputTensorType, "output tensor type");
  const block = mustTypeInfo(ctx.defaultType).blockSize;
  if (ctx.ftype === "MXFP4_MOE") return chose(GGMLType.Q8_0, "output: MXFP4_MOE");
  if (ctx.hp.arch === "falcon") return chose(GGMLType.Q8_0, "output: falcon");
  if (ctx.rowLength % block !== 0) return chose(GGMLType.Q8_0, "output: row not a multiple of the block");
  if (OUTPUT_Q5_K.has(ctx.ftype)) return chose(GGMLType.Q5_K, `output: ${ctx.ftype}`);
  if (ctx.defaultType !== GGMLType.Q8_0) return chose(GGMLType.Q6_K, "output: q6_K");
  return kept(ctx);
}

/** token_embd.weight of untied models: a step above the default for the low-bit file types. */
const TOKEN_EMBD_LOW_BIT: Partial<Record<FileTypeName, GGMLType>> = {
  IQ2_XXS: GGMLType.Q2_K,
  IQ2_XS: GGMLType.Q2_K,
  IQ1_S: GGMLType.Q2_K,
  IQ1_M: GGMLType.Q2_K,
  IQ2_S: GGMLType.IQ3_S,
  IQ2_M: GGMLType.IQ3_S,
  IQ3_XXS: GGMLType.IQ3_S,
  TQ1_0: GGMLType.Q4_K,
  TQ2_0: GGMLType.Q4_K,
  Q2_0: GGMLType.Q4_K,
};

export function tokenEmbdType(ctx: RuleContext): RuleResult {
  if (ctx.tokenEmbeddingType !== undefined) return chose(ctx.tokenEmbeddingType, "token embedding type");
  const t = TOKEN_EMBD_LOW_BIT[ctx.ftype];
  return t !== undefined ? chose(t, `token_embd: ${ctx.ftype}`) : kept(ctx);
}

/** MXFP4_MOE: expert tensors (3-D; on bailingmoe3 only the ffn experts) mxfp4, the rest q8_0. */
export function mxfp4MoeType(ctx: RuleContext, category: TensorCategory): RuleResult {
  const bailingExpert = category === "ffn_up" || category === "ffn_gate" || category === "ffn_down";
  if (ctx.ne2 > 1 && (ctx.hp.arch !== "bailingmoe3" || bailingExpert)) return chose(GGMLType.MXFP4, "MXFP4_MOE: expert tensor");
  return chose(GGMLType.Q8_0, "MXFP4_MOE: not an expert tensor");
}

/** IQ2_S and IQ2_M step up to iq3_s where the other IQ1/IQ2 mixtures take q2_K. */
function iq2StepUp(ftype: FileTypeName): GGMLType {
  return ftype === "IQ2_S" || ftype === "IQ2_M" ? GGMLType.IQ3_S : GGMLType.Q2_K;
}

/** The IQ1/IQ2 branch: attn_v-like, attn_k of 8-expert models, the first ffn_down, attn_output. */
export function iq1Iq2Type(ctx: RuleContext, category: TensorCategory): RuleResult {
  const { ftype, hp } = ctx;
  if (isAttnVLikeCategory(category)) {
    if (nGqa(ctx) >= 4 || hp.nExpert >= 4) return chose(GGMLType.Q4_K, "attn_v: IQ1/IQ2 GQA ≥ 4 or ≥ 4 experts");
    return chose(iq2StepUp(ftype), `attn_v: ${ftype}`);
  }
  if (hp.nExpert === 8 && category === "attn_k") return chose(GGMLType.Q4_K, "attn_k: IQ1/IQ2 8 experts");
  if (category === "ffn_down") {
    // the counter, even in MoE models: this branch never reads the layer from the name
    return ctx.iFfnDown < Math.trunc(ctx.nFfnDown / 8) ? chose(iq2StepUp(ftype), `ffn_down: ${ftype} first eighth`) : kept(ctx);
  }
  if (category === "attn_output") {
    if (hp.nExpert === 8) return chose(GGMLType.Q5_K, "attn_output: IQ1/IQ2 8 experts");
    if (ftype === "IQ1_S" || ftype === "IQ1_M") return chose(GGMLType.IQ2_XXS, `attn_output: ${ftype}`);
    if (ftype === "IQ2_S" || ftype === "IQ2_M") return chose(GGMLType.IQ3_S, `attn_output: ${ftype}`);
  }
  return kept(ctx);
}

function isAttnVLikeCategory(category: TensorCategory): boolean {
  return category === "attn_v" || category === "attn_qkv" || category === "attn_kv_b";
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
  else if (ftype === "IQ3_XXS") {
    r = nGqa(ctx) >= 4
      ? chose(GGMLType.Q4_K, "attn_v: IQ3_XXS GQA ≥ 4")
      : ctx.hasImatrix ? chose(GGMLType.IQ3_XXS, "attn_v: IQ3_XXS with imatrix") : chose(GGMLType.IQ3_S, "attn_v: IQ3_XXS without imatrix");
  } else if ((ftype === "IQ3_XS" || ftype === "IQ3_S") && nGqa(ctx) >= 4) r = chose(GGMLType.Q4_K, `attn_v: ${ftype} GQA ≥ 4`);
  else if (ftype === "IQ3_M") r = chose(GGMLType.Q4_K, "attn_v: IQ3_M");
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

/** attn_k and attn_q: IQ3_XS one step down to iq3_xxs, IQ3_XXS to iq2_s. */
const ATTN_QK_STEP_DOWN: Partial<Record<FileTypeName, GGMLType>> = { IQ3_XS: GGMLType.IQ3_XXS, IQ3_XXS: GGMLType.IQ2_S };

export function attnKType(ctx: RuleContext): RuleResult {
  if (ctx.hp.nExpert === 8) return chose(GGMLType.Q8_0, "attn_k: 8 experts");
  const t = ATTN_QK_STEP_DOWN[ctx.ftype];
  return t !== undefined ? chose(t, `attn_k: ${ctx.ftype}`) : kept(ctx);
}

export function attnQType(ctx: RuleContext): RuleResult {
  const t = ATTN_QK_STEP_DOWN[ctx.ftype];
  return t !== undefined ? chose(t, `attn_q: ${ctx.ftype}`) : kept(ctx);
}

/** ffn_gate and ffn_up: IQ3_XS gives the middle three quarters of the layers iq3_xxs. */
export function ffnGateUpType(ctx: RuleContext, category: "ffn_gate" | "ffn_up", iLayer: number): RuleResult {
  const n = ctx.nFfnDown;
  if (ctx.ftype === "IQ3_XS" && iLayer >= Math.trunc(n / 8) && iLayer < Math.trunc((7 * n) / 8)) {
    return chose(GGMLType.IQ3_XXS, `${category}: IQ3_XS middle layers`);
  }
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
    case "IQ3_XXS":
      if (!ctx.hasImatrix) {
        return firstEighth ? chose(GGMLType.Q4_K, "ffn_down: IQ3_XXS first eighth without imatrix") : chose(GGMLType.Q3_K, "ffn_down: IQ3_XXS without imatrix");
      }
      break;
    case "Q3_K_M":
      if (iLayer < Math.trunc(n / 16)) return chose(GGMLType.Q5_K, "ffn_down: Q3_K_M first sixteenth");
      return !falcon || useMoreBits(iLayer, n)
        ? chose(GGMLType.Q4_K, "ffn_down: Q3_K_M")
        : chose(GGMLType.Q3_K, "ffn_down: Q3_K_M falcon");
    case "IQ3_M":
      if (firstEighth || (hp.nExpert === 8 && useMoreBits(iLayer, n))) return chose(GGMLType.Q4_K, "ffn_down: IQ3_M");
      break;
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
const ATTN_OUTPUT_8_EXPERTS: ReadonlySet<FileTypeName> = new Set([
  "Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS",
]);
const ATTN_OUTPUT_DENSE: Partial<Record<FileTypeName, GGMLType>> = {
  Q2_K: GGMLType.Q3_K,
  IQ3_XXS: GGMLType.IQ3_S,
  Q3_K_M: GGMLType.Q4_K,
  Q3_K_L: GGMLType.Q5_K,
  IQ3_M: GGMLType.Q4_K,
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
 * The rule for one tensor (llama_tensor_get_type_impl), in llama.cpp's order: output, MXFP4_MOE,
 * token_embd, the IQ1/IQ2 branch, then by category. `ffnLayer` is the layer the ffn_down/gate/up
 * rules look at (the counter, or an expert tensor's layer). llama.cpp's separate attn_qkv branch
 * is never reached (attn_qkv is attn_v-like), so attn_qkv follows the attn_v rules.
 */
export function mixtureRule(ctx: RuleContext, category: TensorCategory, ffnLayer: number): RuleResult {
  if (category === "output" || (ctx.hasTiedEmbeddings && category === "token_embd")) return outputType(ctx);
  if (ctx.ftype === "MXFP4_MOE") return mxfp4MoeType(ctx, category);
  if (category === "token_embd") return tokenEmbdType(ctx);
  if (isIq1Iq2Mixture(ctx.ftype)) return iq1Iq2Type(ctx, category);
  switch (category) {
    case "attn_v":
    case "attn_qkv":
    case "attn_kv_b":
      return attnVType(ctx);
    case "attn_k":
      return attnKType(ctx);
    case "attn_q":
      return attnQType(ctx);
    case "ffn_down":
      return ffnDownType(ctx, ffnLayer);
    case "ffn_gate":
    case "ffn_up":
      return ffnGateUpType(ctx, category, ffnLayer);
    case "attn_output":
      return attnOutputType(ctx);
    default:
      return kept(ctx);
  }
}
