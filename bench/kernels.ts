// Kernel throughput, hquant vs llama.cpp, measured side by side in one process on one thread:
// MB of F32 input quantized per second of CPU time by hquant's WASM kernels (quantizeInto from
// src/quant/kernels.ts: rows copied into linear memory, quantized, copied out into the caller's
// array) and by llama.cpp's ggml_quantize_chunk (prebuilt libggml-base.so via koffi, writing into
// a preallocated array), per type, with and without an importance vector. A last column gives
// hquant with the rows already in linear memory (stagingRows/quantizeStaged: no copies), which is
// what the kernels themselves do. Also checks that all gave the same bytes.
//
//   npx tsx bench/kernels.ts [--rows 256] [--cols 4096] [--batch 64] [--rounds 5] [--types q4_K,q8_0]
//
// Robust on a shared machine: time is process CPU time (process.cpuUsage), not wall time, so time
// spent descheduled does not count; hquant and llama.cpp rounds alternate, so a slow phase of the
// machine hits both; each side's figure is its best round (a round repeats passes over the matrix
// for at least 50 ms of CPU time).
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { GGMLType, rowSize, typeByName, typeName } from "../src/gguf/ggml-types.js";
import { quantizeInto, quantizeStaged, stagingRows } from "../src/quant/kernels.js";
import { LLAMA_BINS, oracleQuantize } from "../test/oracle/ggml.js";

const TYPES: GGMLType[] = [
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
  GGMLType.IQ4_NL, GGMLType.IQ4_XS, GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S,
  GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.TQ1_0, GGMLType.TQ2_0, GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0,
  GGMLType.F16, GGMLType.BF16,
];
/** ggml_quantize_requires_imatrix: llama.cpp aborts on these without an importance vector, hquant refuses. */
const IMATRIX_ONLY = new Set<GGMLType>([GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S]);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const ROWS = Number(arg("rows", "256"));
const COLS = Number(arg("cols", "4096"));
const BATCH = Math.min(ROWS, Number(arg("batch", "64")));
const ROUNDS = Number(arg("rounds", "5"));
const ONLY = arg("types", "");
const MIN_ROUND_CPU = 0.05;
if (!(COLS % 256 === 0 && ROWS > 0 && BATCH > 0 && ROUNDS > 0)) throw new Error("--cols must be a multiple of 256; --rows, --batch, --rounds positive");
const types = ONLY ? ONLY.split(",").map((n) => {
  const t = typeByName(n);
  if (!t) throw new Error(`unknown type ${n}`);
  return t.id as GGMLType;
}) : TYPES;

/** Seeded gaussian weights (Box–Muller on mulberry32), per-row scale like a real weight matrix. */
function weights(rows: number, cols: number): Float32Array {
  let s = 0x2545f491;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scale = 0.01 + 0.05 * rand();
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()) * scale;
  }
  return out;
}

function importance(cols: number): Float32Array {
  const w = new Float32Array(cols);
  for (let c = 0; c < cols; c++) w[c] = 0.05 + ((c * 2654435761) % 1000) / 250 + (c % 64 === 3 ? 50 : 0);
  return w;
}

/** Quantizes rows [first, first+n) of the matrix into out (at that row's offset). */
type Quantizer = (type: GGMLType, src: Float32Array, first: number, n: number, imatrix: Float32Array | null, out: Uint8Array) => void;

const hquant: Quantizer = (type, src, first, n, imatrix, out) => {
  const rs = rowSize(type, COLS);
  quantizeInto(type, src.subarray(first * COLS, (first + n) * COLS), n, COLS, imatrix, out.subarray(first * rs, (first + n) * rs));
};

// ggml_quantize_chunk writing straight into our array (koffi passes typed arrays by pointer), so
// neither side allocates per call
const require = createRequire(import.meta.url);
const koffi = require("koffi") as typeof import("koffi");
const ggmlQuantizeChunk = koffi
  .load(path.join(LLAMA_BINS, "libggml-base.so"))
  .func("size_t ggml_quantize_chunk(int type, const void *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const void *imatrix)");
const llama: Quantizer = (type, src, first, n, imatrix, out) => {
  // start is an element index into src; ggml writes its rows at the matching offset of dst
  ggmlQuantizeChunk(type, src, out, first * COLS, n, COLS, imatrix);
};

/** CPU seconds (user + system) this process spent in f. */
function cpuSeconds(f: () => void): number {
  const t0 = process.cpuUsage();
  f();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / 1e6;
}

/**
 * One round: CPU seconds per pass over the whole matrix (in batches of BATCH rows), passes repeated
 * until the round has lasted MIN_ROUND_CPU seconds so that fast types are not timed on a few
 * hundred microseconds.
 */
function round(q: Quantizer, type: GGMLType, src: Float32Array, imatrix: Float32Array | null, out: Uint8Array, batch = BATCH): number {
  let passes = 0;
  let spent = 0;
  while (spent < MIN_ROUND_CPU) {
    spent += cpuSeconds(() => {
      for (let first = 0; first < ROWS; first += batch) q(type, src, first, Math.min(batch, ROWS - first), imatrix, out);
    });
    passes++;
  }
  return spent / passes;
}

/**
 * Best-of-ROUNDS MB/s of each side, rounds alternating (h: quantizeInto, the copying API; s: the
 * whole matrix already in linear memory, quantizeStaged; l: llama.cpp); and whether all outputs
 * agree with llama.cpp.
 */
function compare(type: GGMLType, src: Float32Array, imatrix: Float32Array | null): { h: number; s: number; l: number; same: boolean } {
  const bytes = rowSize(type, COLS) * ROWS;
  const outH = new Uint8Array(bytes);
  const outL = new Uint8Array(bytes);
  // warm-up: V8 first runs WASM through its baseline compiler and swaps in optimized code later
  for (let i = 0; i < 3; i++) {
    hquant(type, src, 0, 4, imatrix, outH);
    llama(type, src, 0, 4, imatrix, outL);
  }
  let staged = new Uint8Array(0);
  const inMemory: Quantizer = () => {
    staged = quantizeStaged(type, ROWS, COLS, imatrix);
  };
  let bestH = Infinity;
  let bestS = Infinity;
  let bestL = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    bestH = Math.min(bestH, round(hquant, type, src, imatrix, outH));
    // the other sides' calls reuse linear memory: stage the rows again (untimed)
    stagingRows(ROWS, COLS).set(src);
    bestS = Math.min(bestS, round(inMemory, type, src, imatrix, outH, ROWS));
    staged = staged.slice();
    bestL = Math.min(bestL, round(llama, type, src, imatrix, outL));
  }
  const reference = oracleQuantize(type, src, ROWS, COLS, imatrix);
  const same = [outH, staged, outL].every((out) => Buffer.from(out).equals(Buffer.from(reference)));
  const mb = (ROWS * COLS * 4) / 1e6;
  return { h: mb / bestH, s: mb / bestS, l: mb / bestL, same };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? "unknown";
}

const src = weights(ROWS, COLS);
const imat = importance(COLS);
const lines: string[] = [];
lines.push(`Machine: ${cpuModel()}, ${os.cpus().length} logical CPUs; Node ${process.version}; one thread each.`);
lines.push(
  `Input: ${ROWS}×${COLS} gaussian F32 weights in batches of ${BATCH} rows; MB of F32 input per CPU second, best of ${ROUNDS} alternating rounds (each ≥ ${MIN_ROUND_CPU * 1000} ms CPU).`,
);
lines.push("");
lines.push("| type | imatrix | hquant MB/s | llama.cpp MB/s | hquant / llama.cpp | same bytes | hquant, rows already in WASM memory (MB/s) |");
lines.push("|---|---|---:|---:|---:|---|---:|");
for (const type of types) {
  for (const imatrix of IMATRIX_ONLY.has(type) ? [imat] : [null, imat]) {
    const { h, s, l, same } = compare(type, src, imatrix);
    lines.push(
      `| ${typeName(type)} | ${imatrix ? "yes" : "no"} | ${h.toFixed(1)} | ${l.toFixed(1)} | ${(h / l).toFixed(2)}× | ${same ? "yes" : "**NO**"} | ${s.toFixed(1)} |`,
    );
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  }
}
console.log(lines.join("\n"));
