// What llama-imatrix accumulates (tools/imatrix/imatrix.cpp, IMatrixCollector): for every weight
// matrix a graph multiplies activations by, the per-column sum of the squared activations, and how
// many activation rows went into it — one sum and count per expert for MUL_MAT_ID. Sums are f32
// and added in llama.cpp's order (acc += x·x, each product and sum rounded to f32), so the result
// is the same bits when the activations are.
import { UserError } from "../errors.js";
import type { NativeBytes } from "../runtime/memcpy.js";
import { ImatrixKernels } from "./accumulate.js";

/** One entry: per-column sums (ne0 × n_mat values) and a row count per matrix (or one for all). */
export interface ImatrixStats {
  values: Float32Array;
  counts: number[];
}

/** A strided f32 activation tensor as ggml hands it over: ne in elements, nb in bytes. */
export interface Activations {
  /** the tensor's memory from its first element, still in llama.cpp's (f32 data is 4-byte aligned) */
  data: NativeBytes;
  ne: readonly [number, number, number, number];
  nb: readonly [number, number, number, number];
}

/** Routing ids of a MUL_MAT_ID: [n_expert_used, n_tokens] int32 with byte strides. */
export interface ExpertIds {
  data: DataView;
  ne: readonly [number, number];
  nb: readonly [number, number];
}

export class ImatrixCollector {
  readonly stats = new Map<string, ImatrixStats>();
  /** datasets of the imatrix files merged in (--in-file), in order */
  readonly datasets: string[] = [];
  /** chunks seen so far (llama-imatrix's m_last_chunk) */
  lastChunk = 0;

  private kernelsInstance: ImatrixKernels | undefined;

  /** @param chunkSize tokens per chunk (llama-imatrix: n_ctx / n_parallel) */
  constructor(readonly chunkSize: number) {}

  /** The WebAssembly side of the accumulation. */
  get kernels(): ImatrixKernels {
    this.kernelsInstance ??= new ImatrixKernels();
    return this.kernelsInstance;
  }

  /** A dense MUL_MAT: src0 is the weight (ne2·ne3 matrices), src1 the activations. */
  addMatMul(name: string, src0ne: readonly number[], src1: Activations): void {
    const nMat = src0ne[2] * src0ne[3];
    const ne0 = src1.ne[0];
    let e = this.stats.get(name);
    if (!e) {
      e = { values: new Float32Array(0), counts: [] };
      this.stats.set(name, e);
    }
    // a single count per dense tensor (older GGUF imatrix files may hold equal per-matrix counts)
    if (e.counts.length > 1 && e.counts.every((c) => c === e!.counts[0])) e.counts.length = 1;
    if (e.values.length === 0) {
      e.values = new Float32Array(ne0 * nMat);
      e.counts = [0];
    } else if (e.values.length !== ne0 * nMat) {
      throw new UserError(`${name}: inconsistent imatrix size (${e.values.length} vs ${ne0 * nMat})`);
    }
    const pairs = new Int32Array(2 * src1.ne[1] * src1.ne[2] * src1.ne[3]);
    let p = 0;
    for (let i3 = 0; i3 < src1.ne[3]; i3++) {
      for (let i2 = 0; i2 < src1.ne[2]; i2++) {
        // 3-D+ activations against a 2-D weight are flattened onto it
        const matId = (i3 % src0ne[3]) * src0ne[2] + (i2 % src0ne[2]);
        for (let row = 0; row < src1.ne[1]; row++) {
          pairs[p++] = (row * src1.nb[1] + i2 * src1.nb[2] + i3 * src1.nb[3]) >>> 2;
          pairs[p++] = matId * ne0;
        }
      }
    }
    if (!this.kernels.accumulateSquares(e.values, src1.data, pairs, ne0)) throw nonFinite(name);
    const nRows = src1.ne[1] * src1.ne[2] * src1.ne[3];
    for (let i = 0; i < e.counts.length; i++) {
      e.counts[i] += nRows / nMat;
      this.advanceChunk(e.counts[i]);
    }
  }

  /**
   * A MUL_MAT_ID: src0 holds n_as experts, src1 is [cols, n_expert_used (or 1), n_tokens], ids
   * picks the expert of every (slot, token).
   */
  addMatMulId(name: string, nExperts: number, src1: Activations, ids: ExpertIds): void {
    const ne0 = src1.ne[0];
    const nTokens = src1.ne[2];
    if (ids.ne[1] !== nTokens) throw new Error(`${name}: expert ids for ${ids.ne[1]} tokens, activations for ${nTokens}`);
    let e = this.stats.get(name);
    if (!e) {
      e = { values: new Float32Array(0), counts: [] };
      this.stats.set(name, e);
    }
    // broadcast the single count of an older imatrix
    if (e.counts.length === 1 && nExperts > 1) e.counts = new Array<number>(nExperts).fill(e.counts[0]);
    if (e.values.length === 0) {
      e.values = new Float32Array(ne0 * nExperts);
      e.counts = new Array<number>(nExperts).fill(0);
    } else if (e.values.length !== ne0 * nExperts) {
      throw new UserError(`${name}: inconsistent imatrix size (${e.values.length} vs ${ne0 * nExperts})`);
    } else if (e.counts.length !== nExperts) {
      throw new UserError(`${name}: inconsistent expert count (${e.counts.length} vs ${nExperts})`);
    }
    const pairs = new Int32Array(2 * ids.ne[0] * nTokens);
    let p = 0;
    for (let slot = 0; slot < ids.ne[0]; slot++) {
      for (let row = 0; row < nTokens; row++) {
        const ex = ids.data.getInt32(row * ids.nb[1] + slot * ids.nb[0], true);
        if (ex < 0 || ex >= nExperts) throw new Error(`${name}: expert id ${ex} outside 0…${nExperts - 1}`);
        pairs[p++] = ((slot % src1.ne[1]) * src1.nb[1] + row * src1.nb[2]) >>> 2;
        pairs[p++] = ex * ne0;
        e.counts[ex]++;
      }
    }
    if (!this.kernels.accumulateSquares(e.values, src1.data, pairs, ne0)) throw nonFinite(name);
    for (let ex = 0; ex < nExperts; ex++) this.advanceChunk(e.counts[ex]);
  }

  private advanceChunk(count: number): void {
    const n = Math.floor(count / this.chunkSize);
    if (n > this.lastChunk) this.lastChunk = n;
  }

  /**
   * Adds a previous imatrix (--in-file) as llama-imatrix's load_imatrix does: GGUF sums and counts
   * as they are; legacy .dat values (stored as mean·ncall) scaled back by the chunk size.
   */
  merge(file: string, prev: { format: "gguf" | "legacy"; entries: { name: string; sums: Float32Array; counts: number[] }[]; datasets: string[] }): void {
    for (const entry of prev.entries) {
      let e = this.stats.get(entry.name);
      if (!e) {
        e = { values: new Float32Array(0), counts: [] };
        this.stats.set(entry.name, e);
      }
      if (prev.format === "legacy") {
        if (e.values.length === 0) {
          e.values = new Float32Array(entry.sums.length);
          e.counts = [0];
        } else if (e.values.length !== entry.sums.length) {
          throw new UserError(`${file}: mismatched sums size for ${entry.name}: ${entry.sums.length} != ${e.values.length}`);
        }
        for (let j = 0; j < entry.sums.length; j++) e.values[j] = e.values[j] + Math.fround(entry.sums[j] * this.chunkSize);
        for (let j = 0; j < e.counts.length; j++) e.counts[j] += entry.counts[0] * this.chunkSize;
      } else {
        const nval = entry.sums.length;
        const ncounts = entry.counts.length;
        if (e.values.length === 0) e.values = new Float32Array(nval);
        else if (e.values.length !== nval) throw new UserError(`${file}: mismatched sums size for ${entry.name}: ${nval} != ${e.values.length}`);
        if (e.counts.length === 0) e.counts = new Array<number>(ncounts).fill(0);
        else if (e.counts.length === 1 && ncounts > 1) e.counts = new Array<number>(ncounts).fill(e.counts[0]);
        else if (e.counts.length !== ncounts) throw new UserError(`${file}: mismatched counts size for ${entry.name}: ${ncounts} != ${e.counts.length}`);
        for (let j = 0; j < nval; j++) e.values[j] = e.values[j] + entry.sums[j];
        for (let j = 0; j < ncounts; j++) e.counts[j] += entry.counts[j];
      }
    }
    this.datasets.push(...prev.datasets);
    let maxCount = 0;
    for (const s of this.stats.values()) for (const c of s.counts) maxCount = Math.max(maxCount, c);
    this.lastChunk = Math.floor(maxCount / this.chunkSize);
  }
}

function nonFinite(name: string): UserError {
  return new UserError(`${name}: non-finite activation statistics (the model produces NaN or Inf on this text)`);
}
