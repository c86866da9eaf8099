// Fuzz seeds: the bundled model's real header (its 29 MB of data stand in as zeros) and small
// factory models covering every value type, MoE 3-D tensors and a tied one-layer model.
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import path from "node:path";
import { GGUFValueType } from "../src/gguf/model.js";
import { allLayouts, makeModel, SMALL_LLAMA } from "./factory.js";
import { seedFromBytes, type FuzzSeed } from "./fuzz-core.js";

/** The first `n` bytes of a file (the header of a big model; its data is never read). */
function head(file: string, n: number): Uint8Array {
  const fd = openSync(file, "r");
  try {
    const buf = new Uint8Array(n);
    readSync(fd, buf, 0, n, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

export async function fuzzSeeds(dir: string, root: string): Promise<FuzzSeed[]> {
  const bundled = path.join(root, "models/tinyllama-16l-f16.gguf");
  const seeds = [seedFromBytes("tinyllama-16l-f16", head(bundled, 102688 + 64), statSync(bundled).size)];
  const small = [
    { ...SMALL_LLAMA, nVocab: 32, seed: 21, extraKV: [
      { key: "x.u64", type: GGUFValueType.UINT64, value: 2n ** 60n },
      { key: "x.f64", type: GGUFValueType.FLOAT64, value: 0.5 },
      { key: "x.arr.u8", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.UINT8, value: [1, 2, 3] },
      { key: "x.i16", type: GGUFValueType.INT16, value: -7 },
    ] },
    { ...allLayouts()[10], nVocab: 32, nExpert: 2, seed: 22 },
    { ...SMALL_LLAMA, nLayer: 1, nVocab: 32, nEmbd: 32, nFf: 32, dtype: "f32" as const, tied: true, seed: 23 },
  ];
  for (const o of small) {
    const file = await makeModel({ ...o, dir });
    seeds.push(seedFromBytes(path.basename(file), readFileSync(file)));
  }
  return seeds;
}
