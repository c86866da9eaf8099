// Writes golden vectors of the low-bit types from the live oracle (the prebuilt libggml-base's
// ggml_quantize_chunk and dequantize_row_*) into test/fixtures/lowbit/<type>/: for each input case
// of test/fixtures/kquant (A: 32×512, B: 32×256) and each mode, <case>_<mode>.q.bin (the quantized
// rows) and <case>_<mode>.deq_f32.bin (those rows dequantized). Modes: imat, and noimat unless
// ggml refuses the type without an importance matrix (ggml_quantize_requires_imatrix).
//
// usage: npx tsx scripts/gen-golden-lowbit.ts TYPE... (ggml names: iq2_xxs tq1_0 mxfp4 …)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { typeByName } from "../src/gguf/ggml-types.js";
import { oracleDequantize, oracleQuantize } from "../test/oracle/ggml.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const KQUANT = path.join(ROOT, "test/fixtures/kquant");
export const LOWBIT_DIR = path.join(ROOT, "test/fixtures/lowbit");

/** Types ggml_quantize_chunk aborts on without an importance matrix (ggml.c). */
export const REQUIRES_IMATRIX = new Set(["iq2_xxs", "iq2_xs", "iq1_s"]);

export interface GoldenCase { name: string; nrows: number; ncols: number; input: string; imatrix: string }

export function goldenCases(): GoldenCase[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(KQUANT, "manifest.json"), "utf8"));
  return Object.entries(manifest.cases as Record<string, Omit<GoldenCase, "name">>).map(([name, c]) => ({ name, ...c }));
}

export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(path.join(KQUANT, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function generate(tname: string): void {
  const info = typeByName(tname);
  if (!info) throw new Error(`unknown ggml type ${tname}`);
  const dir = path.join(LOWBIT_DIR, info.name);
  fs.mkdirSync(dir, { recursive: true });
  for (const c of goldenCases()) {
    const input = readF32(c.input);
    for (const mode of REQUIRES_IMATRIX.has(info.name) ? ["imat"] : ["noimat", "imat"]) {
      const q = oracleQuantize(info.id, input, c.nrows, c.ncols, mode === "imat" ? readF32(c.imatrix) : null);
      const deq = oracleDequantize(info.id, q, c.nrows, c.ncols);
      fs.writeFileSync(path.join(dir, `${c.name}_${mode}.q.bin`), q);
      fs.writeFileSync(path.join(dir, `${c.name}_${mode}.deq_f32.bin`), new Uint8Array(deq.buffer));
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const types = process.argv.slice(2);
  if (types.length === 0) {
    process.stderr.write("usage: gen-golden-lowbit.ts TYPE...\n");
    process.exit(2);
  }
  for (const t of types) generate(t);
}
