// What the tuner may choose from: every tensor llama-quantize would quantize, with the types it may
// get (each candidate passed through llama.cpp's row-width fallback, so an option is the type that
// is really written), and the groups sensitivity is measured on (one layer's attention tensors, its
// FFN tensors, then each tensor outside the layers on its own).
import { UserError } from "../errors.js";
import { GGMLType, mustTypeInfo, tensorBytes, typeByName, typeName } from "../gguf/ggml-types.js";
import type { PlannerModel } from "../plan/planner.js";
import { OUTPUT_ALIGNMENT } from "../plan/planner.js";
import { TARGET_TYPES } from "../plan/ftypes.js";
import { compareWeightNames, layerOfName, notQuantizedReason, shapeFallback, tensorCategory, type TensorCategory } from "../plan/tensors.js";

/** Everything hquant quantizes to, smallest first (F32/BF16 are never better than F16 here). */
export const DEFAULT_CANDIDATE_TYPES: readonly GGMLType[] = [
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_0, GGMLType.IQ4_NL, GGMLType.IQ4_XS, GGMLType.Q4_1, GGMLType.Q4_K,
  GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.F16,
];

export interface TensorOption {
  /** the type written (after the row-width fallback) */
  type: GGMLType;
  /** data bytes */
  bytes: number;
  /** data bytes padded to the output alignment (what the tensor adds to the file) */
  paddedBytes: number;
}

export interface TuneTensor {
  name: string;
  shape: number[];
  category: TensorCategory;
  /** blk.N → N, else -1 */
  layer: number;
  /** measurement group this tensor belongs to */
  group: string;
  elements: number;
  /** distinct written types, smallest first */
  options: TensorOption[];
}

export interface TuneSpace {
  tensors: TuneTensor[];
  /** group names in model order */
  groups: string[];
  /** data bytes of the tensors the tuner does not choose for (norms …), padded */
  fixedPaddedBytes: number;
  fixedBytes: number;
  /** all elements (for bits per weight, as `hquant plan` counts them) */
  elements: number;
}

const pad = (n: number) => Math.ceil(n / OUTPUT_ALIGNMENT) * OUTPUT_ALIGNMENT;

/** The measurement group of a quantizable tensor: blk.N.attn / blk.N.ffn, else the tensor's own name. */
export function groupOf(name: string, category: TensorCategory): string {
  const layer = layerOfName(name);
  if (layer < 0) return name.replace(/\.weight$/, "");
  if (category.startsWith("attn_")) return `blk.${layer}.attn`;
  if (category.startsWith("ffn_")) return `blk.${layer}.ffn`;
  return name.replace(/\.weight$/, "");
}

/** Parses a --types list ("q4_K,q5_K,f16"); every name must be a type hquant writes. */
/** The tensors a measurement unit lowers: a group's, or the one tensor it names (`blk.3.ffn_down`). */
export function unitTensors(space: TuneSpace, unit: string): TuneTensor[] {
  const inGroup = space.tensors.filter((t) => t.group === unit);
  return inGroup.length > 0 ? inGroup : space.tensors.filter((t) => t.name === `${unit}.weight`);
}

export function parseTypeList(list: string, where = "--types"): GGMLType[] {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UserError(`${where}: empty type list`);
  const allowed = DEFAULT_CANDIDATE_TYPES.map(typeName);
  const types = names.map((n) => {
    const info = typeByName(n);
    if (!info || !TARGET_TYPES.includes(info.id) || info.id === GGMLType.F32 || info.id === GGMLType.BF16) {
      throw new UserError(`${where}: unknown type ${JSON.stringify(n)}; valid: ${allowed.join(", ")}`);
    }
    return info.id;
  });
  return [...new Set(types)];
}

/** The tuner's search space over a model header: quantizable tensors × candidate types. */
export function tuneSpace(model: PlannerModel, candidates: readonly GGMLType[] = DEFAULT_CANDIDATE_TYPES): TuneSpace {
  const ordered = [...model.tensors].sort((a, b) => compareWeightNames(a.name, b.name));
  const tensors: TuneTensor[] = [];
  const groups: string[] = [];
  let fixedPaddedBytes = 0;
  let fixedBytes = 0;
  let elements = 0;
  for (const t of ordered) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    elements += n;
    if (notQuantizedReason(t.name, t.shape, true) !== undefined) {
      const bytes = tensorBytes(t.type, t.shape);
      fixedBytes += bytes;
      fixedPaddedBytes += pad(bytes);
      continue;
    }
    const byType = new Map<GGMLType, TensorOption>();
    for (const c of candidates) {
      const type = shapeFallback(t.shape[0]!, c).type;
      const bytes = tensorBytes(type, t.shape);
      byType.set(type, { type, bytes, paddedBytes: pad(bytes) });
    }
    // a type is not an option for a tensor when a smaller-or-equal one is the same type after fallback
    const options = [...byType.values()].sort((a, b) => a.bytes - b.bytes || a.type - b.type);
    const category = tensorCategory(t.name);
    const group = groupOf(t.name, category);
    if (!groups.includes(group)) groups.push(group);
    tensors.push({ name: t.name, shape: [...t.shape], category, layer: layerOfName(t.name), group, elements: n, options });
  }
  if (tensors.length === 0) throw new UserError("the model has no tensor llama.cpp quantizes");
  return { tensors, groups, fixedPaddedBytes, fixedBytes, elements };
}

/** Bits per element of a type (for display). */
export function typeBits(type: GGMLType): number {
  const info = mustTypeInfo(type);
  return (info.typeSize * 8) / info.blockSize;
}
