// The IQ lattices' search tables built by the kernels (kernels/iq-neighbours.ts, which takes the
// distance buckets in order instead of sorting) against a direct re-derivation of ggml's
// iq2xs_init_impl / iq3xs_init_impl: sort every (squared distance, index) pair, keep the first nwant
// distinct distances. Whole tables for the IQ3 lattices, every 7th code word for the larger ones,
// whose code words with a level 3 (never looked up: the quantizers clamp levels to 0…2) have none.
import { describe, expect, it } from "vitest";
import { readIqGrids } from "../scripts/gen-iq-grids.js";
import { IQ_LATTICES, iqLatticeTables } from "../src/quant/kernels.js";

/** kernels/iq-neighbours.ts's NO_LIST. */
const NO_LIST = -(2 ** 31);

const SPEC = {
  IQ2XXS: { mapSize: 43692, nwant: 2, entries: 119462, stride: 7 },
  IQ2XS: { mapSize: 43692, nwant: 2, entries: 187770, stride: 7 },
  IQ2S: { mapSize: 43692, nwant: 1, entries: 50253, stride: 7 },
  IQ1S: { mapSize: 43692, nwant: 3, entries: 332234, stride: 7 },
  IQ3XXS: { mapSize: 4096, nwant: 2, entries: 22825, stride: 1 },
  IQ3S: { mapSize: 4096, nwant: 3, entries: 28317, stride: 1 },
} as const;

describe("IQ lattice search tables", () => {
  const grids = readIqGrids();
  it.each(grids.map((g) => [g.name, g] as const))("%s", (name, g) => {
    const spec = SPEC[name as keyof typeof SPEC];
    const t = iqLatticeTables(IQ_LATTICES[name as keyof typeof IQ_LATTICES], g.size, g.coords, spec.mapSize, spec.entries);
    const mask = (1 << g.bits) - 1;
    const posOf = (u: number) => Array.from({ length: g.coords }, (_, k) => 2 * ((u >> (g.bits * k)) & mask) + 1);
    const points = g.codes.map(posOf);
    expect(Array.from(t.positions)).toEqual(points.flat());
    g.codes.forEach((c, i) => expect(t.map[c]).toBe(i));
    let offGrid = 0;
    for (let u = 0; u < spec.mapSize; u++) {
      if (t.map[u]! >= 0) {
        expect(g.codes[t.map[u]!]).toBe(u);
        continue;
      }
      offGrid++;
      if (g.bits === 2 && (u & (u >> 1) & 0x5555) !== 0) {
        expect(t.map[u]).toBe(NO_LIST);
        continue;
      }
      if (u % spec.stride !== 0) continue;
      const p = posOf(u);
      const pairs = points.map((q, j) => [q.reduce((s, v, k) => s + (v - p[k]!) ** 2, 0), j] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const keep = [...new Set(pairs.map((x) => x[0]))].slice(0, spec.nwant);
      const want = pairs.filter((x) => keep.includes(x[0])).map((x) => x[1]);
      const at = -t.map[u]! - 1;
      expect([t.neighbours[at], ...t.neighbours.subarray(at + 1, at + 1 + t.neighbours[at]!)]).toEqual([want.length, ...want]);
    }
    expect(offGrid).toBe(spec.mapSize - g.size);
  });
});
