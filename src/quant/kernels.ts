// JS side of the WebAssembly kernels (kernels/*.ts → build/kernels.wasm).
// One instance per thread (the main thread or a pool worker), of one module compiled per process.
// The caller's rows are copied into linear memory after the kernels' static data, quantized there
// and copied out: a batch of rows per call, so the JS↔WASM crossing is negligible next to the
// arithmetic. quantizeInto writes into the caller's array (no allocation); convertRows takes
// F16/BF16/Q8_0 source bytes straight in; convertRowsMulti widens them once for several types.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { GGMLType, mustTypeInfo, rowSize, typeName } from "../gguf/ggml-types.js";

interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  quantize(type: number, src: number, dst: number, nrows: number, ncols: number, imatrix: number): number;
  dequantize(type: number, src: number, dst: number, k: number): number;
  latticePositions(lattice: number): number;
  latticeMap(lattice: number): number;
  latticeNeighbours(lattice: number): number;
}

export const WASM_PATH = fileURLToPath(new URL("../../build/kernels.wasm", import.meta.url));

/** A row holds NaN or ±Inf: llama.cpp would quantize garbage, hquant refuses. */
export class NonFiniteRowError extends Error {
  constructor(readonly row: number) {
    super(`row ${row} contains NaN or Inf`);
  }
}

/**
 * A row on which llama.cpp's quantizer for the type fails one of its asserts (for IQ3: a neighbour
 * search that finds no point at a finite distance, from values so large that their squares
 * overflow) and aborts the process; hquant refuses it.
 */
export class ReferenceAbortRowError extends Error {
  constructor(readonly row: number, type: GGMLType) {
    super(`row ${row} cannot be quantized to ${typeName(type)}: its values are too large (llama.cpp's quantizer aborts on it)`);
  }
}

/** The kernels' return code for "ggml would abort on row r": ERR_REFERENCE_ABORTS (-2) - r. */
const ERR_REFERENCE_ABORTS = -2;

function checkKernelResult(rc: number, type: GGMLType, firstRow: number): void {
  if (rc === 0) return;
  if (rc > 0) throw new NonFiniteRowError(firstRow + rc - 1);
  if (rc <= ERR_REFERENCE_ABORTS) throw new ReferenceAbortRowError(firstRow + ERR_REFERENCE_ABORTS - rc, type);
  throw new Error(`no kernel for type ${typeName(type)}`);
}

let instance: KernelExports | undefined;
let compiled: WebAssembly.Module | undefined;

/**
 * The kernels compiled, once per process: the pool hands this module to its workers (a module
 * posted to a worker shares its compiled code), so no thread compiles the kernels again.
 */
export function kernelModule(): WebAssembly.Module {
  if (!compiled) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(WASM_PATH);
    } catch {
      throw new Error(`kernels not built: ${WASM_PATH} is missing (run npm run build:kernels)`);
    }
    compiled = new WebAssembly.Module(new Uint8Array(bytes));
  }
  return compiled;
}

/** A worker thread adopts the module its pool compiled (before its first kernel call). */
export function useKernelModule(module: WebAssembly.Module): void {
  compiled = module;
}

function kernels(): KernelExports {
  instance ??= new WebAssembly.Instance(kernelModule(), { env: { abort: kernelAbort } }).exports as unknown as KernelExports;
  return instance;
}

function kernelAbort(): never {
  throw new Error("kernel abort");
}

/** Make linear memory at least `bytes` long past the heap base; returns the heap base. */
function reserve(k: KernelExports, bytes: number): number {
  const base = (k.heapBase() + 63) & ~63;
  growTo(k, base + bytes);
  return base;
}

/** Make linear memory at least `end` bytes long (growing detaches views made before). */
function growTo(k: KernelExports, end: number): void {
  const have = k.memory.buffer.byteLength;
  if (end > have) k.memory.grow(Math.ceil((end - have) / 65536));
}

const align = (n: number) => (n + 63) & ~63;

/** Types ggml quantizes only with an importance vector (ggml_quantize_requires_imatrix: it aborts without one). */
const REQUIRES_IMATRIX: ReadonlySet<GGMLType> = new Set([GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S]);

function checkShape(type: GGMLType, nrows: number, ncols: number, imatrix: Float32Array | null | undefined): void {
  const info = mustTypeInfo(type);
  if (!imatrix && REQUIRES_IMATRIX.has(type)) throw new Error(`${typeName(type)} needs an importance matrix: llama.cpp does not quantize it without one`);
  if (ncols % info.blockSize !== 0) throw new Error(`${typeName(type)}: row length ${ncols} is not a multiple of ${info.blockSize}`);
  if (imatrix && imatrix.length !== ncols) throw new Error(`quantizeRows: importance vector has ${imatrix.length} values for ${ncols} columns`);
}


// Rows go through linear memory a slice at a time, each slice small enough that copying it in,
// quantizing it and copying the result out all happen in the core's L2 cache. Rows are
// independent in every format, so slicing does not change a byte.
const SLICE_FLOATS = 32768;

/**
 * Quantize nrows×ncols rows to `type` into `out`, slice by slice: place(ptr, first, n) must write
 * the f32 values of rows [first, first+n) at ptr (it may use the `scratch` bytes at scratchPtr).
 * Throws NonFiniteRowError (with the row index in the whole batch) for a NaN/Inf row.
 */
function quantizeSlices(
  type: GGMLType, nrows: number, ncols: number, imatrix: Float32Array | null | undefined, out: Uint8Array,
  scratchBytesPerRow: number, place: (k: KernelExports, ptr: number, scratchPtr: number, first: number, n: number) => void,
): void {
  const k = kernels();
  const sliceRows = Math.max(1, Math.min(nrows, Math.floor(SLICE_FLOATS / ncols)));
  const rowBytes = rowSize(type, ncols);
  const imPtr = imatrix ? reserve(k, 0) : 0;
  const scratchPtr = reserve(k, 0) + align(imatrix ? ncols * 4 : 0);
  const srcPtr = scratchPtr + align(sliceRows * scratchBytesPerRow);
  const dstPtr = srcPtr + align(sliceRows * ncols * 4);
  // growing detaches the memory buffer: views are made only after it
  growTo(k, dstPtr + sliceRows * rowBytes);
  if (imatrix) new Float32Array(k.memory.buffer, imPtr, ncols).set(imatrix);
  for (let first = 0; first < nrows; first += sliceRows) {
    const n = Math.min(sliceRows, nrows - first);
    place(k, srcPtr, scratchPtr, first, n);
    checkKernelResult(k.quantize(type, srcPtr, dstPtr, n, ncols, imPtr), type, first);
    out.set(new Uint8Array(k.memory.buffer, dstPtr, n * rowBytes), first * rowBytes);
  }
}

/**
 * Quantize `nrows` rows of `ncols` floats to `type` into `out` (at least rowSize*nrows bytes),
 * exactly as llama.cpp's ggml_quantize_chunk; allocates nothing on the JS side. Returns the part
 * of `out` written. `imatrix` (one weight per column) is the importance vector; null for none.
 */
export function quantizeInto(
  type: GGMLType,
  src: Float32Array,
  nrows: number,
  ncols: number,
  imatrix: Float32Array | null | undefined,
  out: Uint8Array,
): Uint8Array {
  checkShape(type, nrows, ncols, imatrix);
  if (src.length < nrows * ncols) throw new Error(`quantizeRows: ${src.length} floats for ${nrows}×${ncols}`);
  const dstBytes = rowSize(type, ncols) * nrows;
  if (out.length < dstBytes) throw new Error(`quantizeInto: ${out.length} bytes for ${dstBytes}`);
  quantizeSlices(type, nrows, ncols, imatrix, out, 0, (k, ptr, _scratch, first, n) => {
    new Float32Array(k.memory.buffer, ptr, n * ncols).set(src.subarray(first * ncols, (first + n) * ncols));
  });
  return out.subarray(0, dstBytes);
}

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
  checkShape(type, nrows, ncols, imatrix);
  const result = out ?? new Uint8Array(rowSize(type, ncols) * nrows);
  quantizeInto(type, src, nrows, ncols, imatrix, result);
  return result;
}

/**
 * Rows of `srcType` (F32, F16, BF16, Q8_0 … anything with a dequantize kernel) straight to
 * `dstType`: the source bytes are copied into linear memory as they are, widened to f32 there and
 * quantized, so no f32 copy of the chunk exists on the JS side. Returns a new array (its own
 * ArrayBuffer, transferable), or the part of `out` written when given. `out` may be the source's
 * own bytes when a destination row is no longer than a source row: slices are written behind the
 * ones still to be read. Same bytes as dequantizeRows followed by quantizeRows.
 */
export function convertRows(
  srcType: GGMLType,
  src: Uint8Array,
  dstType: GGMLType,
  nrows: number,
  ncols: number,
  imatrix?: Float32Array | null,
  out?: Uint8Array,
): Uint8Array {
  checkShape(dstType, nrows, ncols, imatrix);
  const srcInfo = mustTypeInfo(srcType);
  if (ncols % srcInfo.blockSize !== 0) throw new Error(`${typeName(srcType)}: row length ${ncols} is not a multiple of ${srcInfo.blockSize}`);
  const srcRowBytes = rowSize(srcType, ncols);
  if (src.length < srcRowBytes * nrows) throw new Error(`convertRows: ${src.length} bytes for ${nrows}×${ncols} ${typeName(srcType)}`);
  const dstBytes = rowSize(dstType, ncols) * nrows;
  if (out && out.length < dstBytes) throw new Error(`convertRows: ${out.length} bytes for ${dstBytes}`);
  out = out ? out.subarray(0, dstBytes) : new Uint8Array(dstBytes);
  if (srcType === GGMLType.F32) {
    quantizeSlices(dstType, nrows, ncols, imatrix, out, 0, (k, ptr, _scratch, first, n) => {
      new Uint8Array(k.memory.buffer, ptr, n * srcRowBytes).set(src.subarray(first * srcRowBytes, (first + n) * srcRowBytes));
    });
    return out;
  }
  quantizeSlices(dstType, nrows, ncols, imatrix, out, srcRowBytes, (k, ptr, scratch, first, n) => {
    new Uint8Array(k.memory.buffer, scratch, n * srcRowBytes).set(src.subarray(first * srcRowBytes, (first + n) * srcRowBytes));
    if (k.dequantize(srcType, scratch, ptr, n * ncols) < 0) throw new Error(`no dequantize kernel for type ${typeName(srcType)}`);
  });
  return out;
}

/** One output of convertRowsMulti: its type, importance vector, and where its rows go (optional). */
export interface ConvertOutput {
  dstType: GGMLType;
  imatrix?: Float32Array | null;
  /**
   * at least rowSize(dstType, ncols) × nrows bytes; may be the source's own bytes (for one output
   * only, and only when its row is no longer than a source row), as convertRows' `out`
   */
  out?: Uint8Array;
}

/** A row that one output of convertRowsMulti cannot be quantized from: which output, and why. */
export class OutputRowError extends Error {
  constructor(readonly output: number, readonly failure: NonFiniteRowError | ReferenceAbortRowError) {
    super(`output ${output}: ${failure.message}`);
  }
}

/**
 * convertRows for several destinations at once: each slice of source rows is copied into linear
 * memory and widened to f32 once, then quantized to every output in turn (the quantize kernels
 * only read their source), so N outputs cost one widening instead of N. Returns each output's
 * rows (its `out`, or a new array); same bytes as convertRows called per output. A row an output
 * refuses throws OutputRowError naming the output (the first slice, then the first output, that fails).
 */
export function convertRowsMulti(srcType: GGMLType, src: Uint8Array, outputs: readonly ConvertOutput[], nrows: number, ncols: number): Uint8Array[] {
  for (const o of outputs) checkShape(o.dstType, nrows, ncols, o.imatrix);
  const srcInfo = mustTypeInfo(srcType);
  if (ncols % srcInfo.blockSize !== 0) throw new Error(`${typeName(srcType)}: row length ${ncols} is not a multiple of ${srcInfo.blockSize}`);
  const srcRowBytes = rowSize(srcType, ncols);
  if (src.length < srcRowBytes * nrows) throw new Error(`convertRowsMulti: ${src.length} bytes for ${nrows}×${ncols} ${typeName(srcType)}`);
  const rowBytes = outputs.map((o) => rowSize(o.dstType, ncols));
  const results = outputs.map((o, i) => {
    const bytes = rowBytes[i]! * nrows;
    if (o.out && o.out.length < bytes) throw new Error(`convertRowsMulti: ${o.out.length} bytes for ${bytes}`);
    return o.out ? o.out.subarray(0, bytes) : new Uint8Array(bytes);
  });
  const k = kernels();
  const sliceRows = Math.max(1, Math.min(nrows, Math.floor(SLICE_FLOATS / ncols)));
  // layout: the importance vectors, the source bytes of a slice (not for F32, copied straight to
  // its f32 place), the slice in f32, one output's rows of the slice
  const imPtrs: number[] = [];
  let at = reserve(k, 0);
  for (const o of outputs) {
    imPtrs.push(o.imatrix ? at : 0);
    if (o.imatrix) at += align(ncols * 4);
  }
  const scratchPtr = at;
  const srcPtr = scratchPtr + align(srcType === GGMLType.F32 ? 0 : sliceRows * srcRowBytes);
  const dstPtr = srcPtr + align(sliceRows * ncols * 4);
  // growing detaches the memory buffer: views are made only after it
  growTo(k, dstPtr + sliceRows * Math.max(0, ...rowBytes));
  outputs.forEach((o, i) => o.imatrix && new Float32Array(k.memory.buffer, imPtrs[i]!, ncols).set(o.imatrix));
  for (let first = 0; first < nrows; first += sliceRows) {
    const n = Math.min(sliceRows, nrows - first);
    const slice = src.subarray(first * srcRowBytes, (first + n) * srcRowBytes);
    if (srcType === GGMLType.F32) new Uint8Array(k.memory.buffer, srcPtr, n * srcRowBytes).set(slice);
    else {
      new Uint8Array(k.memory.buffer, scratchPtr, n * srcRowBytes).set(slice);
      if (k.dequantize(srcType, scratchPtr, srcPtr, n * ncols) < 0) throw new Error(`no dequantize kernel for type ${typeName(srcType)}`);
    }
    for (let i = 0; i < outputs.length; i++) {
      const type = outputs[i]!.dstType;
      try {
        checkKernelResult(k.quantize(type, srcPtr, dstPtr, n, ncols, imPtrs[i]!), type, first);
      } catch (err) {
        if (err instanceof NonFiniteRowError || err instanceof ReferenceAbortRowError) throw new OutputRowError(i, err);
        throw err;
      }
      results[i]!.set(new Uint8Array(k.memory.buffer, dstPtr, n * rowBytes[i]!), first * rowBytes[i]!);
    }
  }
  return results;
}

// Zero-copy use: the caller writes rows straight into linear memory (e.g. fs.readSync into the
// view) and reads the result from it (e.g. fs.writeSync from the view). Only worth it where the
// copies are a large part of the work (F16/BF16/Q8_0 targets).

/**
 * A view of linear memory for `nrows` rows of `ncols` f32 to be quantized by quantizeStaged.
 * Valid until the next call into the kernels (other than quantizeStaged on these rows).
 */
export function stagingRows(nrows: number, ncols: number): Float32Array {
  const k = kernels();
  const base = reserve(k, nrows * ncols * 4);
  return new Float32Array(k.memory.buffer, base, nrows * ncols);
}

/**
 * Quantize the rows written into stagingRows(nrows, ncols) to `type`; returns a view of the result
 * in linear memory, valid until the next call into the kernels. Same bytes as quantizeRows.
 */
export function quantizeStaged(type: GGMLType, nrows: number, ncols: number, imatrix?: Float32Array | null): Uint8Array {
  checkShape(type, nrows, ncols, imatrix);
  const k = kernels();
  const srcPtr = reserve(k, 0);
  const dstPtr = srcPtr + align(nrows * ncols * 4);
  const dstBytes = rowSize(type, ncols) * nrows;
  const imPtr = imatrix ? dstPtr + align(dstBytes) : 0;
  // growing keeps the staged rows (it only detaches views made before)
  growTo(k, dstPtr + align(dstBytes) + (imatrix ? ncols * 4 : 0));
  if (imatrix) new Float32Array(k.memory.buffer, imPtr, ncols).set(imatrix);
  checkKernelResult(k.quantize(type, srcPtr, dstPtr, nrows, ncols, imPtr), type, 0);
  return new Uint8Array(k.memory.buffer, dstPtr, dstBytes);
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

/** The IQ lattices of kernels/iq-neighbours.ts, in its numbering. */
export const IQ_LATTICES = { IQ2XXS: 0, IQ2XS: 1, IQ2S: 2, IQ1S: 3, IQ3XXS: 4, IQ3S: 5 } as const;

/**
 * Copies of one IQ lattice's search tables as the kernels built them (ggml's iq2xs_init_impl /
 * iq3xs_init_impl): grid positions, the code-word map and the neighbour lists.
 */
export function iqLatticeTables(lattice: number, gridPoints: number, coords: number, mapSize: number, neighbourEntries: number): {
  positions: Int8Array; map: Int32Array; neighbours: Uint16Array;
} {
  const k = kernels();
  const map = k.latticeMap(lattice);
  const pos = k.latticePositions(lattice);
  const nbr = k.latticeNeighbours(lattice);
  const buf = k.memory.buffer;
  return {
    positions: new Int8Array(buf.slice(pos, pos + gridPoints * coords)),
    map: new Int32Array(buf.slice(map, map + mapSize * 4)),
    neighbours: new Uint16Array(buf.slice(nbr, nbr + neighbourEntries * 2)),
  };
}
