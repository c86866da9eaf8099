// What the main thread sends a pool worker and what comes back (shared by both sides).
import type { GGMLType } from "../gguf/ggml-types.js";
import type { Recipe } from "../surgery/ops.js";

/** One input of a computed (layer surgery) chunk: its rows' bytes within QuantizeTask.data. */
export interface SurgeryTaskInput {
  type: GGMLType;
  byteOffset: number;
  byteLength: number;
}

export interface QuantizeTask {
  /** type of the source bytes: F32, F16, BF16 (or a quantized type when re-quantizing) */
  srcType: GGMLType;
  dstType: GGMLType;
  nrows: number;
  ncols: number;
  /** the source rows as stored in the file; transferred, not copied */
  data: ArrayBuffer;
  /** one importance weight per column, or null */
  imatrix: Float32Array | null;
  /**
   * layer surgery: `data` holds the same rows of every input tensor, one after the other (so the
   * one buffer is transferred), combined by `recipe` in f32 before quantizing; `srcType` is unused
   */
  surgery?: { recipe: Recipe<number>; inputs: SurgeryTaskInput[] };
  /**
   * tune's proxy: instead of the quantized rows, the weighted squared error of the rows quantized
   * to each of these types and back (`dstType` unused), so the worker, not the main thread, does
   * the dequantization and the sums
   */
  errorTypes?: GGMLType[];
}

/** A proxy task's answer: per error type, Σ_rows Σ_j w_j (x_j − x̂_j)² (w_j = 1 without an imatrix). */
export interface ProxyTaskErrors {
  errors: number[];
}

/**
 * the quantized rows (transferred back), or the first row (within the chunk) holding NaN/Inf, or
 * the first row llama.cpp's quantizer for the type would abort on
 */
export type QuantizeTaskResult = ArrayBuffer | { nonFiniteRow: number } | { referenceAbortRow: number };

/** A proxy task's result: the errors, or the row that cannot be quantized. */
export type ProxyTaskResult = ProxyTaskErrors | { nonFiniteRow: number } | { referenceAbortRow: number };

/** One output of a MultiQuantizeTask. */
export interface MultiTaskOutput {
  dstType: GGMLType;
  /** one importance weight per column, or null */
  imatrix: Float32Array | null;
  /**
   * where the quantized rows go (at least rowSize(dstType, ncols) × nrows bytes; transferred and
   * moved back), or null: over the source rows in `data` (for at most one output, whose row is no
   * longer than a source row)
   */
  dst: ArrayBuffer | null;
}

/**
 * The same source rows quantized to several types (hquant release's one pass): the worker widens
 * each slice to f32 once and runs every output's kernel on it.
 */
export interface MultiQuantizeTask {
  srcType: GGMLType;
  nrows: number;
  ncols: number;
  /** the source rows as stored in the file; transferred and moved back (unchanged unless an output's dst is null) */
  data: ArrayBuffer;
  outputs: MultiTaskOutput[];
}

/**
 * Every output's rows (`outputs[i]` is that output's dst, or `source` where dst was null) and the
 * source buffer, all moved back; or the first row one output (by index) cannot be quantized from.
 */
export type MultiQuantizeTaskResult =
  | { source: ArrayBuffer; outputs: ArrayBuffer[] }
  | { output: number; nonFiniteRow: number }
  | { output: number; referenceAbortRow: number };
