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

/** Rows per pool task: small enough that a tensor's work spreads over every thread. */
const TASK_ROWS = 64;

/** The rows of one expert the proxy uses: all, or `sample` spread evenly (the middle of each of `sample` equal bands). */
export function sampledRows(nrows: number, sample: number | undefined): number[] {
  if (sample === undefined || sample >= nrows) return Array.from({ length: nrows }, (_, r) => r);
  return Array.from({ length: sample }, (_, i) => Math.floor(((i + 0.5) * nrows) / sample));
}

/** Runs of consecutive rows in a sorted list: [first row, count] (every row: one run per band). */
function rowRuns(rows: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const r of rows) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === r) last[1]++;
    else runs.push([r, 1]);
  }
  return runs;
}

/**
 * Weighted reconstruction error of every tensor of the space for each of its options. With `rows`,
 * each tensor (each expert) contributes that many rows, spread evenly, and the sum is scaled by
 * rows in all / rows sampled: the cost is then ∝ rows × row length per tensor, not its size. All
 * the work is on the pool's threads: a task is one band of up to 64 rows, read as stored (the
 * consecutive sampled rows in one read) and sent with every option type; the worker widens the
 * rows to f32 once, quantizes, dequantizes and sums per type. Bands of the next tensors are read
 * while earlier ones run (a few per thread in flight), and each tensor's band sums are added in
 * band order, so the result does not depend on the number of threads.
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
  // a few tasks per thread in flight; the first failure ends the run at the next wait
  const inFlight = new Set<Promise<void>>();
  const maxInFlight = 4 * pool.threads;
  let failure: { error: unknown } | undefined;
  const finishers: (() => void)[] = [];
  try {
    for (const [k, t] of space.tensors.entries()) {
      onTensor?.(k, space.tensors.length, t.name);
      const info = byName.get(t.name)!;
      const ncols = t.shape[0]!;
      const nExperts = t.shape[2] ?? 1;
      const rowsPerExpert = t.elements / ncols / nExperts;
      const picked = sampledRows(rowsPerExpert, opts.rows);
      const rowBytes = info.bytes / (rowsPerExpert * nExperts);
      const im = importance(imatrix, t.name, ncols, nExperts);
      const types = t.options.map((o) => o.type);
      const nBands = Math.ceil(picked.length / TASK_ROWS);
      // expert × band → the band's error per type
      const bandErrors: number[][] = new Array(nExperts * nBands);
      for (let e = 0; e < nExperts; e++) {
        const w = im ? im.subarray(e * ncols, (e + 1) * ncols) : null;
        for (let b = 0; b < nBands; b++) {
          const band = picked.slice(b * TASK_ROWS, (b + 1) * TASK_ROWS);
          const data = new Uint8Array(band.length * rowBytes);
          let at = 0;
          for (const [first, n] of rowRuns(band)) {
            data.set(await reader.read(info, (e * rowsPerExpert + first) * rowBytes, n * rowBytes), at);
            at += n * rowBytes;
          }
          const task = pool.proxyErrors({ srcType: info.type, dstType: info.type, nrows: band.length, ncols, data: data.buffer, imatrix: w && new Float32Array(w), errorTypes: types }).then((r) => {
            if (!("errors" in r)) throw new Error(`${t.name}: row ${band[0]} cannot be quantized for the proxy (${JSON.stringify(r)})`);
            bandErrors[e * nBands + b] = r.errors;
          });
          const tracked: Promise<void> = task.catch((error: unknown) => void (failure ??= { error })).finally(() => inFlight.delete(tracked));
          inFlight.add(tracked);
          if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
          if (failure) throw failure.error;
        }
      }
      const scale = rowsPerExpert / picked.length;
      const errors = new Map<GGMLType, number>();
      out.set(t.name, errors);
      // summed once every band is back
      finishers.push(() => types.forEach((type, i) => errors.set(type, bandErrors.reduce((a, be) => a + be[i]!, 0) * scale)));
    }
    await Promise.all(inFlight);
    if (failure) throw failure.error;
    for (const f of finishers) f();
    onTensor?.(space.tensors.length, space.tensors.length, "");
  } finally {
    // every task started settles before the pool may go
    await Promise.all(inFlight);
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
