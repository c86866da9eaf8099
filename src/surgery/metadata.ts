// Metadata and importance matrix after layer surgery. Pure.
// - `<arch>.block_count` becomes the final layer count (same value type).
// - Per-layer array hyper-parameters (any `<arch>.*` numeric/bool array whose length is the input's
//   block count — head_count / head_count_kv / feed_forward_length given per layer, sliding-window
//   flags, recurrent-layer flags …) are rebuilt with the layer recipes: a copy takes its source's
//   value; an interpolated or merged layer takes the value of its primary source (merge: the base
//   layer; interpolate: the nearer end, α ≤ 0.5 → a). Sources of a computed layer have the same
//   tensor shapes (checked in tensors.ts), so the shape-giving values agree anyway; for flags that
//   may differ (sliding window or not) the primary source decides. The element type is kept.
// - Scalars that encode layer POSITIONS (a sliding-window period, leading dense blocks, MTP layers
//   at the end …) cannot be remapped in general: they are left as they are, with a warning.
import { UserError } from "../errors.js";
import { GGUFValueType, architecture, type GGUFKV, type GGUFScalar } from "../gguf/model.js";
import { isIdentity, primarySource, recipeSources, type LayerRecipe, type Recipe } from "./ops.js";

/** `<arch>.` keys holding arrays that are not per-layer values even when their length matches. */
const NOT_PER_LAYER_ARRAYS = new Set([
  "rope.dimension_sections",
  "classifier.output_labels",
  "ple.layers",
  "ple.layer_multipliers",
  "ple.head_offsets",
  "ple.head_vocab_sizes",
  "target_layers",
]);

/** `<arch>.` keys whose value depends on where layers sit: kept, with a warning. */
const POSITION_KEYS = new Set([
  "leading_dense_block_count",
  "moe_every_n_layers",
  "nextn_predict_layers",
  "n_deepstack_layers",
  "rescale_every_n_layers",
  "interleave_moe_layer_step",
  "full_attention_interval",
  "attention.sliding_window_pattern",
  "attention.shared_kv_layers",
  "hash_layer_count",
  "ple.layers",
  "target_layers",
]);

export interface SurgeryMetadata {
  kv: GGUFKV[];
  /** keys whose value changed */
  changed: string[];
  /** position-dependent keys left as they were */
  warnings: string[];
}

function blockCountOf(kv: readonly GGUFKV[], key: string, prefix: string): number {
  const e = kv.find((x) => x.key === key);
  const v = e?.value;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n <= 0) {
    throw new UserError(`${prefix}surgery: the model has no usable ${key}`);
  }
  return n;
}

function isZero(v: GGUFScalar | GGUFScalar[]): boolean {
  return v === 0 || v === 0n || v === false;
}

/**
 * The metadata of the output after surgery: block_count and per-layer arrays updated, everything
 * else as in the input (in the same order). `source` (the model file) prefixes errors.
 */
export function surgeryMetadata(kv: readonly GGUFKV[], recipes: readonly LayerRecipe[], source?: string): SurgeryMetadata {
  const prefix = source === undefined ? "" : `${source}: `;
  const arch = architecture(kv);
  if (!arch) throw new UserError(`${prefix}surgery: the model has no general.architecture`);
  const blockKey = `${arch}.block_count`;
  const nInput = blockCountOf(kv, blockKey, prefix);
  for (const r of recipes) {
    for (const l of recipeSources(r)) {
      if (l >= nInput) throw new UserError(`${prefix}surgery: layer ${l} does not exist (${blockKey} is ${nInput})`);
    }
  }
  const changed: string[] = [];
  const warnings: string[] = [];
  const identity = isIdentity(recipes, nInput);
  const out = kv.map((e): GGUFKV => {
    if (e.key === blockKey) {
      const value = typeof e.value === "bigint" ? BigInt(recipes.length) : recipes.length;
      if (recipes.length !== nInput) changed.push(e.key);
      return { ...e, value };
    }
    if (!e.key.startsWith(`${arch}.`) || identity) return e;
    const name = e.key.slice(arch.length + 1);
    const perLayer =
      e.type === GGUFValueType.ARRAY &&
      e.arrayType !== GGUFValueType.STRING &&
      e.arrayType !== GGUFValueType.ARRAY &&
      Array.isArray(e.value) &&
      e.value.length === nInput &&
      !NOT_PER_LAYER_ARRAYS.has(name);
    if (perLayer) {
      const values = e.value as GGUFScalar[];
      changed.push(e.key);
      return { ...e, value: recipes.map((r) => values[primarySource(r)]!) };
    }
    if (POSITION_KEYS.has(name) && !isZero(e.value)) {
      warnings.push(`${e.key} depends on layer positions and is left unchanged by the surgery; check it`);
    }
    return e;
  });
  return { kv: out, changed, warnings };
}

const BLOCK_ENTRY = /^blk\.(\d+)\.(.+)$/;

/** Element-wise mean in f32: ((v₀ + v₁) + v₂ …) / n, each step rounded. */
function meanF32(vectors: readonly Float32Array[], what: string, prefix: string): Float32Array {
  const n = vectors[0]!.length;
  for (const v of vectors) {
    if (v.length !== n) throw new UserError(`${prefix}imatrix entry ${what}: sources have ${n} and ${v.length} values`);
  }
  const out = new Float32Array(n);
  const count = vectors.length;
  for (let i = 0; i < n; i++) {
    let acc = vectors[0]![i]!;
    for (let k = 1; k < count; k++) acc = Math.fround(acc + vectors[k]![i]!);
    out[i] = acc / count;
  }
  return out;
}

/** A layer's entry: copies share the source's vector; computed layers average their children's. */
function remapEntry(r: Recipe<number>, suffix: string, entries: ReadonlyMap<string, Float32Array>, what: string, prefix: string): Float32Array | undefined {
  if (r.kind === "copy") return entries.get(`blk.${r.src}.${suffix}`);
  const children = r.kind === "interpolate" ? [r.a, r.b] : [r.base, ...r.others];
  const vectors: Float32Array[] = [];
  for (const c of children) {
    const v = remapEntry(c, suffix, entries, what, prefix);
    if (!v) return undefined; // a source without an entry: the output layer has none either
    vectors.push(v);
  }
  return meanF32(vectors, what, prefix);
}

/**
 * Importance-matrix entries for the output's tensor names. Entries outside the blocks are kept;
 * `blk.N.*` entries are rebuilt per final layer: a copied (duplicated, swapped, renumbered) layer
 * reuses its source's vectors; an interpolated or merged layer gets the element-wise f32 mean of
 * its children's vectors (an unweighted mean, whatever α; nested recipes average level by level).
 * A layer any of whose sources has no entry for a tensor gets no entry for it (the build then
 * treats it as any missing entry). `source` (the imatrix file) prefixes errors.
 */
export function remapImatrix(
  entries: ReadonlyMap<string, Float32Array>,
  recipes: readonly LayerRecipe[],
  source?: string,
): Map<string, Float32Array> {
  const prefix = source === undefined ? "" : `${source}: `;
  const out = new Map<string, Float32Array>();
  const suffixes = new Set<string>();
  for (const [name, v] of entries) {
    const m = BLOCK_ENTRY.exec(name);
    if (!m) out.set(name, v);
    else suffixes.add(m[2]!);
  }
  recipes.forEach((r, layer) => {
    for (const suffix of suffixes) {
      const name = `blk.${layer}.${suffix}`;
      const v = remapEntry(r, suffix, entries, name, prefix);
      if (v) out.set(name, v);
    }
  });
  return out;
}
