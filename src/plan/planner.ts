// Schedule + model header → one ggml type per tensor, in the order llama-quantize writes them.
// A pure function: no tensor data is read. This is llama_model_quantize_impl's preliminary loop
// (llama_tensor_get_type) with one generalisation: each tensor follows the file type of its layer.
// With the same file type on every layer it is exactly llama.cpp's loop. The counters
// (i_attention_wv, i_ffn_down) run over the whole model as in llama.cpp, so position rules
// (first layers, use_more_bits) see the global position whatever the layer's file type.
import { GGMLType, mustTypeInfo, tensorBytes, typeName } from "../gguf/ggml-types.js";
import type { GGUFKV } from "../gguf/model.js";
import { UserError } from "../errors.js";
import { surgeryMetadata, surgeryTensors, type LayerRecipe, type SurgeryOp, type SurgeryTensor } from "../surgery/index.js";
import { mustFileType, type FileType, type FileTypeName } from "./ftypes.js";
import { mixtureHParams, type MixtureHParams } from "./hparams.js";
import { countsVisit, mixtureRule, readsFfnLayer, type RuleContext } from "./mixture-rules.js";
import { compileStdRegex } from "./std-regex.js";
import type { CustomMixture } from "./schedule.js";
import {
  compareWeightNames,
  isAttnVLike,
  isQuantizedType,
  layerOfName,
  nDims,
  notQuantizedReason,
  shapeFallback,
  tensorCategory,
  type TensorCategory,
} from "./tensors.js";

/** Output data alignment: llama-quantize always pads with GGUF_DEFAULT_ALIGNMENT. */
export const OUTPUT_ALIGNMENT = 32;

export interface TensorOverride {
  /** ECMAScript regex, searched anywhere in the tensor name (std::regex_search) */
  pattern: string;
  type: GGMLType;
}

/** A schedule resolved against one model: one file type per layer, plus the global options. */
export interface ResolvedSchedule {
  /** preset name or schedule file, for display and metadata */
  name: string;
  /** file type of the tensors outside the layers, and the one `general.file_type` records */
  ftype: FileTypeName;
  /** one per layer (length = block_count); a custom mixture's layer holds the mixture's base */
  layerFtypes: FileTypeName[];
  /** the custom mixture of each layer (undefined: the plain file type); absent when none is used */
  layerMixtures?: (CustomMixture | undefined)[];
  /** `ftype` was not given: it is the file type most layers get (dominantFtype) */
  ftypeFromLayers?: boolean;
  tokenEmbeddingType?: GGMLType;
  outputTensorType?: GGMLType;
  /** --leave-output-tensor */
  leaveOutputTensor: boolean;
  /** --tensor-type overrides, first match wins */
  tensorTypes: TensorOverride[];
  pure: boolean;
  /** importance matrix file (its presence changes a few rules) */
  imatrix?: string;
  /** layer surgery ops (non-empty), and the final layers' recipes over the input's layers */
  surgery?: SurgeryOp[];
  recipes?: LayerRecipe[];
}

/** The input header after layer surgery: what was planned, and how the build makes each tensor. */
export interface PlanSurgery {
  ops: SurgeryOp[];
  recipes: LayerRecipe[];
  /** block_count of the input */
  inputLayers: number;
  /** the output's tensors with their input names and recipes (by output name in the build) */
  tensors: SurgeryTensor[];
  /** the input metadata with block_count and per-layer arrays rebuilt */
  kv: GGUFKV[];
  /** position-dependent keys left unchanged */
  warnings: string[];
}

export interface PlannerInputTensor {
  name: string;
  shape: number[];
  type: GGMLType;
}

export interface PlannerModel {
  kv: readonly GGUFKV[];
  tensors: readonly PlannerInputTensor[];
}

export interface PlannedTensor {
  name: string;
  shape: number[];
  srcType: GGMLType;
  dstType: GGMLType;
  /** the rule, option or fallback that chose dstType */
  reason: string;
  /** blk.N → N, else -1 */
  layer: number;
  /** the file type whose rules applied */
  ftype: FileTypeName;
  category: TensorCategory;
  /** data bytes of dstType */
  bytes: number;
  /** data offset relative to the output's data section */
  offset: number;
  /** llama.cpp refuses to make this tensor without an importance matrix */
  requiresImatrix: boolean;
}

export interface Plan {
  schedule: ResolvedSchedule;
  hparams: MixtureHParams;
  /** `general.file_type` of the output */
  fileType: FileType;
  /** in output (visiting) order */
  tensors: PlannedTensor[];
  /** sum of tensor bytes */
  tensorBytes: number;
  /** data section size (each tensor padded to the alignment) */
  dataBytes: number;
  /** total element count (for bits per weight) */
  elements: number;
  /** tensors whose chosen type did not fit the row length (llama-quantize's fallback warnings) */
  fallbacks: { name: string; from: GGMLType; to: GGMLType }[];
  /** present when the schedule has layer surgery: the plan is of the surgered model */
  surgery?: PlanSurgery;
}

interface Counters {
  nAttentionWv: number;
  iAttentionWv: number;
  iFfnDown: number;
  iFfnGate: number;
  iFfnUp: number;
}

const pad = (n: number, align: number) => Math.ceil(n / align) * align;

function compileOverrides(overrides: readonly TensorOverride[]): { re: RegExp; type: GGMLType; pattern: string }[] {
  return overrides.map((o) => ({ re: compileStdRegex(o.pattern, `tensor type override "${o.pattern}"`), type: o.type, pattern: o.pattern }));
}

/**
 * llama.cpp's layer_info for ffn_down/gate/up: the counter, unless the model has experts — then the
 * layer in the tensor's name, which must lie in [0, n_layer_all).
 */
function ffnLayer(name: string, counter: number, hp: MixtureHParams): number {
  if (hp.nExpert <= 1) return counter;
  const layer = layerOfName(name);
  if (layer < 0) throw new UserError(`${name}: failed to determine the layer of an expert tensor`);
  if (layer >= hp.nLayerAll) throw new UserError(`${name}: bad layer ${layer}, must be in [0, ${hp.nLayerAll})`);
  return layer;
}

/** Increment the counters llama_tensor_get_type_impl increments for this category and file type. */
function countVisit(c: Counters, category: TensorCategory, ftype: FileTypeName): void {
  if (!countsVisit(ftype, category)) return;
  if (isAttnVLike(category)) c.iAttentionWv++;
  else if (category === "ffn_down") c.iFfnDown++;
  else if (category === "ffn_gate") c.iFfnGate++;
  else if (category === "ffn_up") c.iFfnUp++;
}

/** Applies the schedule's surgery to the header: the planner then sees the final layer stack. */
function surgeredHeader(model: PlannerModel, schedule: ResolvedSchedule, source: string): PlanSurgery | undefined {
  if (!schedule.surgery || !schedule.recipes) return undefined;
  const inputLayers = mixtureHParams(model.kv, source).nLayer;
  const meta = surgeryMetadata(model.kv, schedule.recipes, source);
  return {
    ops: schedule.surgery,
    recipes: schedule.recipes,
    inputLayers,
    tensors: surgeryTensors(model.tensors, schedule.recipes, source),
    kv: meta.kv,
    warnings: meta.warnings,
  };
}

export function planModel(input: PlannerModel, schedule: ResolvedSchedule, source = "model"): Plan {
  const surgery = surgeredHeader(input, schedule, source);
  const model: PlannerModel = surgery ? { kv: surgery.kv, tensors: surgery.tensors } : input;
  const hp = mixtureHParams(model.kv, source);
  if (schedule.layerFtypes.length !== hp.nLayer) {
    throw new Error(`schedule resolved for ${schedule.layerFtypes.length} layers, model has ${hp.nLayer}`);
  }
  const overrides = compileOverrides(schedule.tensorTypes);
  const baseFtype = mustFileType(schedule.ftype);
  const layerFtypes = schedule.layerFtypes.map(mustFileType);
  const hasImatrix = schedule.imatrix !== undefined;

  const ordered = [...model.tensors].sort((a, b) => compareWeightNames(a.name, b.name));
  const categories = ordered.map((t) => tensorCategory(t.name));
  const counters: Counters = {
    nAttentionWv: categories.filter(isAttnVLike).length,
    iAttentionWv: 0,
    iFfnDown: 0,
    iFfnGate: 0,
    iFfnUp: 0,
  };
  const hasTiedEmbeddings = !categories.includes("output");

  const tensors: PlannedTensor[] = [];
  const fallbacks: Plan["fallbacks"] = [];
  let offset = 0;
  let totalBytes = 0;
  let elements = 0;

  ordered.forEach((t, i) => {
    const category = categories[i]!;
    const layer = layerOfName(t.name);
    const ftype = layer >= 0 && layer < layerFtypes.length ? layerFtypes[layer]! : baseFtype;
    const mixture = layer >= 0 ? schedule.layerMixtures?.[layer] : undefined;
    const choice = chooseType(t, category, ftype, mixture);
    const bytes = tensorBytes(choice.type, t.shape);
    tensors.push({
      name: t.name,
      // ggml_n_dims: llama.cpp writes the shape without trailing 1-sized dimensions
      shape: t.shape.slice(0, nDims(t.shape)),
      srcType: t.type,
      dstType: choice.type,
      reason: choice.reason,
      layer,
      ftype: ftype.name,
      category,
      bytes,
      offset,
      requiresImatrix: choice.quantizable && requiresImatrix(t.name, choice.type, ftype.name),
    });
    offset += pad(bytes, OUTPUT_ALIGNMENT);
    totalBytes += bytes;
    elements += t.shape.reduce((a, b) => a * b, 1);
  });

  function chooseType(t: PlannerInputTensor, category: TensorCategory, ftype: FileType, mixture: CustomMixture | undefined) {
    const keptReason = notQuantizedReason(t.name, t.shape, !schedule.leaveOutputTensor);
    if (keptReason !== undefined) return { type: t.type, reason: keptReason, quantizable: false };
    const rowLength = t.shape[0]!;
    // user-given embedding/output types are taken as they are (no shape fallback), as llama.cpp does
    // per_layer_token_embd follows the token embedding type unless an override names it
    if (
      schedule.tokenEmbeddingType !== undefined &&
      category === "token_embd" &&
      !(t.name === "per_layer_token_embd.weight" && overrides.some((o) => o.re.test(t.name)))
    ) {
      return checkedUserType(t, schedule.tokenEmbeddingType, "token embedding type");
    }
    if (schedule.outputTensorType !== undefined && category === "output") {
      return checkedUserType(t, schedule.outputTensorType, "output tensor type");
    }
    if (!isQuantizedType(ftype.defaultType)) {
      return { type: ftype.defaultType, reason: `${ftype.name}`, quantizable: true };
    }
    let type = ftype.defaultType;
    let reason = "default";
    const override = overrides.find((o) => o.re.test(t.name));
    if (override) {
      type = override.type;
      reason = `override /${override.pattern}/`;
    } else if (schedule.pure) {
      reason = "pure";
    } else {
      const ctx: RuleContext = {
        ftype: ftype.name,
        defaultType: ftype.defaultType,
        hp,
        hasImatrix,
        hasTiedEmbeddings,
        outputTensorType: schedule.outputTensorType,
        tokenEmbeddingType: schedule.tokenEmbeddingType,
        name: t.name,
        rowLength,
        iAttentionWv: counters.iAttentionWv,
        nAttentionWv: counters.nAttentionWv,
        iFfnDown: counters.iFfnDown,
        nFfnDown: hp.nLayerAll,
        ne2: t.shape[2] ?? 1,
      };
      // the IQ1/IQ2 and MXFP4 branches never read an expert tensor's layer (nor fail on it)
      const layerOf = (counter: number) => (readsFfnLayer(ftype.name) ? ffnLayer(t.name, counter, hp) : -1);
      const layer =
        category === "ffn_down" ? layerOf(counters.iFfnDown)
        : category === "ffn_gate" ? layerOf(counters.iFfnGate)
        : category === "ffn_up" ? layerOf(counters.iFfnUp)
        : -1;
      const rule = mixtureRule(ctx, category, layer);
      type = rule.type;
      reason = rule.rule;
      countVisit(counters, category, ftype.name);
      // a custom mixture is its base's rules (counters included) with some kinds' types replaced
      const kind = mixture?.overrides.find((o) => o.category === category);
      if (kind) {
        type = kind.type;
        reason = `mixture ${mixture!.name}`;
      }
    }
    const fb = shapeFallback(rowLength, type, t.name);
    if (fb.from !== undefined) {
      fallbacks.push({ name: t.name, from: fb.from, to: fb.type });
      reason += ` → fallback ${typeName(fb.from)}→${typeName(fb.type)} (row ${rowLength})`;
    }
    return { type: fb.type, reason, quantizable: true };
  }

  return {
    schedule,
    hparams: hp,
    fileType: baseFtype,
    tensors,
    tensorBytes: totalBytes,
    dataBytes: offset,
    elements,
    fallbacks,
    ...(surgery && { surgery }),
  };
}

/** A type the user named for token_embd/output: llama.cpp applies no fallback, and fails to quantize. */
function checkedUserType(t: PlannerInputTensor, type: GGMLType, option: string) {
  const block = mustTypeInfo(type).blockSize;
  if (t.shape[0]! % block !== 0) {
    throw new UserError(
      `${t.name}: ${option} ${typeName(type)} needs rows of a multiple of ${block} elements, the row has ${t.shape[0]}`,
    );
  }
  return { type, reason: option, quantizable: true };
}

/** Types llama.cpp will not make without importance weights (tensor_requires_imatrix). */
const IMATRIX_TYPES: ReadonlySet<GGMLType> = new Set([
  GGMLType.IQ3_XXS, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.IQ1_M, GGMLType.IQ1_S,
]);

/**
 * tensor_requires_imatrix: the very low-bit types, and Q2_K inside a Q2_K_S layer, except for the
 * token embeddings and output.weight (whatever type they are given).
 */
export function requiresImatrix(name: string, type: GGMLType, ftype: FileTypeName): boolean {
  if (name === "token_embd.weight" || name === "per_layer_token_embd.weight" || name === "output.weight") return false;
  return IMATRIX_TYPES.has(type) || (type === GGMLType.Q2_K && ftype === "Q2_K_S");
}
