// What a pool worker does with one chunk of whole rows: quantize it with the WASM kernels (one
// kernel instance per worker thread). Kept apart from the thread entry (worker.ts) so it can be
// called directly too.
import { rowSize } from "../gguf/ggml-types.js";
import { convertRows, NonFiniteRowError, quantizeRows, ReferenceAbortRowError } from "../quant/kernels.js";
import { surgeryChunkF32 } from "../surgery/chunk.js";
import type { QuantizeTask, QuantizeTaskResult } from "./task.js";

/** A computed chunk (layer surgery): every input's rows to f32, combined by the recipe. */
function surgeryRowsF32(task: QuantizeTask): Float32Array {
  const { recipe, inputs } = task.surgery!;
  const sources = inputs.map((i) => ({ type: i.type, data: task.data.slice(i.byteOffset, i.byteOffset + i.byteLength) }));
  return surgeryChunkF32(recipe, sources, task.nrows, task.ncols);
}

/**
 * A plain chunk: the source bytes go straight into WASM memory and come out quantized (no f32
 * copy on the JS side). The result is written over the source in the same buffer when a
 * destination row fits in a source row, and that buffer goes back: the main thread reuses it.
 */
function convertChunk(task: QuantizeTask): ArrayBuffer {
  const { srcType, dstType, nrows, ncols } = task;
  const src = new Uint8Array(task.data, 0, rowSize(srcType, ncols) * nrows);
  const inPlace = rowSize(dstType, ncols) <= rowSize(srcType, ncols);
  const out = convertRows(srcType, src, dstType, nrows, ncols, task.imatrix, inPlace ? new Uint8Array(task.data) : undefined);
  return out.buffer as ArrayBuffer;
}

/** The quantized rows (an ArrayBuffer to transfer back), or the first row holding NaN/Inf or that llama.cpp would abort on. */
export function quantizeChunk(task: QuantizeTask): QuantizeTaskResult {
  try {
    if (!task.surgery) return convertChunk(task);
    return quantizeRows(task.dstType, surgeryRowsF32(task), task.nrows, task.ncols, task.imatrix).buffer as ArrayBuffer;
  } catch (err) {
    if (err instanceof NonFiniteRowError) return { nonFiniteRow: err.row };
    if (err instanceof ReferenceAbortRowError) return { referenceAbortRow: err.row };
    throw err;
  }
}
