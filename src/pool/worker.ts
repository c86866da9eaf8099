// Pool worker: converts one chunk of whole rows of source data to f32 and quantizes it with the
// WASM kernels. Runs as compiled JS (dist/pool/worker.js); one kernel instance per worker thread.
import { move } from "piscina";
import { GGMLType } from "../gguf/ggml-types.js";
import { dequantizeRows, NonFiniteRowError, quantizeRows } from "../quant/kernels.js";
import type { QuantizeTask, QuantizeTaskResult } from "./task.js";

export default function quantizeChunk(task: QuantizeTask): QuantizeTaskResult {
  const { srcType, dstType, nrows, ncols } = task;
  const f32 =
    srcType === GGMLType.F32
      ? new Float32Array(task.data, 0, nrows * ncols)
      : dequantizeRows(srcType, new Uint8Array(task.data), nrows, ncols);
  try {
    const out = quantizeRows(dstType, f32, nrows, ncols, task.imatrix);
    // hand the result back without a copy
    return move(out.buffer as ArrayBuffer) as ArrayBuffer;
  } catch (err) {
    if (err instanceof NonFiniteRowError) return { nonFiniteRow: err.row };
    throw err;
  }
}
