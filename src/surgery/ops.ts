// Layer surgery on the layer list: delete, swap, duplicate, interpolate, merge, applied in order.
// Pure: the result says, for every layer of the output, how to compute it from the INPUT model's
// layers. Recipes are expression trees, so ops on layers that are themselves results of earlier
// ops compose (interpolating a merged layer with a duplicated one is just a deeper tree), and the
// arithmetic order stays exactly the order of the formulas (see arith.ts) — no algebraic
// simplification into flat weighted sums, which would change f32 results.
import { UserError } from "../errors.js";

export type SurgeryOp =
  | { op: "delete"; layers: number[] }
  | { op: "swap"; a: number; b: number }
  | { op: "duplicate"; layer: number; after: number }
  | { op: "interpolate"; a: number; b: number; alpha: number; after: number }
  | { op: "merge"; from: number; count: number };

/**
 * How one output layer (or tensor) is made, over leaves of type S (a source layer index for
 * layers, an input index for tensors):
 * - copy: the source, unchanged;
 * - interpolate: (1−α)·a + α·b, evaluated literally in f32 (norms are interpolated too);
 * - merge (LaCo): base + (o₁ − base) + (o₂ − base) + … left to right in f32; norm tensors come
 *   from base alone.
 */
export type Recipe<S> =
  | { kind: "copy"; src: S }
  | { kind: "interpolate"; a: Recipe<S>; b: Recipe<S>; alpha: number }
  | { kind: "merge"; base: Recipe<S>; others: Recipe<S>[] };

/** A recipe over source (input model) layer indices. */
export type LayerRecipe = Recipe<number>;

/** llama.cpp's LLAMA_MAX_LAYERS: a model with more layers does not load. */
export const MAX_LAYERS = 512;

export function copyOf<S>(src: S): Recipe<S> {
  return { kind: "copy", src };
}

/** The identity: one copy recipe per input layer. */
export function identityRecipes(nLayer: number): LayerRecipe[] {
  return Array.from({ length: nLayer }, (_, i) => copyOf(i));
}

/** Context for one op's errors: `surgery[2].after: …`, prefixed with the schedule file when known. */
class OpContext {
  constructor(
    private readonly prefix: string,
    private readonly index: number,
    readonly layers: number,
  ) {}

  fail(field: string, message: string): never {
    throw new UserError(`${this.prefix}surgery[${this.index}]${field === "" ? "" : `.${field}`}: ${message}`);
  }

  private get atThatPoint(): string {
    return `(the layer list has ${this.layers} layers at that point)`;
  }

  /** An index of an existing layer. */
  layer(field: string, i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.layers) this.fail(field, `layer ${i} does not exist ${this.atThatPoint}`);
    return i;
  }

  /** An insertion point: -1 (before the first layer) … last layer. */
  after(field: string, i: number): number {
    if (!Number.isInteger(i) || i < -1 || i >= this.layers) this.fail(field, `layer ${i} does not exist ${this.atThatPoint}`);
    return i;
  }

  range(field: string, from: number, count: number): void {
    this.layer("from", from);
    if (!Number.isInteger(count) || count < 2) this.fail(field, `must be at least 2 (got ${count})`);
    if (from + count > this.layers) {
      this.fail(field, `layers ${from}-${from + count - 1} do not all exist ${this.atThatPoint}`);
    }
  }
}

/** (1−α)·a + α·b; α = 0 and α = 1 are exact copies (the literal formula would turn −0 into +0). */
export function interpolateRecipe<S>(a: Recipe<S>, b: Recipe<S>, alpha: number): Recipe<S> {
  if (alpha === 0) return a;
  if (alpha === 1) return b;
  return { kind: "interpolate", a, b, alpha };
}

type OpHandler = (list: LayerRecipe[], op: SurgeryOp, ctx: OpContext) => LayerRecipe[];

const OP_HANDLERS: Record<SurgeryOp["op"], OpHandler> = {
  delete(list, op, ctx) {
    const { layers } = op as Extract<SurgeryOp, { op: "delete" }>;
    const gone = new Set<number>();
    layers.forEach((l, k) => {
      ctx.layer(`layers[${k}]`, l);
      if (gone.has(l)) ctx.fail(`layers[${k}]`, `layer ${l} is listed twice`);
      gone.add(l);
    });
    if (gone.size === list.length) ctx.fail("layers", `would delete every layer (the layer list has ${list.length} layers at that point)`);
    return list.filter((_, i) => !gone.has(i));
  },
  swap(list, op, ctx) {
    const { a, b } = op as Extract<SurgeryOp, { op: "swap" }>;
    ctx.layer("a", a);
    ctx.layer("b", b);
    if (a === b) ctx.fail("b", `swaps layer ${a} with itself`);
    const out = [...list];
    out[a] = list[b]!;
    out[b] = list[a]!;
    return out;
  },
  duplicate(list, op, ctx) {
    const { layer, after } = op as Extract<SurgeryOp, { op: "duplicate" }>;
    ctx.layer("layer", layer);
    ctx.after("after", after);
    return insertAfter(list, after, list[layer]!);
  },
  interpolate(list, op, ctx) {
    const { a, b, alpha, after } = op as Extract<SurgeryOp, { op: "interpolate" }>;
    ctx.layer("a", a);
    ctx.layer("b", b);
    if (a === b) ctx.fail("b", `interpolates layer ${a} with itself (use duplicate)`);
    if (!(alpha >= 0 && alpha <= 1)) ctx.fail("alpha", `must be between 0 and 1 (got ${alpha})`);
    ctx.after("after", after);
    return insertAfter(list, after, interpolateRecipe(list[a]!, list[b]!, alpha));
  },
  merge(list, op, ctx) {
    const { from, count } = op as Extract<SurgeryOp, { op: "merge" }>;
    ctx.range("count", from, count);
    const merged: LayerRecipe = { kind: "merge", base: list[from]!, others: list.slice(from + 1, from + count) };
    return [...list.slice(0, from), merged, ...list.slice(from + count)];
  },
};

function insertAfter<T>(list: readonly T[], after: number, item: T): T[] {
  return [...list.slice(0, after + 1), item, ...list.slice(after + 1)];
}

/**
 * Applies `ops` in order to the layer list of a model with `nLayer` layers. Each op's indices refer
 * to the list as it stands after the ops before it. Returns one recipe per final layer, over the
 * input model's layer indices. `source` (the schedule file) prefixes error messages.
 */
export function applySurgery(nLayer: number, ops: readonly SurgeryOp[], source?: string): LayerRecipe[] {
  const prefix = source === undefined ? "" : `${source}: `;
  let list = identityRecipes(nLayer);
  ops.forEach((op, i) => {
    const ctx = new OpContext(prefix, i, list.length);
    if (!Object.hasOwn(OP_HANDLERS, op.op)) ctx.fail("op", `unknown op ${JSON.stringify(op.op)}`);
    list = OP_HANDLERS[op.op](list, op, ctx);
    if (list.length > MAX_LAYERS) {
      ctx.fail("", `the layer list would have ${list.length} layers; llama.cpp loads at most ${MAX_LAYERS}`);
    }
  });
  return list;
}

/** True when the surgery leaves every layer where it was (no tensor needs renaming or computing). */
export function isIdentity(recipes: readonly LayerRecipe[], nLayer: number): boolean {
  return recipes.length === nLayer && recipes.every((r, i) => r.kind === "copy" && r.src === i);
}

/** The distinct leaves of a recipe, in first-use order. */
export function recipeSources<S>(r: Recipe<S>, out: S[] = []): S[] {
  switch (r.kind) {
    case "copy":
      if (!out.includes(r.src)) out.push(r.src);
      break;
    case "interpolate":
      recipeSources(r.a, out);
      recipeSources(r.b, out);
      break;
    case "merge":
      recipeSources(r.base, out);
      for (const o of r.others) recipeSources(o, out);
      break;
  }
  return out;
}

/** The same tree with every leaf mapped (e.g. layer index → input tensor index). */
export function mapRecipe<S, T>(r: Recipe<S>, f: (src: S) => T): Recipe<T> {
  switch (r.kind) {
    case "copy":
      return { kind: "copy", src: f(r.src) };
    case "interpolate":
      return { kind: "interpolate", a: mapRecipe(r.a, f), b: mapRecipe(r.b, f), alpha: r.alpha };
    case "merge":
      return { kind: "merge", base: mapRecipe(r.base, f), others: r.others.map((o) => mapRecipe(o, f)) };
  }
}

/** The recipe for norm tensors: a LaCo merge keeps its base layer's norms (everything else as is). */
export function normRecipe<S>(r: Recipe<S>): Recipe<S> {
  switch (r.kind) {
    case "copy":
      return r;
    case "interpolate":
      return { kind: "interpolate", a: normRecipe(r.a), b: normRecipe(r.b), alpha: r.alpha };
    case "merge":
      return normRecipe(r.base);
  }
}

/**
 * The single source layer that stands for a recipe where one value must be picked (per-layer
 * hyper-parameters): copy → its source; interpolate → the nearer end (α ≤ 0.5 → a, else b);
 * merge → its base (the layer LaCo keeps the norms of).
 */
export function primarySource<S>(r: Recipe<S>): S {
  switch (r.kind) {
    case "copy":
      return r.src;
    case "interpolate":
      return primarySource(r.alpha <= 0.5 ? r.a : r.b);
    case "merge":
      return primarySource(r.base);
  }
}

/** Compact text of a recipe: `12`, `lerp(20, 22, 0.5)`, `merge(10, 11, 12)`. */
export function formatRecipe(r: Recipe<number | string>): string {
  switch (r.kind) {
    case "copy":
      return String(r.src);
    case "interpolate":
      return `lerp(${formatRecipe(r.a)}, ${formatRecipe(r.b)}, ${r.alpha})`;
    case "merge":
      return `merge(${[r.base, ...r.others].map(formatRecipe).join(", ")})`;
  }
}
