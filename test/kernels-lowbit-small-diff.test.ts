// Differential test of the TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0 and Q2_0 kernels against llama.cpp itself:
// the same rows go through hquant's WASM kernels and libggml-base's ggml_quantize_chunk (koffi
// oracle); the quantized bytes and the dequantized floats (compared as raw f32 bytes, so -0 and NaN
// count) must be identical. ggml ignores the importance matrix for all six types, so the bytes with
// one must equal both llama.cpp's with it and llama.cpp's without it. Per type: 3072 random rows over
// three row widths (1, 3 and 5..17 blocks), each batch also with an importance vector; 40 edge rows
// alone and together; every scale-exponent boundary of MXFP4; and the dequantization of random bytes.
import { describe, expect, it } from "vitest";
import { GGMLType, mustTypeInfo, typeName } from "../src/gguf/ggml-types.js";
import { NonFiniteRowError, quantizeRows } from "../src/quant/kernels.js";
import { oracleQuantize } from "./oracle/ggml.js";
import {
  allNegative, allPositive, compareWithLlama, concatRows, expectDequantizesLikeLlama, firstDiff, gauss, outliers,
  plainGaussian, prng, randomBlocks, randomRows, type RowKinds, type RowShape,
} from "./kernel-test-util.js";

const TYPES = [GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0];

const signedZerosSparse: RowShape = (v, _scale, _c, rand) => (rand() < 0.7 ? (rand() < 0.5 ? 0 : -0) : v);
const quarterTies: RowShape = (v, scale) => Math.round((v / scale) * 4) * scale * 0.25; // few distinct values (ties)
const fp4Grid: RowShape = (_v, scale, _c, rand) => (Math.round(rand() * 24) - 12) * scale; // on the FP4 grid of some scale
// 1e-8 .. 1e4: NVFP4's E4M3 scale under- and overflows at the ends
const ROWS: RowKinds = {
  minExp: -8,
  maxExp: 4,
  shapes: [plainGaussian, outliers, allPositive, allNegative, signedZerosSparse, quarterTies, fp4Grid],
};

/** ggml ignores it for these types: any weights will do. */
function ignoredImatrix(rand: () => number, ncols: number): Float32Array {
  return Float32Array.from({ length: ncols }, (_, c) => (c % 5 === 0 ? 0 : rand() * 4 + 1e-3));
}

const stepBits = new Uint32Array(1);
const stepFloat = new Float32Array(stepBits.buffer);
/** The float `ulps` steps (±1 or 0) away from the positive float v. */
function ulpStep(v: number, ulps: number): number {
  stepFloat[0] = v;
  stepBits[0] += ulps;
  return stepFloat[0];
}

/** Rows of n values (n a multiple of 256) that sit on the formats' edges. */
function edgeRows(rand: () => number, n: number): Float32Array[] {
  const fill = (f: (c: number) => number) => Float32Array.from({ length: n }, (_, c) => f(c));
  const fp4Mids = [0.5, 1.5, 2.5, 3.5, 5, 7, 10, 1];
  return [
    fill(() => 0),
    fill(() => -0),
    fill((c) => (c % 2 ? 0 : -0)),
    fill(() => 0.5),
    fill(() => -0.25),
    fill(() => 1e-3),
    fill((c) => (c === 77 ? 1000 : gauss(rand) * 0.01)),
    fill((c) => (c === 200 ? -3e4 : gauss(rand) * 1e-3)),
    fill((c) => (c % 64 === 0 ? 1 : 0)), // one outlier per block
    fill(() => gauss(rand) * 1e-30),
    fill(() => 1e-30),
    fill((c) => (c % 2 ? 1e-30 : -1e-30)),
    fill(() => gauss(rand) * 1e-38), // subnormal and near-subnormal
    fill((c) => (c % 3) * 1.4e-45), // smallest subnormals
    fill((c) => (c % 5 === 0 ? 5e-39 : c % 5 === 1 ? -2e-39 : 0)), // 1/d overflows to Inf
    fill((c) => (c % 4 === 0 ? 3e-39 : -1e-39)), // 1/d finite, d subnormal
    fill((c) => (c % 7 === 0 ? 1.2e-38 : -gauss(rand) * 1e-39)),
    fill(() => 65504),
    fill((c) => (c % 2 ? 65504 : -65504)),
    fill((c) => (c % 7 === 0 ? 65504 : gauss(rand))),
    fill((c) => (c % 9 === 0 ? 3e38 : c % 9 === 1 ? -3e38 : gauss(rand))), // sums overflow to Inf
    fill((c) => (c % 2 ? 1e19 : -1e19)),
    fill((c) => (c % 2 ? 1 : -1) + gauss(rand) * 0.001),
    fill(() => Math.abs(gauss(rand))),
    fill((c) => (c % 16) - 8),
    fill((c) => ((c * 7919) % 13) - 6),
    fill((c) => (c % 8 === 0 ? 1 : (c % 8 === 1 ? -0.5 : c % 8 === 2 ? 0.5 : gauss(rand) * 0.3))), // q/d ties at ±0.5
    fill((c) => (c % 8 === 0 ? 3 : (c % 4 === 1 ? 1.5 : c % 4 === 2 ? -1.5 : 0.75))), // ties at d = 3
    // FP4 ties (midpoints between neighbouring table values × d) and the floats just above and below
    // them: MXFP4 with amax 4 (d = 0.5), NVFP4 with amax 6 (d = 0.5) and 7.5 (d = 0.625)
    ...[4, 6, 7.5].flatMap((amax) => [0, 1, -1].map((ulps) => fill((c) => {
      const d = amax === 7.5 ? 0.625 : 0.5;
      return c % 16 === 0 ? amax : (c % 2 ? -1 : 1) * ulpStep(fp4Mids[c % 8] * d, ulps);
    }))),
    fill((c) => (c % 16 === 0 ? 2688 : gauss(rand) * 100)), // NVFP4 scale exactly 448
    fill((c) => (c % 16 === 0 ? 5000 : gauss(rand) * 1000)), // NVFP4 scale saturates
    fill((c) => (c % 16 === 0 ? 6 * 2 ** -9 : gauss(rand) * 1e-3)), // smallest E4M3 subnormal
    fill((c) => (c % 16 === 0 ? 6 * 2 ** -10 : gauss(rand) * 1e-4)), // E4M3 scale rounds to 0
    fill((c) => (c % 16 === 0 ? 6 * 0.0146484375 : gauss(rand) * 1e-2)), // E4M3 mantissa round-up carry
    fill((c) => (c % 32 === 0 ? 2 ** (c / 32 - 4) * (1 - 2 ** -24) : gauss(rand) * 0.01)), // just below powers of 2
    fill((c) => (c % 32 === 0 ? 2 ** -126 * 1.5 : 2 ** -130)), // MXFP4 exponent wraps below 2^-125
    fill((c) => (c < 128 ? 0 : gauss(rand))),
    // Q1_0's d = Σ|x|/128 lands on an f16 rounding tie only when summed in element order: block b
    // holds 2^-18 everywhere but at p_b, where B = T - p_b·2^-18; in order the p_b small ones add
    // up exactly, B brings the sum to T, and the rest are below half an ulp of T. Summed in any other
    // order, more or fewer of them count: T = 128(1 + 2^-11) (ties to even below) catches more,
    // T = 128(1 + 3·2^-11) (ties to even above) fewer
    ...[128 * (1 + 2 ** -11), 128 * (1 + 3 * 2 ** -11)].map((t) => fill((c) => {
      const p = [4, 8, 32, 64, 100, 124][Math.floor(c / 128) % 6];
      return (c % 2 ? -1 : 1) * (c % 128 === p ? t - p * 2 ** -18 : 2 ** -18);
    })),
  ];
}

/** compareWithLlama, and with an importance vector also that llama.cpp's bytes do not depend on it. */
function compare(type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): string {
  const msg = compareWithLlama(type, src, nrows, ncols, imatrix);
  if (msg || !imatrix) return msg;
  const plain = oracleQuantize(type, src, nrows, ncols, null);
  const expected = oracleQuantize(type, src, nrows, ncols, imatrix);
  return firstDiff(plain, expected) >= 0 ? `${typeName(type)} imatrix: llama.cpp's bytes depend on the importance vector` : "";
}

describe.each(TYPES.map((t) => [typeName(t), t] as const))("%s vs llama.cpp", (_name, type) => {
  const block = mustTypeInfo(type).blockSize;

  it("random rows, with and without an importance vector", () => {
    const rand = prng(0x10b17000 + type);
    for (const blocks of [1, 3, 0]) {
      for (let batch = 0; batch < 4; batch++) {
        // the third width: an odd block count from 5 to 17, one per batch
        const ncols = block * (blocks || [5, 7, 13, 17][batch]);
        const rows = 256;
        const src = randomRows(rand, rows, ncols, ROWS);
        expect(compare(type, src, rows, ncols, null)).toBe("");
        expect(compare(type, src, rows, ncols, ignoredImatrix(rand, ncols))).toBe("");
      }
    }
  });

  it("edge rows: zeros, constants, outliers, subnormals, rounding ties, scale over/underflow", () => {
    const rand = prng(0xed9e1000 + type);
    const ncols = 768; // an odd block count for the 256-blocks, and Q1_0's lanes of four blocks plus two alone
    const rows = edgeRows(rand, ncols);
    const src = concatRows(rows, ncols);
    for (const im of [null, ignoredImatrix(rand, ncols), new Float32Array(ncols)]) {
      // one call with all edge rows, and each row alone (a row's bytes must not depend on its batch)
      expect(compare(type, src, rows.length, ncols, im)).toBe("");
      rows.forEach((r, i) => expect(compare(type, r, 1, ncols, im), `edge row ${i}`).toBe(""));
    }
  });

  it("dequantizes arbitrary blocks exactly like llama.cpp", () => {
    const rand = prng(0xdec0d100 + type);
    expectDequantizesLikeLlama(type, randomBlocks(rand, type, 64, 768), 64, 768);
  });

  it("refuses a row holding NaN or Inf", () => {
    const src = new Float32Array(block * 4);
    src[block * 3 + 1] = Number.NaN;
    expect(() => quantizeRows(type, src, 4, block)).toThrow(new NonFiniteRowError(3));
    src[block * 3 + 1] = -Infinity;
    expect(() => quantizeRows(type, src, 4, block)).toThrow("row 3 contains NaN or Inf");
  });
});

describe("tq1_0 trit packing vs llama.cpp", () => {
  it("gives llama.cpp's byte for every combination of five trits", () => {
    // block b, qs byte p packs combination (48b + p) mod 243 of the trits -1, 0, 1 (the first the most
    // significant); p < 32 takes x[p + 32n], p >= 32 takes x[160 + (p - 32) + 16n]; x[240..256) are the qh trits
    const nblocks = 6;
    const src = new Float32Array(nblocks * 256);
    for (let b = 0; b < nblocks; b++) {
      for (let p = 0; p < 48; p++) {
        const combo = (48 * b + p) % 243;
        for (let n = 0; n < 5; n++) {
          const trit = Math.floor(combo / 3 ** (4 - n)) % 3;
          const at = p < 32 ? p + 32 * n : 160 + (p - 32) + 16 * n;
          src[b * 256 + at] = (trit - 1) * 0.75;
        }
      }
      for (let j = 240; j < 256; j++) src[b * 256 + j] = ((j + b) % 3) - 1;
    }
    expect(compare(GGMLType.TQ1_0, src, 1, nblocks * 256, null)).toBe("");
  });
});

describe("mxfp4 scale exponent vs llama.cpp", () => {
  // e = floorf(log2f(amax)) - 2 + 127: log2f rounds up to the next integer for values close enough
  // below a power of two, and the subnormal ones have few mantissa bits. One block per amax: the
  // 512 floats below every power of two from 2^-149 to 2^128, and every 97th subnormal.
  it("gives llama.cpp's E8M0 byte for every amax near a power of two", () => {
    const amaxBits: number[] = [];
    for (let e = 1; e <= 255; e++) for (let m = 1; m <= 512; m++) amaxBits.push(e * 0x800000 - m);
    for (let j = 1; j <= 23; j++) for (let m = 1; m <= Math.min(512, (1 << j) - 1); m++) amaxBits.push((1 << j) - m);
    for (let b = 1; b < 0x800000; b += 97) amaxBits.push(b);
    const bitsView = new Uint32Array(1);
    const asFloat = new Float32Array(bitsView.buffer);
    const nblocks = amaxBits.length;
    const src = new Float32Array(nblocks * 32);
    amaxBits.forEach((bits, i) => {
      bitsView[0] = bits;
      src[i * 32 + (i % 32)] = i % 2 ? -asFloat[0] : asFloat[0];
      src[i * 32 + ((i + 7) % 32)] = asFloat[0] / 3;
    });
    const chunk = 4096;
    for (let first = 0; first < nblocks; first += chunk) {
      const n = Math.min(chunk, nblocks - first);
      const part = src.subarray(first * 32, (first + n) * 32);
      const msg = compare(GGMLType.MXFP4, part, n, 32, null);
      expect(msg, `blocks ${first}..${first + n}`).toBe("");
    }
  });
});
