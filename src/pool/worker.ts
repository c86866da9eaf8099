// Pool worker: quantizes one chunk of whole rows with the WASM kernels. Runs as compiled JS
// (dist/pool/worker.js) in each worker thread, and on the main thread for the chunks it takes
// (pool/index.ts); one kernel instance per thread.
import { move } from "piscina";
import { GGMLType, rowSize } from "../gguf/ggml-types.js";
import { convertRows, NonFiniteRowError, quantizeRows } from "../quant/kernels.js";
import { surgeryChunkF32 } from "../surgery/chunk.js";
import type { QuantizeTask, QuantizeTaskResult } from "./task.js";

/** A computed chunk (layer surgery): every input's rows to f32, combined by the recipe. */
function surgeryRowsF32(task: QuantizeTask): Float32Array {
  const { recipe, inputs } = task.surgery!;
  const sources = inputs.map((i) => ({ type: i.type, data: task.data.slice(i.byteOffset, i.byteOffset + i.byteLength) }));
  return surgeryChunkF32(recipe, sources, task.nrows, task.ncols);
}

// instantiate the kernels while the pool starts, not on the first chunk
convertRows(GGMLType.F32, new Uint8Array(0), GGMLType.Q8_0, 0, 32);

/**
 * A plain chunk: the source bytes go straight into WASM memory and come out quantized (no f32
 * copy on the JS side). The result is written over the source in the same buffer when a
 * destination row fits in a source row, and that buffer goes back: the main thread reuses it.
 */
function convertChunk(task: QuantizeTask): QuantizeTaskResult {
  const { srcType, dstType, nrows, ncols } = task;
  const src = new Uint8Array(task.data, 0, rowSize(srcType, ncols) * nrows);
  const inPlace = rowSize(dstType, ncols) <= rowSize(srcType, ncols);
  try {
    const out = convertRows(srcType, src, dstType, nrows, ncols, task.imatrix, inPlace ? new Uint8Array(task.data) : undefined);
    return move(out.buffer as ArrayBuffer) as ArrayBuffer;
  } catch (err) {
    if (err instanceof NonFiniteRowError) return { nonFiniteRow: err.row };
    throw err;
  }
}

export default function quantizeChunk(task: QuantizeTask): QuantizeTaskResult {
  if (!task.surgery) return convertChunk(task);
  try {
    const out = quantizeRows(task.dstType, surgeryRowsF32(task), task.nrows, task.ncols, task.imatrix);
    // hand the result back without a copy
    return move(out.buffer as ArrayBuffer) as ArrayBuffer;
  } catch (err) {
    if (err instanceof NonFiniteRowError) return { nonFiniteRow: err.row };
    throw err;
  }
}
