// llama.cpp's loader validates every tensor it reads while quantizing (check_tensors, i.e.
// ggml_validate_row_data on each slab), also the ones it copies unchanged: a NaN or infinity in an
// F32, F16 or BF16 tensor makes llama-quantize refuse the file. The quantized path checks its rows
// in the kernels; this is the same check for the copied tensors.
import { GGMLType } from "../gguf/ggml-types.js";

/** Index of the first row (of `rowBytes` bytes) holding a NaN or infinity, or -1; other types: -1. */
export function firstNonFiniteRow(type: GGMLType, data: Uint8Array, rowBytes: number): number {
  let bad = -1;
  if (type === GGMLType.F32) {
    const v = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >>> 2);
    for (let i = 0; i < v.length; i++) {
      if ((v[i]! & 0x7f800000) === 0x7f800000) {
        bad = i * 4;
        break;
      }
    }
  } else if (type === GGMLType.F16 || type === GGMLType.BF16) {
    const exponent = type === GGMLType.F16 ? 0x7c00 : 0x7f80;
    const v = new Uint16Array(data.buffer, data.byteOffset, data.byteLength >>> 1);
    for (let i = 0; i < v.length; i++) {
      if ((v[i]! & exponent) === exponent) {
        bad = i * 2;
        break;
      }
    }
  }
  return bad < 0 ? -1 : Math.floor(bad / rowBytes);
}
