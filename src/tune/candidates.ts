// What the tuner may choose from: every tensor llama-quantize would quantize, with the types it may
// get (each candidate passed through llama.cpp's row-width fallback, so an option is the type that
// is really written, and kept only where llama.cpp can make it: the types tensor_requires_imatrix or
// ggml_quantize_requires_imatrix names need the tensor's importance vector), and the groups
// sensitivity is measured on (one layer's attention tensors, its FFN tensors — expert tensors, shared
// experts and the router's neighbours included — then each tensor outside the layers on its own).
import { UserError } from "../errors.js";
import { GGMLType, mustTypeInfo, tensorBytes, typeByName, typeName } from "../gguf/ggml-types.js";
import type { Imatrix } from "../imatrix/index.js";
import { GGML_REQUIRES_IMATRIX } from "../build/importance.js";
import type { PlannerModel } from "../plan/planner.js";
import { OUTPUT_ALIGNMENT, requiresImatrix } from "../plan/planner.js";
import { TARGET_TYPES } from "../plan/ftypes.js";
import { compareWeightNames, layerOfName, notQuantizedReason, shapeFallback, tensorCategory, type TensorCategory } from "../plan/tensors.js";

/**
 * Everything hquant quantizes to that can win on an ordinary (not ternary-trained) model, smallest
 * first. Left out, by the proxy on the bundled model with its imatrix (scratch of README "Candidate
 * types"): tq1_0, tq2_0, q2_0, mxfp4 and nvfp4 are dominated on all 114 tensors (a smaller-or-equal
 * type with less error: their error is 1.9–5.9× (geometric mean) that of iq1_m, iq2_xxs, iq4_xs);
 * q1_0 (1.125 bpw) is undominated only because nothing else is that small — its error is 1.6× iq1_s's,
 * and every budget from 1.8 bpw is reachable without it. All stay available through --types.
 * F32/BF16 are never better than F16 here.
 */
export const DEFAULT_CANDIDATE_TYPES: readonly GGMLType[] = [
  GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.Q2_K, GGMLType.IQ3_XXS,
  GGMLType.IQ3_S, GGMLType.Q3_K, GGMLType.Q4_0, GGMLType.IQ4_NL, GGMLType.IQ4_XS, GGMLType.Q4_1, GGMLType.Q4_K,
  GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.F16,
];

/** Every type --types accepts (what hquant writes, F32/BF16 aside). */
export const ALL_CANDIDATE_TYPES: readonly GGMLType[] = TARGET_TYPES.filter((t) => t !== GGMLType.F32 && t !== GGMLType.BF16);

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
  /**
   * The name without its layer and ".weight" (attn_q, ffn_down_exps, ffn_up_shexp; outside the
   * layers the name itself): the sensitivity model's per-kind scale, so expert, shared-expert and
   * dense tensors of the same category are scaled apart.
   */
  kind: string;
  /** measurement group this tensor belongs to */
  group: string;
  elements: number;
  /** distinct written types, smallest first */
  options: TensorOption[];
}

/** A candidate type a tensor cannot take, and why (reported; the budget error's hint). */
export interface ExcludedOption {
  tensor: string;
  type: GGMLType;
  reason: "imatrix" | "shape";
}

export interface TuneSpace {
  tensors: TuneTensor[];
  /** candidates dropped for a tensor: llama.cpp cannot make them there */
  excluded: ExcludedOption[];
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
  const allowed = ALL_CANDIDATE_TYPES.map(typeName);
  const types = names.map((n) => {
    const info = typeByName(n);
    if (!info || !ALL_CANDIDATE_TYPES.includes(info.id)) {
      throw new UserError(`${where}: unknown type ${JSON.stringify(n)}; valid: ${allowed.join(", ")}`);
    }
    return info.id;
  });
  return [...new Set(types)];
}

/**
 * Whether the build gives this tensor an importance vector (importance.ts's rule: an entry of the
 * same name, ne0 × n_expert long).
 */
export function hasImportance(imatrix: Imatrix | undefined, name: string, shape: readonly number[]): boolean {
  const v = imatrix?.vectors.get(name);
  return v !== undefined && v.length === shape[0]! * (shape[2] ?? 1);
}

/**
 * Whether llama.cpp can write `type` for this tensor without an importance vector: not when
 * tensor_requires_imatrix names it (iq1_*, iq2_*, iq3_xxs outside token_embd/output; the tuner never
 * records Q2_K_S, so q2_K is free) nor when ggml cannot quantize it without weights at all
 * (iq2_xxs, iq2_xs, iq1_s: llama.cpp aborts, even for the embeddings).
 */
export function needsImportance(name: string, type: GGMLType): boolean {
  return requiresImatrix(name, type, "Q8_0") || GGML_REQUIRES_IMATRIX.has(type);
}

/** The tuner's search space over a model header: quantizable tensors × candidate types (the imatrix decides which low-bit types each tensor may take). */
export function tuneSpace(model: PlannerModel, candidates: readonly GGMLType[] = DEFAULT_CANDIDATE_TYPES, imatrix?: Imatrix | "every tensor"): TuneSpace {
  const ordered = [...model.tensors].sort((a, b) => compareWeightNames(a.name, b.name));
  const tensors: TuneTensor[] = [];
  const groups: string[] = [];
  const excluded: ExcludedOption[] = [];
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
    // "every tensor": what an imatrix covering the model would allow (the budget error's hint)
    const important = imatrix === "every tensor" || hasImportance(imatrix, t.name, t.shape);
    for (const c of candidates) {
      let type: GGMLType;
      try {
        type = shapeFallback(t.shape[0]!, c, t.name).type;
      } catch (e) {
        // q1_0 / nvfp4 on rows their block does not divide: no fallback, llama.cpp fails
        if (!(e instanceof UserError)) throw e;
        excluded.push({ tensor: t.name, type: c, reason: "shape" });
        continue;
      }
      if (needsImportance(t.name, type) && !important) {
        excluded.push({ tensor: t.name, type, reason: "imatrix" });
        continue;
      }
      const bytes = tensorBytes(type, t.shape);
      byType.set(type, { type, bytes, paddedBytes: pad(bytes) });
    }
    if (byType.size === 0) {
      const why = excluded.filter((x) => x.tensor === t.name).map((x) => `${typeName(x.type)} ${x.reason === "imatrix" ? "needs an imatrix entry" : "does not fit its rows"}`);
      throw new UserError(`--types: no candidate type can be made for ${t.name} (${why.join(", ")}); add a type such as q4_K${imatrix !== undefined ? "" : " or give --imatrix"}`);
    }
    // a type is not an option for a tensor when a smaller-or-equal one is the same type after fallback
    const options = [...byType.values()].sort((a, b) => a.bytes - b.bytes || a.type - b.type);
    const category = tensorCategory(t.name);
    const group = groupOf(t.name, category);
    if (!groups.includes(group)) groups.push(group);
    const layer = layerOfName(t.name);
    const kind = (layer >= 0 ? t.name.slice(`blk.${layer}.`.length) : t.name).replace(/\.weight$/, "");
    tensors.push({ name: t.name, shape: [...t.shape], category, layer, kind, group, elements: n, options });
  }
  if (tensors.length === 0) throw new UserError("the model has no tensor llama.cpp quantizes");
  return { tensors, excluded, groups, fixedPaddedBytes, fixedBytes, elements };
}

/** Bits per element of a type (for display). */
export function typeBits(type: GGMLType): number {
  const info = mustTypeInfo(type);
  return (info.typeSize * 8) / info.blockSize;
}
