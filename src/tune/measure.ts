// Sensitivity, measured: ΔKLD against the base model on the calibration text when one group's
// tensors are lowered to one type while every other tensor keeps the base's precision. Each
// measurement file is built into a temporary folder (removed on every exit path), evaluated with the
// bench evaluator and cached on disk (cache.ts), so an interrupted tune resumes and later budgets
// reuse everything.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildModel } from "../build/index.js";
import { evaluateAgainstBase, type BaseEvaluation, type EvalOptions } from "../eval/isolated.js";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import { shapeFallback } from "../plan/tensors.js";
import { uniformSchedule } from "../plan/schedule.js";
import { QuantizePool } from "../pool/index.js";
import { unitTensors, type TuneSpace } from "./candidates.js";
import { readJson, writeJsonAtomic } from "./cache.js";

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

/** Measures every point (cached ones are read, not re-measured); results in the order given. */
export async function measurePoints(space: TuneSpace, points: readonly MeasurePoint[], opts: MeasureOptions): Promise<{ measurements: Measurement[]; measured: number }> {
  const results: (Measurement | undefined)[] = points.map((p) => cachedMeasurement(opts.dir, p));
  const todo = points.filter((_, i) => results[i] === undefined);
  let cached = points.length - todo.length;
  if (todo.length === 0) return { measurements: results as Measurement[], measured: 0 };
  const workDir = fs.mkdtempSync(path.join(opts.workDir ?? os.tmpdir(), "hquant-tune-"));
  const pool = new QuantizePool(opts.threads);
  const started = performance.now();
  let made = 0;
  try {
    for (const [i, p] of points.entries()) {
      if (results[i] !== undefined) continue;
      if (opts.signal?.aborted) throw new Error("interrupted");
      const spent = (performance.now() - started) / 1000;
      opts.onMeasure?.({ done: made + cached, total: points.length, cached, point: p, etaSeconds: made > 0 ? (spent / made) * (todo.length - made) : NaN });
      const t0 = performance.now();
      const file = path.join(workDir, `${p.group}-${typeName(p.type)}.gguf`);
      const names = unitTensors(space, p.group).map((t) => t.name);
      if (names.length === 0) throw new Error(`no tensors in group ${p.group}`);
      try {
        await buildModel({
          input: opts.base,
          output: file,
          pool,
          imatrix: opts.imatrix,
          hquant: false,
          signal: opts.signal,
          schedule: uniformSchedule("Q8_0", opts.nLayer, {
            name: `measure ${p.group}@${typeName(p.type)}`,
            tensorTypes: [
              ...names.map((n) => ({ pattern: `^${escapeRegex(n)}$`, type: p.type })),
              { pattern: ".", type: opts.restType },
            ],
            imatrix: opts.imatrix,
          }),
        });
        const r = await evaluateAgainstBase(opts.baseEval, file, opts);
        const m: Measurement = { group: p.group, type: p.type, kld: r.kld, kldErr: r.kldErr, ppl: r.ppl, topTokenPct: r.topTokenPct, seconds: (performance.now() - t0) / 1000 };
        writeJsonAtomic(entryFile(opts.dir, p), { ...m, type: typeName(p.type) });
        results[i] = m;
        made++;
      } finally {
        fs.rmSync(file, { force: true });
      }
    }
  } finally {
    await pool.destroy();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  opts.onMeasure?.({ done: points.length, total: points.length, cached, point: points[points.length - 1]!, etaSeconds: 0 });
  return { measurements: results as Measurement[], measured: made };
}

/** The type a tensor really gets when its group is measured at `type`. */
export function writtenType(rowLength: number, type: GGMLType): GGMLType {
  return shapeFallback(rowLength, type).type;
}
