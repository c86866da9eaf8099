// Kernel throughput, hquant vs llama.cpp, measured side by side in one process on one thread:
// MB of F32 input quantized per second by hquant's WASM kernels (src/quant/kernels.ts quantizeRows)
// and by llama.cpp's ggml_quantize_chunk (prebuilt libggml-base.so via koffi), per type, with and
// without an importance vector. Also checks that both gave the same bytes.
//
//   npx tsx bench/kernels.ts [--rows 4096] [--cols 4096] [--batch 256] [--seconds 3] [--types q4_K,q8_0]
//
// Each measurement quantizes the rows×cols matrix in batches of --batch rows and stops early once
// --seconds have passed (at least one batch), so slow types still finish in bounded time; the figure
// is the median batch throughput.
import fs from "node:fs";
import os from "node:os";
import { GGMLType, rowSize, typeByName, typeName } from "../src/gguf/ggml-types.js";
import { quantizeRows } from "../src/quant/kernels.js";
import { oracleQuantize } from "../test/oracle/ggml.js";

const TYPES: GGMLType[] = [
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
  GGMLType.IQ4_NL, GGMLType.IQ4_XS, GGMLType.F16, GGMLType.BF16,
];

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const ROWS = Number(arg("rows", "4096"));
const COLS = Number(arg("cols", "4096"));
const BATCH = Math.min(ROWS, Number(arg("batch", "256")));
const SECONDS = Number(arg("seconds", "3"));
const ONLY = arg("types", "");
if (!(COLS % 256 === 0 && ROWS > 0 && BATCH > 0 && SECONDS > 0)) throw new Error("--cols must be a multiple of 256; --rows, --batch, --seconds positive");
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

type Quantizer = (type: GGMLType, src: Float32Array, nrows: number, ncols: number, imatrix: Float32Array | null) => Uint8Array;

/**
 * MB/s of F32 input (the median over batches: on a shared machine a batch hit by another process
 * should not decide the figure), and the bytes of the first batch (for the identity check).
 */
function measure(q: Quantizer, type: GGMLType, src: Float32Array, imatrix: Float32Array | null): { mbps: number; first: Uint8Array } {
  // Warm-up: V8 first runs WASM through its baseline compiler and swaps in the optimized code on a
  // later call, so a few small calls come first (llama.cpp's side gets the same treatment).
  for (let i = 0; i < 3; i++) q(type, src.subarray(0, 8 * COLS), 8, COLS, imatrix);
  let first: Uint8Array | undefined;
  const rates: number[] = [];
  let rowsDone = 0;
  const start = process.hrtime.bigint();
  while (rowsDone < ROWS) {
    const n = Math.min(BATCH, ROWS - rowsDone);
    const t0 = process.hrtime.bigint();
    const out = q(type, src.subarray(rowsDone * COLS, (rowsDone + n) * COLS), n, COLS, imatrix);
    rates.push((n * COLS * 4) / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9));
    first ??= out;
    rowsDone += n;
    if (Number(process.hrtime.bigint() - start) / 1e9 >= SECONDS) break;
  }
  rates.sort((a, b) => a - b);
  return { mbps: rates[Math.floor(rates.length / 2)], first: first! };
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
lines.push(`Input: ${ROWS}×${COLS} gaussian F32 weights, batches of ${BATCH} rows, up to ${SECONDS} s per measurement.`);
lines.push("");
lines.push("| type | imatrix | hquant MB/s | llama.cpp MB/s | hquant / llama.cpp | same bytes |");
lines.push("|---|---|---:|---:|---:|---|");
const hquant: Quantizer = (t, s, n, c, w) => quantizeRows(t, s, n, c, w);
const oracle: Quantizer = (t, s, n, c, w) => oracleQuantize(t, s, n, c, w);
for (const type of types) {
  for (const imatrix of [null, imat]) {
    const h = measure(hquant, type, src, imatrix);
    const l = measure(oracle, type, src, imatrix);
    const same = h.first.length === rowSize(type, COLS) * Math.min(BATCH, ROWS) && Buffer.from(h.first).equals(Buffer.from(l.first));
    lines.push(`| ${typeName(type)} | ${imatrix ? "yes" : "no"} | ${h.mbps.toFixed(1)} | ${l.mbps.toFixed(1)} | ${(h.mbps / l.mbps).toFixed(2)}× | ${same ? "yes" : "**NO**"} |`);
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  }
}
console.log(lines.join("\n"));
