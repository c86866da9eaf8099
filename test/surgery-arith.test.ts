// The f32 arithmetic of interpolate and merge: checked against the formulas written out here
// separately (rounding through a Float32Array cell, not Math.fround), bit for bit; α = 0 / 1
// give the sources exactly; F16/BF16 inputs are converted exactly before combining.
import { describe, expect, it } from "vitest";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { combineRows } from "../src/surgery/arith.js";
import { surgeryChunkF32 } from "../src/surgery/chunk.js";
import { applySurgery, type Recipe } from "../src/surgery/ops.js";
import { surgeryTensors } from "../src/surgery/tensors.js";
import { f32ToBf16Bits, f32ToF16Bits, xorshift32 } from "./factory.js";

const cell = new Float32Array(1);
/** round to f32 by storing (independent of Math.fround) */
const f = (x: number): number => ((cell[0] = x), cell[0]);

function randomRows(n: number, seed: number, scale = 1): Float32Array {
  const next = xorshift32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() / 2 ** 32 - 0.5) * scale * (1 + (i % 7) * 13.7);
  return out;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const copy = (src: number): Recipe<number> => ({ kind: "copy", src });

/** LaCo as written: θ_l + (θ_{l+1} − θ_l) + (θ_{l+2} − θ_l) …, one f32 rounding per operation */
function lacoReference(layers: Float32Array[]): Float32Array {
  const [base, ...others] = layers;
  return base!.map((b, i) => {
    let acc = b;
    for (const o of others) {
      const diff = f(o[i]! - b);
      acc = f(acc + diff);
    }
    return acc;
  });
}

/** (1−α)·a + α·b as written, in f32 */
function lerpReference(a: Float32Array, b: Float32Array, alpha: number): Float32Array {
  const wa = f(1 - alpha);
  const wb = f(alpha);
  return a.map((x, i) => f(f(wa * x) + f(wb * b[i]!)));
}

describe("combineRows", () => {
  const N = 4099;
  const layers = [1, 2, 3, 4, 5].map((s) => randomRows(N, s, s));

  it("interpolate equals (1−α)·a + α·b in f32, bit for bit", () => {
    for (const alpha of [0.5, 0.25, 0.1, 0.9, 1 / 3]) {
      const out = combineRows({ kind: "interpolate", a: copy(0), b: copy(1), alpha }, layers, new Float32Array(N));
      expect(bits(out)).toEqual(bits(lerpReference(layers[0]!, layers[1]!, alpha)));
    }
  });

  it("interpolate with α = 0 and α = 1 gives the sources exactly (formula and recipe)", () => {
    const [a, b] = [layers[0]!, layers[1]!];
    expect(bits(combineRows({ kind: "interpolate", a: copy(0), b: copy(1), alpha: 0 }, [a, b], new Float32Array(N)))).toEqual(bits(a));
    expect(bits(combineRows({ kind: "interpolate", a: copy(0), b: copy(1), alpha: 1 }, [a, b], new Float32Array(N)))).toEqual(bits(b));
    // with signed zeros the literal formula would give +0 for a −0; the op makes α=0/1 copies
    const az = Float32Array.from([-0, 1.5, -0, 2]);
    const bz = Float32Array.from([3, -0, 0, -0]);
    for (const [alpha, want] of [[0, az], [1, bz]] as const) {
      const recipe = surgeryTensors(
        [0, 1].map((l) => ({ name: `blk.${l}.ffn_up.weight`, shape: [4], type: GGMLType.F32 })),
        applySurgery(2, [{ op: "interpolate", a: 0, b: 1, alpha, after: 1 }]),
      ).find((t) => t.name === "blk.2.ffn_up.weight")!;
      const out = combineRows(recipe.recipe, recipe.inputs.map((n) => (n === "blk.0.ffn_up.weight" ? az : bz)), new Float32Array(4));
      expect(bits(out)).toEqual(bits(want));
    }
  });

  it("merge equals the LaCo formula step by step in f32 (2, 3 and 5 layers)", () => {
    for (const count of [2, 3, 5]) {
      const recipe: Recipe<number> = { kind: "merge", base: copy(0), others: layers.slice(1, count).map((_, k) => copy(k + 1)) };
      const out = combineRows(recipe, layers.slice(0, count), new Float32Array(N));
      const want = lacoReference(layers.slice(0, count));
      expect(bits(out)).toEqual(bits(want));
    }
  });

  it("f32 order matters: the same formula in double, rounded once, differs", () => {
    const [b, o1, o2] = layers as [Float32Array, Float32Array, Float32Array];
    const inDouble = b.map((x, i) => x + (o1[i]! - x) + (o2[i]! - x));
    const out = combineRows({ kind: "merge", base: copy(0), others: [copy(1), copy(2)] }, layers, new Float32Array(N));
    expect(bits(out)).not.toEqual(bits(inDouble));
  });

  it("nested recipes evaluate children first, each in f32", () => {
    const recipe: Recipe<number> = {
      kind: "interpolate",
      a: { kind: "merge", base: copy(0), others: [copy(1)] },
      b: copy(2),
      alpha: 0.3,
    };
    const want = lerpReference(lacoReference([layers[0]!, layers[1]!]), layers[2]!, 0.3);
    expect(bits(combineRows(recipe, layers, new Float32Array(N)))).toEqual(bits(want));
  });

  it("a copy recipe copies", () => {
    expect(bits(combineRows(copy(3), layers, new Float32Array(N)))).toEqual(bits(layers[3]!));
  });
});

/** IEEE half → f32, written out (independent of the kernels) */
function halfToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe("surgeryChunkF32: inputs converted to f32, then combined", () => {
  it("F16 and BF16 inputs", () => {
    const nrows = 3;
    const ncols = 64;
    const a = randomRows(nrows * ncols, 11);
    const b = randomRows(nrows * ncols, 12);
    const aHalf = Uint16Array.from(a, f32ToF16Bits);
    const bBf16 = Uint16Array.from(b, f32ToBf16Bits);
    const recipe: Recipe<number> = { kind: "interpolate", a: copy(0), b: copy(1), alpha: 0.5 };
    const out = surgeryChunkF32(
      recipe,
      [
        { type: GGMLType.F16, data: aHalf.slice().buffer },
        { type: GGMLType.BF16, data: bBf16.slice().buffer },
      ],
      nrows,
      ncols,
    );
    const aF32 = Float32Array.from(aHalf, halfToF32);
    const bF32 = Float32Array.from(bBf16, (x) => new Float32Array(new Uint32Array([x << 16]).buffer)[0]!);
    expect(bits(out)).toEqual(bits(lerpReference(aF32, bF32, 0.5)));
  });

  it("F32 inputs are used as stored", () => {
    const a = randomRows(128, 21);
    const b = randomRows(128, 22);
    const c = randomRows(128, 23);
    const recipe: Recipe<number> = { kind: "merge", base: copy(0), others: [copy(1), copy(2)] };
    const out = surgeryChunkF32(recipe, [a, b, c].map((x) => ({ type: GGMLType.F32, data: x.slice().buffer })), 2, 64);
    expect(bits(out)).toEqual(bits(lacoReference([a, b, c])));
  });
});
