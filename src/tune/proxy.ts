// The proxy: no forward pass. For every tensor and candidate type, quantize with hquant's own
// kernels exactly as the build will (same importance vector), dequantize, and sum the
// importance-weighted squared error Σ_rows Σ_j w_j (x_j − x̂_j)² (w_j = the imatrix's mean squared
// activation of input column j; 1 without an imatrix, or for token_embd, which llama.cpp
// quantizes without one). To second order a tensor's KLD contribution is proportional to that error,
// so the sensitivity model only needs one measured scale per group (or per tensor kind).
import fs from "node:fs";
import path from "node:path";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import type { GGUFModel } from "../gguf/model.js";
import { TensorReader } from "../gguf/reader.js";
import type { Imatrix } from "../imatrix/index.js";
import { dequantizeRows, quantizeRows } from "../quant/kernels.js";
import type { TuneSpace } from "./candidates.js";
import { writeJsonAtomic } from "./cache.js";

/** tensor name → type → weighted squared error */
export type ProxyErrors = Map<string, Map<GGMLType, number>>;

/** Importance of each column as the build uses it (null: llama.cpp quantizes without one). */
function importance(imatrix: Imatrix | undefined, name: string, ncols: number, nExperts: number): Float32Array | null {
  const v = imatrix?.vectors.get(name);
  return v && v.length === ncols * nExperts ? v : null;
}

/** Weighted reconstruction error of every tensor of the space for each of its options. */
export async function proxyErrors(
  model: GGUFModel,
  space: TuneSpace,
  imatrix: Imatrix | undefined,
  onTensor?: (done: number, total: number, name: string) => void,
): Promise<ProxyErrors> {
  const reader = new TensorReader(model);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const out: ProxyErrors = new Map();
  try {
    for (const [k, t] of space.tensors.entries()) {
      onTensor?.(k, space.tensors.length, t.name);
      const info = byName.get(t.name)!;
      const ncols = t.shape[0]!;
      const nExperts = t.shape[2] ?? 1;
      const rowsPerExpert = t.elements / ncols / nExperts;
      const raw = await reader.read(info);
      const x = info.type === GGMLType.F32 ? new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) : dequantizeRows(info.type, raw, t.elements / ncols, ncols);
      const im = importance(imatrix, t.name, ncols, nExperts);
      const errors = new Map<GGMLType, number>();
      for (const o of t.options) {
        let sum = 0;
        for (let e = 0; e < nExperts; e++) {
          const rows = x.subarray(e * rowsPerExpert * ncols, (e + 1) * rowsPerExpert * ncols);
          const w = im ? im.subarray(e * ncols, (e + 1) * ncols) : null;
          const q = quantizeRows(o.type, rows, rowsPerExpert, ncols, w);
          const y = dequantizeRows(o.type, q, rowsPerExpert, ncols);
          for (let r = 0; r < rowsPerExpert; r++) {
            const base = r * ncols;
            for (let j = 0; j < ncols; j++) {
              const d = rows[base + j]! - y[base + j]!;
              sum += (w ? w[j]! : 1) * d * d;
            }
          }
        }
        errors.set(o.type, sum);
      }
      out.set(t.name, errors);
    }
    onTensor?.(space.tensors.length, space.tensors.length, "");
  } finally {
    await reader.close();
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
  const errors = await proxyErrors(model, space, imatrix, onTensor);
  const j: Record<string, Record<string, number>> = {};
  for (const [name, m] of errors) j[name] = Object.fromEntries([...m].map(([type, v]) => [typeName(type), v]));
  fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
  writeJsonAtomic(cacheFile, j);
  return { errors, cached: false };
}
