// Layer recipes → the output model's tensor list: `blk.N.*` renumbered to the final layers, each
// output tensor with its recipe over input tensor names; tensors outside the blocks untouched.
// Pure (header only, no tensor data).
import { UserError } from "../errors.js";
import { GGMLType } from "../gguf/ggml-types.js";
import type { TensorInfo } from "../gguf/model.js";
import { formatRecipe, mapRecipe, normRecipe, recipeSources, type LayerRecipe, type Recipe } from "./ops.js";

/** What the mapping needs of an input tensor (TensorInfo and the planner's input both fit). */
export interface SurgeryInputTensor {
  name: TensorInfo["name"];
  shape: readonly number[];
  type: TensorInfo["type"];
}

export interface SurgeryTensor {
  /** output name (blk.N renumbered to the final layer) */
  name: string;
  shape: number[];
  /**
   * the type the planner should see as the source type: the inputs' type when they all share one,
   * else F32 (the type the arithmetic produces)
   */
  type: GGMLType;
  /** final layer, -1 outside the blocks */
  layer: number;
  /** input tensor names, each read once; `recipe` leaves are indices into this list */
  inputs: string[];
  recipe: Recipe<number>;
  /**
   * true when the data must be computed (any recipe but a plain copy): the build must then read
   * every input, convert to f32, combine and quantize to the planned type — even when the planned
   * type equals `type` (the bytes are new).
   */
  computed: boolean;
}

const BLOCK_NAME = /^blk\.(\d+)\.(.+)$/;

/** Tensors outside blk.N whose shape has a per-layer dimension: surgery cannot renumber them. */
const LAYER_SHAPED_GLOBALS = /^per_layer_/;

/** Norm tensors (attn_norm, ffn_norm, attn_q_norm, post_ffw_norm, attn_norm_2, nextn.enorm …): LaCo keeps base's. */
export function isNormTensor(suffix: string): boolean {
  return /norm(_\d+)?(\.(weight|bias))?$/.test(suffix);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** blk.N tensors by layer, in input order, plus where the block tensors start. */
function groupByLayer<T extends SurgeryInputTensor>(tensors: readonly T[]) {
  const layers = new Map<number, Map<string, T>>();
  let firstBlock = -1;
  tensors.forEach((t, i) => {
    const m = BLOCK_NAME.exec(t.name);
    if (!m) return;
    if (firstBlock < 0) firstBlock = i;
    const layer = Number(m[1]);
    let byName = layers.get(layer);
    if (!byName) layers.set(layer, (byName = new Map()));
    byName.set(m[2]!, t);
  });
  return { layers, firstBlock };
}

/** A computed layer's sources must hold the same tensors with the same shapes. */
function checkSameTensors<T extends SurgeryInputTensor>(
  finalLayer: number,
  recipe: LayerRecipe,
  sources: readonly number[],
  layers: Map<number, Map<string, T>>,
  prefix: string,
): void {
  const first = sources[0]!;
  const ref = layers.get(first) ?? new Map<string, T>();
  const what = `surgery: final layer ${finalLayer} (${formatRecipe(recipe)})`;
  for (const other of sources.slice(1)) {
    const cur = layers.get(other) ?? new Map<string, T>();
    for (const [suffix, t] of ref) {
      const u = cur.get(suffix);
      if (!u) throw new UserError(`${prefix}${what}: blk.${first}.${suffix} has no counterpart blk.${other}.${suffix}`);
      if (shapeText(u.shape) !== shapeText(t.shape)) {
        throw new UserError(`${prefix}${what}: blk.${first}.${suffix} ${shapeText(t.shape)} and blk.${other}.${suffix} ${shapeText(u.shape)} differ in shape`);
      }
    }
    for (const suffix of cur.keys()) {
      if (!ref.has(suffix)) throw new UserError(`${prefix}${what}: blk.${other}.${suffix} has no counterpart blk.${first}.${suffix}`);
    }
  }
}

function layerTensors<T extends SurgeryInputTensor>(
  finalLayer: number,
  recipe: LayerRecipe,
  layers: Map<number, Map<string, T>>,
  byName: Map<string, T>,
): SurgeryTensor[] {
  const sources = recipeSources(recipe);
  // the tensors and their order are the first source's (all sources hold the same ones)
  const template = layers.get(sources[0]!) ?? new Map<string, T>();
  const out: SurgeryTensor[] = [];
  for (const [suffix, t] of template) {
    const layerRecipe = isNormTensor(suffix) ? normRecipe(recipe) : recipe;
    const inputs = recipeSources(layerRecipe).map((l) => `blk.${l}.${suffix}`);
    const types = new Set(inputs.map((n) => byName.get(n)!.type));
    out.push({
      name: `blk.${finalLayer}.${suffix}`,
      shape: [...t.shape],
      type: types.size === 1 ? t.type : GGMLType.F32,
      layer: finalLayer,
      inputs,
      recipe: mapRecipe(layerRecipe, (l) => inputs.indexOf(`blk.${l}.${suffix}`)),
      computed: layerRecipe.kind !== "copy",
    });
  }
  return out;
}

/**
 * The output tensor list after surgery. Tensors outside the blocks keep their place; the blocks
 * (final layer 0, 1, …, each in its first source layer's tensor order) take the place of the
 * input's blocks. `source` (the model file) prefixes error messages.
 */
export function surgeryTensors<T extends SurgeryInputTensor>(
  tensors: readonly T[],
  recipes: readonly LayerRecipe[],
  source?: string,
): SurgeryTensor[] {
  const prefix = source === undefined ? "" : `${source}: `;
  const { layers, firstBlock } = groupByLayer(tensors);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const blocks: SurgeryTensor[] = [];
  recipes.forEach((recipe, finalLayer) => {
    const sources = recipeSources(recipe);
    for (const l of sources) {
      if (!layers.has(l)) throw new UserError(`${prefix}surgery: final layer ${finalLayer} needs layer ${l}, which has no tensors in the model`);
    }
    if (recipe.kind !== "copy") checkSameTensors(finalLayer, recipe, sources, layers, prefix);
    blocks.push(...layerTensors(finalLayer, recipe, layers, byName));
  });

  const out: SurgeryTensor[] = [];
  tensors.forEach((t, i) => {
    if (i === firstBlock) out.push(...blocks);
    if (BLOCK_NAME.test(t.name)) return;
    if (LAYER_SHAPED_GLOBALS.test(t.name)) {
      throw new UserError(`${prefix}surgery: tensor ${t.name} has a per-layer dimension outside blk.N; layer surgery does not support this model`);
    }
    out.push({ name: t.name, shape: [...t.shape], type: t.type, layer: -1, inputs: [t.name], recipe: { kind: "copy", src: 0 }, computed: false });
  });
  if (firstBlock < 0) out.push(...blocks);
  return out;
}

export interface SurgeryRow {
  /** index in the final layer list */
  layer: number;
  /** input layers it is made from, first-use order */
  sources: number[];
  /** `12`, `lerp(20, 22, 0.5)`, `merge(10, 11, 12)` */
  recipe: string;
  /** false when the layer is a plain copy of the input layer with the same index */
  changed: boolean;
}

/** Final layer ← source layers, one row per final layer (for `hquant plan` and `--json`). */
export function describeSurgery(recipes: readonly LayerRecipe[]): SurgeryRow[] {
  return recipes.map((r, layer) => ({
    layer,
    sources: recipeSources(r),
    recipe: formatRecipe(r),
    changed: !(r.kind === "copy" && r.src === layer),
  }));
}

/** The rows as text: `  21 ← lerp(20, 22, 0.5)`; unchanged runs folded into one line. */
export function formatSurgeryTable(rows: readonly SurgeryRow[], nInputLayers: number): string[] {
  const lines = [`layer surgery: ${nInputLayers} input layers → ${rows.length} layers (final ← source)`];
  const width = String(Math.max(rows.length - 1, 0)).length;
  for (let i = 0; i < rows.length; ) {
    let j = i;
    // fold runs of final layers that copy consecutive source layers (0-9 ← 0-9, 10-20 ← 12-22)
    while (j + 1 < rows.length && isShiftedCopy(rows[i]!, rows[j + 1]!, j + 1 - i)) j++;
    const left = i === j ? `${i}` : `${i}-${j}`;
    const right = i === j ? rows[i]!.recipe : `${rows[i]!.recipe}-${rows[j]!.recipe}`;
    lines.push(`  ${left.padStart(width * 2 + 1)} ← ${right}`);
    i = j + 1;
  }
  return lines;
}

function isShiftedCopy(first: SurgeryRow, row: SurgeryRow, distance: number): boolean {
  const isCopy = (r: SurgeryRow) => /^\d+$/.test(r.recipe);
  return isCopy(first) && isCopy(row) && Number(row.recipe) === Number(first.recipe) + distance;
}
