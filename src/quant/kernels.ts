// JS side of the WebAssembly kernels (kernels/*.ts → build/kernels.wasm).
// One instance per thread (the main thread or a pool worker). The caller's rows are copied into
// linear memory after the kernels' static data, quantized there and copied out: a batch of rows
// per call, so the JS↔WASM crossing is negligible next to the arithmetic.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { GGMLType, mustTypeInfo, rowSize, typeName } from "../gguf/ggml-types.js";

interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  quantize(type: number, src: number, dst: number, nrows: number, ncols: number, imatrix: number): number;
  dequantize(type: number, src: number, dst: number, k: number): number;
}

export const WASM_PATH = fileURLToPath(new URL("../../build/kernels.wasm", import.meta.url));

/** A row holds NaN or ±Inf: llama.cpp would quantize garbage, hquant refuses. */
export class NonFiniteRowError extends Error {
  constructor(readonly row: number) {
    super(`row ${row} contains NaN or Inf`);
  }
}

let instance: KernelExports | undefined;

function kernels(): KernelExports {
  if (!instance) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(WASM_PATH);
    } catch {
      throw new Error(`kernels not built: ${WASM_PATH} is missing (run npm run build:kernels)`);
    }
    const mod = new WebAssembly.Module(new Uint8Array(bytes));
    instance = new WebAssembly.Instance(mod, { env: { abort: kernelAbort } }).exports as unknown as KernelExports;
  }
  return instance;
}

function kernelAbort(): never {
  throw new Error("kernel abort");
}

/** Make linear memory at least `bytes` long past the heap base; returns the heap base. */
function reserve(k: KernelExports, bytes: number): number {
  const base = (k.heapBase() + 63) & ~63;
  const need = base + bytes;
  const have = k.memory.buffer.byteLength;
  if (need > have) k.memory.grow(Math.ceil((need - have) / 65536));
  return base;
}

const align = (n: number) => (n + 63) & ~63;

/**
 * Quantize `nrows` rows of `ncols` floats to `type`, exactly as llama.cpp's ggml_quantize_chunk.
 * `imatrix` (one weight per column) is the importance vector; null/undefined for none.
 * Writes into `out` when given (must be rowSize*nrows bytes), else returns a new array.
 */
export function quantizeRows(
  type: GGMLType,
  src: Float32Array,
  nrows: number,
  ncols: number,
  imatrix?: Float32Array | null,
  out?: Uint8Array,
): Uint8Array {
  const info = mustTypeInfo(type);
  if (ncols % info.blockSize !== 0) throw new Error(`${typeName(type)}: row length ${ncols} is not a multiple of ${info.blockSize}`);
  if (src.length < nrows * ncols) throw new Error(`quantizeRows: ${src.length} floats for ${nrows}×${ncols}`);
  if (imatrix && imatrix.length !== ncols) throw new Error(`quantizeRows: importance vector has ${imatrix.length} values for ${ncols} columns`);
  const k = kernels();
  const srcBytes = nrows * ncols * 4;
  const dstBytes = rowSize(type, ncols) * nrows;
  const imBytes = imatrix ? ncols * 4 : 0;
  const base = reserve(k, align(srcBytes) + align(imBytes) + align(dstBytes));
  const srcPtr = base;
  const imPtr = imatrix ? base + align(srcBytes) : 0;
  const dstPtr = base + align(srcBytes) + align(imBytes);
  const mem = k.memory.buffer;
  new Float32Array(mem, srcPtr, nrows * ncols).set(src.subarray(0, nrows * ncols));
  if (imatrix) new Float32Array(mem, imPtr, ncols).set(imatrix);
  const rc = k.quantize(type, srcPtr, dstPtr, nrows, ncols, imPtr);
  if (rc < 0) throw new Error(`no kernel for type ${typeName(type)}`);
  if (rc > 0) throw new NonFiniteRowError(rc - 1);
  const result = out ?? new Uint8Array(dstBytes);
  result.set(new Uint8Array(k.memory.buffer, dstPtr, dstBytes));
  return result;
}

/** Dequantize `nrows` rows of `ncols` elements of `type` back to f32 (llama.cpp's to_float). */
export function dequantizeRows(type: GGMLType, src: Uint8Array, nrows: number, ncols: number): Float32Array {
  const info = mustTypeInfo(type);
  if (ncols % info.blockSize !== 0) throw new Error(`${typeName(type)}: row length ${ncols} is not a multiple of ${info.blockSize}`);
  const k = kernels();
  const srcBytes = rowSize(type, ncols) * nrows;
  if (src.length < srcBytes) throw new Error(`dequantizeRows: ${src.length} bytes for ${nrows}×${ncols} ${typeName(type)}`);
  const n = nrows * ncols;
  const base = reserve(k, align(srcBytes) + n * 4);
  const dstPtr = base + align(srcBytes);
  new Uint8Array(k.memory.buffer, base, srcBytes).set(src.subarray(0, srcBytes));
  const rc = k.dequantize(type, base, dstPtr, n);
  if (rc < 0) throw new Error(`no dequantize kernel for type ${typeName(type)}`);
  return new Float32Array(k.memory.buffer.slice(dstPtr, dstPtr + n * 4));
}
