// How a tensor's data is cut into work: whole rows, at least 16 384 elements per chunk (llama.cpp's
// min_chunk_size), never across an expert's rows (each expert has its own importance vector), and
// about CHUNK_TARGET_ELEMENTS elements so the pool's per-task overhead stays negligible while
// memory stays bounded.
import { promises as fsp } from "node:fs";
import { UserError } from "../errors.js";
import { rowSize } from "../gguf/ggml-types.js";
import type { GGMLType } from "../gguf/ggml-types.js";
import type { GGUFModel, TensorInfo } from "../gguf/model.js";
import type { TensorReader } from "../gguf/reader.js";
import { isUrl } from "../gguf/source.js";

export const MIN_CHUNK_ELEMENTS = 32 * 512;
export const CHUNK_TARGET_ELEMENTS = 256 * 1024;
/** unchanged tensors are copied in slabs of this many bytes (rounded to whole rows): a pooled buffer */
export const COPY_SLAB_BYTES = 512 * 1024;

export interface RowChunk {
  /** first row (over all experts) */
  row: number;
  nrows: number;
  /** expert index (0 for 2-D tensors) */
  expert: number;
}

/** Rows per chunk for a row length: whole rows, ≥ MIN_CHUNK_ELEMENTS, ≈ CHUNK_TARGET_ELEMENTS. */
export function rowsPerChunk(ncols: number): number {
  const minRows = Math.ceil(MIN_CHUNK_ELEMENTS / ncols);
  return Math.max(minRows, Math.floor(CHUNK_TARGET_ELEMENTS / ncols), 1);
}

/** The quantization chunks of a tensor of shape [ncols, rowsPerExpert, nExperts, …]. */
export function quantizeChunks(shape: readonly number[]): RowChunk[] {
  const ncols = shape[0]!;
  const rowsPerExpert = shape[1] ?? 1;
  let nExperts = 1;
  for (let d = 2; d < shape.length; d++) nExperts *= shape[d]!;
  const step = rowsPerChunk(ncols);
  const chunks: RowChunk[] = [];
  for (let e = 0; e < nExperts; e++) {
    for (let r = 0; r < rowsPerExpert; r += step) {
      chunks.push({ row: e * rowsPerExpert + r, nrows: Math.min(step, rowsPerExpert - r), expert: e });
    }
  }
  return chunks;
}

/** Byte ranges for copying an unchanged tensor: slabs of whole rows. */
export function copySlabs(type: GGMLType, shape: readonly number[], totalBytes: number): { offset: number; length: number }[] {
  const row = rowSize(type, shape[0]!);
  const slab = Math.max(row, Math.floor(COPY_SLAB_BYTES / row) * row);
  const out: { offset: number; length: number }[] = [];
  for (let off = 0; off < totalBytes; off += slab) out.push({ offset: off, length: Math.min(slab, totalBytes - off) });
  return out;
}

/**
 * Positioned reads of tensor data into the caller's buffer, so chunk buffers can be reused: local
 * files are read straight into it; other sources (URLs) go through the TensorReader and a copy.
 */
export class TensorDataReader {
  private readonly handles = new Map<number, Promise<fsp.FileHandle>>();

  constructor(
    private readonly model: GGUFModel,
    private readonly reader: TensorReader,
  ) {}

  /** `into.length` bytes of `tensor`'s data from `byteOffset` (relative to the tensor's start). */
  async readInto(tensor: TensorInfo, byteOffset: number, into: Uint8Array): Promise<void> {
    const file = this.model.files[tensor.split]!;
    if (isUrl(file.path)) {
      into.set(await this.reader.read(tensor, byteOffset, into.length));
      return;
    }
    if (byteOffset < 0 || byteOffset + into.length > tensor.bytes) {
      throw new Error(`tensor '${tensor.name}': read [${byteOffset}, ${byteOffset + into.length}) outside its ${tensor.bytes} bytes`);
    }
    let handle = this.handles.get(tensor.split);
    if (!handle) {
      handle = fsp.open(file.path, "r").catch((err: Error) => {
        throw new UserError(`${file.path}: cannot open: ${err.message}`);
      });
      handle.catch(() => undefined); // awaited below
      this.handles.set(tensor.split, handle);
    }
    const h = await handle;
    const position = file.dataOffset + tensor.offset + byteOffset;
    for (let done = 0; done < into.length; ) {
      const { bytesRead } = await h.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) {
        throw new UserError(`${file.path}: unexpected end of file reading ${into.length} bytes at offset ${position} (file shrank?)`);
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    for (const h of all) await h.then((fh) => fh.close(), () => undefined);
  }
}
