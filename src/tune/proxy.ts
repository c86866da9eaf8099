// The proxy: no forward pass. For every tensor and candidate type, quantize with hquant's own
// kernels exactly as the build will (same importance vector), dequantize, and sum the
// importance-weighted squared error Σ_rows Σ_j w_j (x_j − x̂_j)² (w_j = the imatrix's mean squared
// activation of input column j; 1 without an imatrix, or for token_embd, which llama.cpp
// quantizes without one). To second order a tensor's KLD contribution is proportional to that error,
// so the sensitivity model only needs one measured scale per group (or per tensor kind). On a large
// model a sample of each tensor's rows (--proxy-rows) gives the error at a fixed cost per tensor.
import fs from "node:fs";
import path from "node:path";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import type { GGUFModel } from "../gguf/model.js";
import { TensorReader } from "../gguf/reader.js";
import type { Imatrix } from "../imatrix/index.js";
import { dequantizeRows } from "../quant/kernels.js";
import { QuantizePool } from "../pool/index.js";
import type { TuneSpace } from "./candidates.js";
import { writeJsonAtomic } from "./cache.js";

/** tensor name → type → weighted squared error */
export type ProxyErrors = Map<string, Map<GGMLType, number>>;

/** Importance of each column as the build uses it (null: llama.cpp quantizes without one). */
function importance(imatrix: Imatrix | undefined, name: string, ncols: number, nExperts: number): Float32Array | null {
  const v = imatrix?.vectors.get(name);
  return v && v.length === ncols * nExperts ? v : null;
}

/** Rows quantized per pool task: small enough that a tensor's work spreads over every thread. */
const TASK_ROWS = 64;

/** The rows of one expert the proxy uses: all, or `sample` spread evenly (the middle of each of `sample` equal bands). */
export function sampledRows(nrows: number, sample: number | undefined): number[] {
  if (sample === undefined || sample >= nrows) return Array.from({ length: nrows }, (_, r) => r);
  return Array.from({ length: sample }, (_, i) => Math.floor(((i + 0.5) * nrows) / sample));
}

/**
 * Weighted reconstruction error of every tensor of the space for each of its options. With `rows`,
 * each tensor (each expert) contributes that many rows, spread evenly, and the sum is scaled by
 * rows in all / rows sampled: the cost is then ∝ rows × row length per tensor, not its size. The
 * quantization runs on the pool's threads (the dequantization and the sum, cheap, here).
 */
export async function proxyErrors(
  model: GGUFModel,
  space: TuneSpace,
  imatrix: Imatrix | undefined,
  onTensor?: (done: number, total: number, name: string) => void,
  opts: { pool?: QuantizePool; rows?: number } = {},
): Promise<ProxyErrors> {
  const reader = new TensorReader(model);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const out: ProxyErrors = new Map();
  const pool = opts.pool ?? new QuantizePool();
  try {
    for (const [k, t] of space.tensors.entries()) {
      onTensor?.(k, space.tensors.length, t.name);
      const info = byName.get(t.name)!;
      const ncols = t.shape[0]!;
      const nExperts = t.shape[2] ?? 1;
      const rowsPerExpert = t.elements / ncols / nExperts;
      const picked = sampledRows(rowsPerExpert, opts.rows);
      const rowBytes = info.bytes / (rowsPerExpert * nExperts);
      // the sampled rows of every expert, one after the other, as f32
      const nrows = picked.length * nExperts;
      let raw: Uint8Array;
      if (picked.length === rowsPerExpert) raw = await reader.read(info);
      else {
        raw = new Uint8Array(nrows * rowBytes);
        let at = 0;
        for (let e = 0; e < nExperts; e++) {
          for (const r of picked) {
            raw.set(await reader.read(info, (e * rowsPerExpert + r) * rowBytes, rowBytes), at);
            at += rowBytes;
          }
        }
      }
      const x = info.type === GGMLType.F32 ? new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) : dequantizeRows(info.type, raw, nrows, ncols);
      const im = importance(imatrix, t.name, ncols, nExperts);
      const scale = rowsPerExpert / picked.length;
      // every (type, expert, band of rows) is one pool task; the sums are then taken in row order
      const results = await Promise.all(
        t.options.map((o) =>
          Promise.all(
            Array.from({ length: nExperts }, (_, e) => {
              const w = im ? im.subarray(e * ncols, (e + 1) * ncols) : null;
              const bands: Promise<Float32Array>[] = [];
              for (let r0 = 0; r0 < picked.length; r0 += TASK_ROWS) {
                const n = Math.min(TASK_ROWS, picked.length - r0);
                const from = (e * picked.length + r0) * ncols;
                const data = x.slice(from, from + n * ncols).buffer;
                bands.push(
                  pool.run({ srcType: GGMLType.F32, dstType: o.type, nrows: n, ncols, data, imatrix: w && new Float32Array(w) }).then((q) => {
                    if (!(q instanceof ArrayBuffer)) throw new Error(`${t.name}: row ${r0} cannot be quantized to ${typeName(o.type)} (${JSON.stringify(q)})`);
                    return dequantizeRows(o.type, new Uint8Array(q), n, ncols);
                  }),
                );
              }
              return Promise.all(bands);
            }),
          ),
        ),
      );
      const errors = new Map<GGMLType, number>();
      t.options.forEach((o, oi) => {
        let sum = 0;
        for (let e = 0; e < nExperts; e++) {
          const w = im ? im.subarray(e * ncols, (e + 1) * ncols) : null;
          results[oi]![e]!.forEach((y, b) => {
            const rows = x.subarray((e * picked.length + b * TASK_ROWS) * ncols);
            for (let r = 0; r < y.length / ncols; r++) {
              const base = r * ncols;
              for (let j = 0; j < ncols; j++) {
                const d = rows[base + j]! - y[base + j]!;
                sum += (w ? w[j]! : 1) * d * d;
              }
            }
          });
        }
        errors.set(o.type, sum * scale);
      });
      out.set(t.name, errors);
    }
    onTensor?.(space.tensors.length, space.tensors.length, "");
  } finally {
    await reader.close();
    if (!opts.pool) await pool.destroy();
  }
  return out;
}

/** proxyErrors with a disk cache (one JSON per model × imatrix × candidate set). */
export async function cachedProxyErrors(
  cacheFile: string,
  model: GGUFModel,
  space: TuneSpace,
  imatrix: Imatrix | undefined,
  onTensor?: (done: number, total: number, name: string) => void,
  opts: { pool?: QuantizePool; rows?: number } = {},
): Promise<{ errors: ProxyErrors; cached: boolean }> {
  try {
    const j = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as Record<string, Record<string, number>>;
    const errors: ProxyErrors = new Map();
    const complete = space.tensors.every((t) => {
      const e = j[t.name];
      if (!e) return false;
      const m = new Map<GGMLType, number>();
      for (const o of t.options) {
        const v = e[typeName(o.type)];
        if (typeof v !== "number") return false;
        m.set(o.type, v);
      }
      errors.set(t.name, m);
      return true;
    });
    if (complete) return { errors, cached: true };
  } catch {
    /* absent or unreadable: recompute */
  }
  const errors = await proxyErrors(model, space, imatrix, onTensor, opts);
  const j: Record<string, Record<string, number>> = {};
  for (const [name, m] of errors) j[name] = Object.fromEntries([...m].map(([type, v]) => [typeName(type), v]));
  fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
  writeJsonAtomic(cacheFile, j);
  return { errors, cached: false };
}
