// One chunk of a computed (interpolated / merged) tensor, as a pool worker makes it: the same rows
// of every input tensor, each converted to f32 with the kernels (F32 as is; F16/BF16, or a
// quantized type when re-quantizing, through dequantizeRows), then combined in f32 (arith.ts).
// The result is what the worker then quantizes to the planned type.
import { GGMLType } from "../gguf/ggml-types.js";
import { dequantizeRows } from "../quant/kernels.js";
import { combineRows } from "./arith.js";
import type { Recipe } from "./ops.js";

export interface SurgeryChunkInput {
  /** the input tensor's type as stored */
  type: GGMLType;
  /** its rows [row, row + nrows) as stored in the file */
  data: ArrayBuffer;
}

/** f32 rows of an input chunk (a view for F32 data, converted otherwise). */
export function inputRowsF32(input: SurgeryChunkInput, nrows: number, ncols: number): Float32Array {
  if (input.type === GGMLType.F32) return new Float32Array(input.data, 0, nrows * ncols);
  return dequantizeRows(input.type, new Uint8Array(input.data), nrows, ncols);
}

/** The f32 rows of the output chunk: `recipe` over the inputs (indices as in SurgeryTensor.inputs). */
export function surgeryChunkF32(recipe: Recipe<number>, inputs: readonly SurgeryChunkInput[], nrows: number, ncols: number): Float32Array {
  const sources = inputs.map((i) => inputRowsF32(i, nrows, ncols));
  return combineRows(recipe, sources, new Float32Array(nrows * ncols));
}
