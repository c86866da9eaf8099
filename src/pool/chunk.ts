// What a pool worker does with one chunk of whole rows: quantize it with the WASM kernels (one
// kernel instance per worker thread). Kept apart from the thread entry (worker.ts) so it can be
// called directly too.
import { rowSize } from "../gguf/ggml-types.js";
import { GGMLType } from "../gguf/ggml-types.js";
import { convertRows, convertRowsMulti, dequantizeRows, NonFiniteRowError, OutputRowError, quantizeRows, ReferenceAbortRowError } from "../quant/kernels.js";
import { surgeryChunkF32 } from "../surgery/chunk.js";
import type { MultiQuantizeTask, MultiQuantizeTaskResult, ProxyTaskErrors, ProxyTaskResult, QuantizeTask, QuantizeTaskResult } from "./task.js";

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

/**
 * tune's proxy on one chunk: the rows widened to f32 once, then per type quantized (with the
 * importance vector, as the build does), dequantized and compared, Σ w_j (x_j − x̂_j)² in f64.
 */
export function proxyChunkErrors(task: QuantizeTask): ProxyTaskErrors {
  const { srcType, nrows, ncols, imatrix: w } = task;
  const src = new Uint8Array(task.data, 0, rowSize(srcType, ncols) * nrows);
  const x = srcType === GGMLType.F32 ? new Float32Array(task.data, 0, nrows * ncols) : dequantizeRows(srcType, src, nrows, ncols);
  const errors = task.errorTypes!.map((type) => {
    const y = dequantizeRows(type, quantizeRows(type, x, nrows, ncols, w), nrows, ncols);
    let sum = 0;
    for (let r = 0; r < nrows; r++) {
      const base = r * ncols;
      for (let j = 0; j < ncols; j++) {
        const d = x[base + j]! - y[base + j]!;
        sum += (w ? w[j]! : 1) * d * d;
      }
    }
    return sum;
  });
  return { errors };
}

/** A kernel's row failure as a result the caller reports (a NaN/Inf row, a row llama.cpp would abort on); undefined for any other error. */
function failedRow(err: unknown): { nonFiniteRow: number } | { referenceAbortRow: number } | undefined {
  if (err instanceof NonFiniteRowError) return { nonFiniteRow: err.row };
  if (err instanceof ReferenceAbortRowError) return { referenceAbortRow: err.row };
  return undefined;
}

/** The kernels' row failures as a result the caller reports (a NaN/Inf row, a row llama.cpp would abort on). */
function orFailedRow<T>(work: () => T): T | { nonFiniteRow: number } | { referenceAbortRow: number } {
  try {
    return work();
  } catch (err) {
    const failed = failedRow(err);
    if (failed) return failed;
    throw err;
  }
}

/** A proxy chunk's errors, or the first row holding NaN/Inf or that llama.cpp would abort on. */
export function proxyChunk(task: QuantizeTask): ProxyTaskResult {
  return orFailedRow(() => proxyChunkErrors(task));
}

/** The quantized rows (an ArrayBuffer to transfer back), or the first row holding NaN/Inf or that llama.cpp would abort on. */
export function quantizeChunk(task: QuantizeTask): QuantizeTaskResult {
  return orFailedRow(() =>
    task.surgery ? (quantizeRows(task.dstType, surgeryRowsF32(task), task.nrows, task.ncols, task.imatrix).buffer as ArrayBuffer) : convertChunk(task),
  );
}

/**
 * A chunk's rows quantized to every output of a multi-output task, widened to f32 once. Each
 * output's rows are written into its own buffer (or over the source where its dst is null).
 */
export function quantizeChunkMulti(task: MultiQuantizeTask): MultiQuantizeTaskResult {
  const { srcType, nrows, ncols } = task;
  const src = new Uint8Array(task.data, 0, rowSize(srcType, ncols) * nrows);
  try {
    convertRowsMulti(
      srcType,
      src,
      task.outputs.map((o) => ({ dstType: o.dstType, imatrix: o.imatrix, out: new Uint8Array(o.dst ?? task.data) })),
      nrows,
      ncols,
    );
  } catch (err) {
    if (err instanceof OutputRowError) return { output: err.output, ...failedRow(err.failure)! };
    throw err;
  }
  return { source: task.data, outputs: task.outputs.map((o) => o.dst ?? task.data) };
}
