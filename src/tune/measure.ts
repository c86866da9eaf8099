// Sensitivity, measured: ΔKLD against the base model on the calibration text when one group's
// tensors are lowered to one type while every other tensor keeps the base's precision. The base is
// written once as shards into a temporary folder (removed on every exit path); each measurement
// writes only its group's tensors as shards of their own (shards.ts), is evaluated with the bench
// evaluator and cached on disk (cache.ts), so an interrupted tune resumes and later budgets reuse
// everything.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { evaluateAgainstBase, type BaseEvaluation, type EvalOptions } from "../eval/isolated.js";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import { shapeFallback } from "../plan/tensors.js";
import { uniformSchedule } from "../plan/schedule.js";
import { QuantizePool } from "../pool/index.js";
import { unitTensors, type TuneSpace } from "./candidates.js";
import { readJson, writeJsonAtomic } from "./cache.js";
import { ShardSet } from "./shards.js";

export interface Measurement {
  group: string;
  /** the type asked for (each tensor gets it after its row-width fallback) */
  type: GGMLType;
  kld: number;
  kldErr: number;
  ppl: number;
  topTokenPct: number;
  seconds: number;
}

export interface MeasurePoint {
  /** a group (blk.3.attn), or one tensor's name without ".weight" (blk.3.ffn_down) */
  group: string;
  type: GGMLType;
}

export interface MeasureProgress {
  done: number;
  total: number;
  /** measurements that came from the cache so far */
  cached: number;
  point: MeasurePoint;
  /** estimated seconds left (from the measurements made in this run) */
  etaSeconds: number;
}

export interface MeasureOptions extends EvalOptions {
  base: string;
  baseEval: BaseEvaluation;
  /** folder of this (model, text, ctx, chunks, imatrix)'s measurements */
  dir: string;
  imatrix?: string;
  nLayer: number;
  /** type the rest of the model keeps (the base's precision) */
  restType: GGMLType;
  onMeasure?: (p: MeasureProgress) => void;
  signal?: AbortSignal;
  /** where the temporary folder of measurement files is made (default: the OS temp dir) */
  workDir?: string;
}

const entryFile = (dir: string, p: MeasurePoint) => path.join(dir, `${p.group}@${typeName(p.type)}.json`);

export function cachedMeasurement(dir: string, p: MeasurePoint): Measurement | undefined {
  const j = readJson<Omit<Measurement, "type"> & { type: string }>(entryFile(dir, p));
  if (!j || j.group !== p.group || j.type !== typeName(p.type) || typeof j.kld !== "number") return undefined;
  return { ...j, type: p.type };
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The schedule of one measurement: the group's tensors at `type`, everything else at `restType`. */
export function measureSchedule(names: readonly string[], p: MeasurePoint, opts: Pick<MeasureOptions, "nLayer" | "restType" | "imatrix">) {
  return uniformSchedule("Q8_0", opts.nLayer, {
    name: `measure ${p.group}@${typeName(p.type)}`,
    tensorTypes: [...names.map((n) => ({ pattern: `^${escapeRegex(n)}$`, type: p.type })), { pattern: ".", type: opts.restType }],
    imatrix: opts.imatrix,
  });
}

/** Where a measurement's time and bytes went (bench/tune-scale.ts reads them). */
export interface MeasureCost {
  /** planning and writing the measured group's shards */
  buildSeconds: number;
  /** loading and evaluating the sharded model */
  evalSeconds: number;
  bytesWritten: number;
}

export interface MeasurePointsOptions extends MeasureOptions {
  /** where each measurement's time and bytes went */
  onCost?: (p: MeasurePoint, cost: MeasureCost) => void;
  /** the rest model's shards, written once: bytes and seconds */
  onBase?: (bytes: number, seconds: number) => void;
  /** more points, chosen from the measurements of `points` (measured with the same shards, appended to the result) */
  then?: (measurements: Measurement[]) => readonly MeasurePoint[];
}

/** Measures every point (cached ones are read, not re-measured); results in the order given. */
export async function measurePoints(space: TuneSpace, points: readonly MeasurePoint[], opts: MeasurePointsOptions): Promise<{ measurements: Measurement[]; measured: number }> {
  let shards: ShardSet | undefined;
  let pool: QuantizePool | undefined;
  let workDir: string | undefined;
  let made = 0;
  const measure = async (pts: readonly MeasurePoint[]): Promise<Measurement[]> => {
    const results: (Measurement | undefined)[] = pts.map((p) => cachedMeasurement(opts.dir, p));
    const todo = pts.filter((_, i) => results[i] === undefined);
    const cached = pts.length - todo.length;
    if (todo.length === 0) return results as Measurement[];
    if (!shards) {
      workDir = fs.mkdtempSync(path.join(opts.workDir ?? os.tmpdir(), "hquant-tune-"));
      pool = new QuantizePool(opts.threads);
      // the base at the rest precision, once, as shards; each measurement replaces its group's
      shards = await ShardSet.create({
        base: opts.base,
        imatrix: opts.imatrix,
        rest: measureSchedule([], { group: "", type: opts.restType }, opts),
        pool,
        dir: workDir,
        signal: opts.signal,
      });
      opts.onBase?.(shards.baseBytes, shards.baseSeconds);
    }
    const started = performance.now();
    let here = 0;
    for (const [i, p] of pts.entries()) {
      if (results[i] !== undefined) continue;
      if (opts.signal?.aborted) throw new Error("interrupted");
      const spent = (performance.now() - started) / 1000;
      opts.onMeasure?.({ done: here + cached, total: pts.length, cached, point: p, etaSeconds: here > 0 ? (spent / here) * (todo.length - here) : NaN });
      const t0 = performance.now();
      const names = unitTensors(space, p.group).map((t) => t.name);
      if (names.length === 0) throw new Error(`no tensors in group ${p.group}`);
      const model = await shards.model(measureSchedule(names, p, opts));
      try {
        const t1 = performance.now();
        const r = await evaluateAgainstBase(opts.baseEval, model.paths, opts);
        const m: Measurement = { group: p.group, type: p.type, kld: r.kld, kldErr: r.kldErr, ppl: r.ppl, topTokenPct: r.topTokenPct, seconds: (performance.now() - t0) / 1000 };
        opts.onCost?.(p, { buildSeconds: model.seconds, evalSeconds: (performance.now() - t1) / 1000, bytesWritten: model.bytes });
        writeJsonAtomic(entryFile(opts.dir, p), { ...m, type: typeName(p.type) });
        results[i] = m;
        here++;
        made++;
      } finally {
        shards.release(model.written);
      }
    }
    opts.onMeasure?.({ done: pts.length, total: pts.length, cached, point: pts[pts.length - 1]!, etaSeconds: 0 });
    return results as Measurement[];
  };
  try {
    const measurements = await measure(points);
    const more = opts.then?.(measurements) ?? [];
    return { measurements: more.length > 0 ? [...measurements, ...(await measure(more))] : measurements, measured: made };
  } finally {
    await pool?.destroy();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/** The type a tensor really gets when its group is measured at `type`. */
export function writtenType(rowLength: number, type: GGMLType): GGMLType {
  return shapeFallback(rowLength, type).type;
}
