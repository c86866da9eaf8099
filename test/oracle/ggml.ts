// Live llama.cpp oracle: calls the prebuilt libggml-base.so shipped by the npm package
// @node-llama-cpp/linux-x64@3.21.1 through koffi. Used only by tests and bench scripts to check
// hquant's bytes against llama.cpp's own ggml_quantize_chunk / dequantize_row_* / fp16 helpers.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GGMLType, typeName, rowSize } from "../../src/gguf/ggml-types.js";

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require("koffi") as typeof import("koffi");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const LLAMA_BINS = path.join(ROOT, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");

let lib: ReturnType<typeof koffi.load> | undefined;
function ggml() {
  lib ??= koffi.load(path.join(LLAMA_BINS, "libggml-base.so"));
  return lib;
}

type Fn = (...args: unknown[]) => unknown;
const fnCache = new Map<string, Fn>();
function fn(decl: string): Fn {
  let f = fnCache.get(decl);
  if (!f) {
    f = ggml().func(decl) as unknown as Fn;
    fnCache.set(decl, f);
  }
  return f;
}

/** llama.cpp's ggml_quantize_chunk over whole rows: returns the quantized bytes. */
export function oracleQuantize(
  type: GGMLType,
  src: Float32Array,
  nrows: number,
  ncols: number,
  imatrix?: Float32Array | null,
): Uint8Array {
  if (src.length !== nrows * ncols) throw new Error("oracleQuantize: src length mismatch");
  const dst = new Uint8Array(rowSize(type, ncols) * nrows);
  const quantize = fn(
    "size_t ggml_quantize_chunk(int type, const float *src, _Out_ uint8_t *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)",
  );
  const written = quantize(type, src, dst, 0, nrows, ncols, imatrix ?? null) as number;
  if (written !== dst.length) throw new Error(`oracleQuantize: wrote ${written}, expected ${dst.length}`);
  return dst;
}

/**
 * ggml_quantize_init(type) on a koffi worker thread: the IQ lattice types build their tables on
 * first use, seconds of CPU that would otherwise block the test runner's event loop.
 */
export function oracleQuantizeInit(type: GGMLType): Promise<void> {
  const init = ggml().func("void ggml_quantize_init(int type)") as unknown as { async: (type: number, cb: (err: unknown) => void) => void };
  return new Promise((resolve, reject) => init.async(type, (err) => (err ? reject(err) : resolve())));
}

/** llama.cpp's dequantize_row_<type> (or the fp16/bf16 row converters) over whole rows. */
export function oracleDequantize(type: GGMLType, src: Uint8Array, nrows: number, ncols: number): Float32Array {
  const n = nrows * ncols;
  const out = new Float32Array(n);
  if (type === GGMLType.F32) {
    out.set(new Float32Array(src.buffer, src.byteOffset, n));
    return out;
  }
  const name =
    type === GGMLType.F16 ? "ggml_fp16_to_fp32_row" : type === GGMLType.BF16 ? "ggml_bf16_to_fp32_row" : `dequantize_row_${typeName(type)}`;
  const f = fn(`void ${name}(const uint8_t *x, _Out_ float *y, int64_t k)`);
  f(src, out, n);
  return out;
}

/** ggml_row_size from the reference library (for checking the type table). */
export function oracleRowSize(type: number, ncols: number): number {
  return fn("size_t ggml_row_size(int type, int64_t ne)")(type, ncols) as number;
}

export function oracleTypeName(type: number): string {
  return fn("const char *ggml_type_name(int type)")(type) as string;
}
export function oracleBlockSize(type: number): number {
  return Number(fn("int64_t ggml_blck_size(int type)")(type));
}
export function oracleTypeSize(type: number): number {
  return Number(fn("size_t ggml_type_size(int type)")(type));
}
