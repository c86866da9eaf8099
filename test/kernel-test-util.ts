// Helpers shared by the kernel tests against llama.cpp (kernels-*-diff, kernels-batch-shapes).
import { expect } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";

/** mulberry32: small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the first byte where a and b differ (the shorter length if one is a prefix), -1 if equal. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Fails naming the first byte (and, given ncols, its row and place in the row) where got differs from llama.cpp's want. */
export function expectSameBytes(type: GGMLType, what: string, got: Uint8Array, want: Uint8Array, ncols?: number): void {
  const i = firstDiff(got, want);
  if (i < 0) return;
  const rs = ncols === undefined ? 0 : rowSize(type, ncols);
  const where = rs ? ` (row ${Math.floor(i / rs)}, byte ${i % rs} of the row)` : "";
  expect.fail(`${typeName(type)} ${what}: first differing byte ${i}${where}: ${got[i]} vs llama.cpp ${want[i]}`);
}
