// Differential test of the IQ3 kernels (iq3_xxs, iq3_s) against llama.cpp itself: the same rows go
// through hquant's WASM kernels and libggml-base's ggml_quantize_chunk (koffi oracle); the quantized
// bytes and the dequantized floats (compared as raw f32 bytes) must be identical, with and without
// an importance vector. Per type: 2304 random rows without and 1152 with importance vectors (rows of
// 1, 2, 3 and 5 super-blocks), 38 edge rows × 6 importance vectors, one call and row by row, and the
// dequantization of random bytes. Rows whose values are so large that ggml's neighbour search
// overflows make ggml abort (GGML_ASSERT): hquant refuses exactly those, checked in child processes.
import { describe, expect, it } from "vitest";
import { GGMLType, rowSize, typeName } from "../src/gguf/ggml-types.js";
import { dequantizeRows, quantizeRows, ReferenceAbortRowError } from "../src/quant/kernels.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";
import { oracleQuantizeIsolated } from "./oracle/ggml-isolated.js";
import { firstDiff, prng } from "./kernel-test-util.js";

const QK_K = 256;
const IQ3_TYPES = [GGMLType.IQ3_XXS, GGMLType.IQ3_S];

function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** One random row in one of several shapes real weights (and worse) take. */
function randomRow(rand: () => number, ncols: number): Float32Array {
  const row = new Float32Array(ncols);
  const scale = 10 ** (rand() * 6 - 4); // 1e-4 .. 1e2
  const kind = Math.floor(rand() * 8);
  for (let c = 0; c < ncols; c++) {
    let v = gauss(rand) * scale;
    if (kind === 1 && rand() < 0.02) v *= 30; // outliers
    if (kind === 2) v = Math.abs(v); // all positive
    if (kind === 3) v = -Math.abs(v) - scale * 0.1; // all negative
    if (kind === 4 && rand() < 0.7) v = 0; // sparse
    if (kind === 5) v = Math.round((v / scale) * 2) * scale; // few distinct values (ties)
    if (kind === 6 && (c >> 5) % 3 === 1) v = 0; // whole sub-blocks of zeros
    if (kind === 7 && rand() < 0.5) v = -v * 1e-3; // many tiny values of the other sign
    row[c] = v;
  }
  return row;
}

function randomImatrix(rand: () => number, ncols: number, zeros: number): Float32Array {
  const w = new Float32Array(ncols);
  for (let c = 0; c < ncols; c++) {
    const u = rand();
    w[c] = rand() < zeros ? 0 : u * u * 4 + 1e-3 * rand();
    if (c % 61 === 7) w[c] *= 40;
  }
  return w;
}

const EDGE_COLS = QK_K * 2;

function edgeRows(rand: () => number): Float32Array[] {
  const fill = (f: (c: number) => number) => Float32Array.from({ length: EDGE_COLS }, (_, c) => f(c));
  return [
    fill(() => 0),
    fill(() => -0),
    fill(() => 0.5),
    fill(() => -0.25),
    fill(() => 1e-3),
    fill((c) => (c === 77 ? 1000 : gauss(rand) * 0.01)),
    fill((c) => (c === 300 ? -3e4 : gauss(rand) * 1e-3)),
    fill(() => gauss(rand) * 1e-30),
    fill(() => 1e-30),
    fill((c) => (c % 2 ? 1e-30 : -1e-30)),
    fill(() => gauss(rand) * 1e-38), // subnormal and near-subnormal
    fill((c) => (c % 3) * 1.4e-45), // smallest subnormals
    fill((c) => (c % 5 === 0 ? 5e-39 : 0)),
    fill(() => 65504),
    fill(() => -65504),
    fill((c) => (c % 2 ? 65504 : -65504)),
    fill((c) => (c % 7 === 0 ? 65504 : gauss(rand))),
    fill((c) => (c % 2 ? 1 : -1) + gauss(rand) * 0.001),
    fill(() => -Math.abs(gauss(rand))), // all negative
    fill(() => Math.abs(gauss(rand))),
    fill((c) => (c % 16) - 8),
    fill((c) => ((c * 7919) % 13) - 6),
    fill((c) => (c < QK_K ? 0 : gauss(rand))),
    fill((c) => (c % 32 === 0 ? gauss(rand) : 0)),
    fill(() => gauss(rand) * 1e4),
    fill(() => gauss(rand) * 3e5),
    fill((c) => (c % 32 < 8 ? 0 : gauss(rand))),
    fill((c) => (c % 64 < 32 ? 0 : gauss(rand))), // every other sub-block zero
    fill((c) => ((c >> 5) % 2 ? 1e-9 : gauss(rand))), // sub-blocks below IQ3_XXS's threshold
    fill((c) => ((c >> 5) === 3 ? gauss(rand) : 0)), // one sub-block alone
    fill((c) => (c % 8 === 0 ? -1 : 0.5)), // one minus sign per group of eight (parity fix-up)
    fill((c) => (c % 8 < 3 ? -(gauss(rand) ** 2) : 1)), // odd minus signs, all of one size
    fill((c) => [3, 3, 3, 3, 1, 1, 1, 1][c % 8]! * 0.01), // scales tie
    fill(() => gauss(rand) * 1e9),
    // ggml aborts on these (the search's squared distances overflow to Inf)
    fill((c) => (c === 5 ? 1e-20 : c === 6 ? -1e20 : 0)),
    fill((c) => (c % 9 === 0 ? 3e38 : c % 9 === 1 ? -3e38 : gauss(rand))),
    fill((c) => (c % 2 ? 1e19 : -1e19)),
    fill(() => gauss(rand) * 1e15),
  ];
}

/** Quantize with both, compare bytes then dequantized floats; returns a message or "" when equal. */
function compare(type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null): string {
  const expected = oracleQuantize(type, src, nrows, ncols, imatrix);
  const got = quantizeRows(type, src, nrows, ncols, imatrix);
  const at = firstDiff(got, expected);
  if (at >= 0) {
    const rs = rowSize(type, ncols);
    return `${typeName(type)} ${imatrix ? "imatrix" : "plain"} ${nrows}×${ncols}: bytes differ at ${at} (row ${Math.floor(at / rs)}, byte ${at % rs} of the row)`;
  }
  const deqGot = new Uint8Array(dequantizeRows(type, got, nrows, ncols).buffer);
  const deqExp = new Uint8Array(oracleDequantize(type, expected, nrows, ncols).buffer);
  const dat = firstDiff(deqGot, deqExp);
  if (dat >= 0) return `${typeName(type)} ${imatrix ? "imatrix" : "plain"}: dequantized floats differ at element ${dat >> 2}`;
  return "";
}

/** Whether hquant refuses the row as one ggml aborts on (any other error fails the test). */
function refused(type: GGMLType, row: Float32Array, imatrix: Float32Array | null): boolean {
  try {
    quantizeRows(type, row, 1, row.length, imatrix);
    return false;
  } catch (e) {
    if (e instanceof ReferenceAbortRowError) return true;
    throw e;
  }
}

const maxAbs = (r: Float32Array) => r.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe.each(IQ3_TYPES.map((t) => [typeName(t), t] as const))("%s vs llama.cpp", (_name, type) => {
  it("random rows, no importance vector (1, 2, 3 and 5 super-blocks a row)", () => {
    const rand = prng(0x1b3a0000 + type);
    for (const [ncols, nrows] of [[256, 1024], [512, 512], [768, 384], [1280, 384]] as const) {
      const src = new Float32Array(nrows * ncols);
      for (let r = 0; r < nrows; r++) src.set(randomRow(rand, ncols), r * ncols);
      expect(compare(type, src, nrows, ncols, null)).toBe("");
    }
  });

  it("random rows with importance vectors (some with zero weights)", () => {
    const rand = prng(0x1b3b0000 + type);
    for (const [ncols, zeros] of [[256, 0], [512, 0.1], [768, 0.5], [1280, 0.9]] as const) {
      for (let batch = 0; batch < 3; batch++) {
        const nrows = 96;
        const src = new Float32Array(nrows * ncols);
        for (let r = 0; r < nrows; r++) src.set(randomRow(rand, ncols), r * ncols);
        expect(compare(type, src, nrows, ncols, randomImatrix(rand, ncols, zeros))).toBe("");
      }
    }
  });

  const rand = prng(0x1b3c0000 + type);
  const rows = edgeRows(rand);
  const imatrices: (Float32Array | null)[] = [
    null,
    randomImatrix(rand, EDGE_COLS, 0),
    randomImatrix(rand, EDGE_COLS, 0.5),
    new Float32Array(EDGE_COLS), // all zero weights
    Float32Array.from({ length: EDGE_COLS }, (_, c) => (c < 40 ? 0 : 1)),
    Float32Array.from({ length: EDGE_COLS }, (_, c) => (c % 16 === 3 ? 1e-30 : 1)),
  ];

  it("edge rows: zeros, constants, outliers, tiny, subnormal, ±65504, all negative, zero sub-blocks, ties", () => {
    for (const im of imatrices) {
      const kept = rows.filter((r) => !refused(type, r, im));
      // every row of moderate magnitude is quantized (ggml handles those)
      for (const r of rows) if (maxAbs(r) <= 1e9) expect(kept).toContain(r);
      // one call with all of them, and each row alone (a row's bytes must not depend on its batch)
      const src = new Float32Array(kept.length * EDGE_COLS);
      kept.forEach((r, i) => src.set(r, i * EDGE_COLS));
      expect(compare(type, src, kept.length, EDGE_COLS, im)).toBe("");
      for (const r of kept) expect(compare(type, r, 1, EDGE_COLS, im)).toBe("");
    }
  });

  it("refuses exactly the rows ggml aborts on, with a one-line error", () => {
    // in a child process (the refused row last: it kills the child): two accepted rows give the
    // same bytes as in process, the refused one aborts ggml; without an importance vector for
    // iq3_xxs, with one for iq3_s
    const im = type === GGMLType.IQ3_XXS ? null : imatrices[1]!;
    const refusedRows = rows.filter((r) => refused(type, r, im));
    expect(refusedRows.length).toBeGreaterThan(0);
    const results = oracleQuantizeIsolated(type, [rows[5]!, rows[17]!, refusedRows[0]!], EDGE_COLS, im);
    expect(results[0]).toEqual({ bytes: quantizeRows(type, rows[5]!, 1, EDGE_COLS, im) });
    expect(results[1]).toEqual({ bytes: quantizeRows(type, rows[17]!, 1, EDGE_COLS, im) });
    expect(results[2]).toMatchObject({ aborted: expect.stringMatching(/GGML_ASSERT/) });
    const batch = new Float32Array(3 * EDGE_COLS);
    batch.set(rows[0]!, 0);
    batch.set(rows[2]!, EDGE_COLS);
    batch.set(rows[rows.length - 1]!, 2 * EDGE_COLS);
    expect(() => quantizeRows(type, batch, 3, EDGE_COLS, null)).toThrow(
      new ReferenceAbortRowError(2, type),
    );
    expect(new ReferenceAbortRowError(2, type).message).toBe(
      `row 2 cannot be quantized to ${typeName(type)}: its values are too large (llama.cpp's quantizer aborts on it)`,
    );
  });

  it("dequantizes arbitrary blocks exactly like llama.cpp (NaN and Inf scales too)", () => {
    const r = prng(0xdec03000 + type);
    const nrows = 64;
    const ncols = 512;
    const bytes = new Uint8Array(rowSize(type, ncols) * nrows);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
    // some fp16 scales NaN / Inf
    const bs = rowSize(type, QK_K);
    for (let b = 0; b < 8; b++) {
      bytes[b * 7 * bs] = b % 2 ? 0x00 : 0x01;
      bytes[b * 7 * bs + 1] = b < 4 ? 0x7c : 0xfc;
    }
    const got = new Uint8Array(dequantizeRows(type, bytes, nrows, ncols).buffer);
    const exp = new Uint8Array(oracleDequantize(type, bytes, nrows, ncols).buffer);
    expect(firstDiff(got, exp)).toBe(-1);
  });
});
