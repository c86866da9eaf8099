// Several outputs of one input in one pass (hquant release): each source chunk is read once and
// quantized for every output that needs it, and each output is streamed to its own writer in its
// own order, so every file is byte for byte what buildModel writes alone. Outputs whose tensors
// are not one-for-one with the input's (layer surgery that computes tensors, --keep-split) cannot
// share the reads and are built alone with buildModel.
import fs from "node:fs";
import { rowSize } from "../gguf/ggml-types.js";
import type { GGUFKV } from "../gguf/model.js";
import { TensorReader } from "../gguf/reader.js";
import { createGGUFOutput, type GGUFOutput } from "../gguf/split.js";
import { resolveOutputTarget, sweepStaleTempFiles } from "../gguf/output-path.js";
import { openTempFiles } from "../gguf/writer.js";
import { OUTPUT_ALIGNMENT } from "../plan/planner.js";
import { BufferPool, defaultThreads, QuantizePool } from "../pool/index.js";
import { quantizeChunks, TensorDataReader } from "./chunks.js";
import { firstNonFiniteRow } from "./validate.js";
import { runInOrder } from "./in-order.js";
import { UserError } from "../errors.js";
import {
  buildModel,
  IN_FLIGHT_PER_THREAD,
  prepareBuild,
  referenceAbortError,
  type BuildOptions,
  type BuildResult,
  type PreparedBuild,
} from "./index.js";

/** One output of a multi-output build: its path, schedule and the options that differ per output. */
export interface MultiBuildOutput {
  output: string;
  schedule: BuildOptions["schedule"];
  imatrix?: string;
  splitMaxSize?: number;
}

export interface MultiBuildProgress {
  /** input bytes read and written to every output */
  bytesDone: number;
  bytesTotal: number;
  tensorName: string;
  /** the outputs this pass is writing (indices into `outputs`) */
  outputs: number[];
}

export interface MultiBuildOptions extends Omit<BuildOptions, "output" | "schedule" | "imatrix" | "splitMaxSize" | "onProgress" | "onPlan"> {
  outputs: MultiBuildOutput[];
  onProgress?: (p: MultiBuildProgress) => void;
  /** every output's plan, before any data is written */
  onPlan?: (index: number, prepared: PreparedBuild) => void;
}

export interface MultiBuildResult extends BuildResult {
  /** the output's metadata as written (shards add split.*) */
  kv: GGUFKV[];
}

/** Whether an output's tensors are one-for-one with input tensors in input order (no computed tensors, no keep-split). */
function sharesReads(p: PreparedBuild, opts: MultiBuildOptions): boolean {
  return !opts.keepSplit && p.jobs.every((j) => !j.computed);
}

/** Quantizes the input into every output, reading each source tensor once per pass. */
export async function buildModels(opts: MultiBuildOptions): Promise<MultiBuildResult[]> {
  const t0 = opts.startTime ?? performance.now();
  opts.signal?.throwIfAborted();
  const threads = opts.pool?.threads ?? Math.max(1, Math.floor(opts.threads ?? defaultThreads()));
  const ownPool = opts.pool ? undefined : new QuantizePool(threads);
  const pool = (opts.pool ?? ownPool)!;
  try {
    const prepared: PreparedBuild[] = [];
    for (const o of opts.outputs) {
      prepared.push(await prepareBuild({ ...opts, onProgress: undefined, onPlan: undefined, output: o.output, schedule: o.schedule, imatrix: o.imatrix, splitMaxSize: o.splitMaxSize }));
    }
    const live = new Set(openTempFiles());
    for (const p of prepared) for (const out of p.outputs) for (const m of sweepStaleTempFiles(resolveOutputTarget(out).file, live)) opts.onWarning?.(m);
    prepared.forEach((p, k) => opts.onPlan?.(k, p));
    // groups of outputs reading the same tensors in the same order (normally all of them)
    const groups = new Map<string, number[]>();
    const alone: number[] = [];
    prepared.forEach((p, k) => {
      if (!sharesReads(p, opts)) return alone.push(k);
      const key = p.jobs.map((j) => j.source.name).join("\n");
      groups.set(key, [...(groups.get(key) ?? []), k]);
    });
    const results: MultiBuildResult[] = new Array(prepared.length);
    for (const group of groups.values()) {
      const paths = await onePass(group, prepared, pool, threads, opts);
      for (const [i, k] of group.entries()) {
        const p = prepared[k]!;
        results[k] = {
          input: opts.input,
          output: opts.outputs[k]!.output,
          outputs: paths[i]!,
          plan: p.plan,
          fileSize: paths[i]!.reduce((n, f) => n + fs.statSync(f).size, 0),
          inputBytes: p.jobs.reduce((a, j) => a + j.source.bytes, 0),
          threads,
          seconds: (performance.now() - t0) / 1000,
          imatrix: p.imatrixUse,
          kv: p.kv,
        };
      }
    }
    for (const k of alone) {
      const o = opts.outputs[k]!;
      const r = await buildModel({
        ...opts,
        output: o.output,
        schedule: o.schedule,
        imatrix: o.imatrix,
        splitMaxSize: o.splitMaxSize,
        pool,
        startTime: t0,
        onPlan: undefined,
        onProgress: (p) => opts.onProgress?.({ bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, tensorName: p.tensorName, outputs: [k] }),
      });
      results[k] = { ...r, kv: prepared[k]!.kv };
    }
    return results;
  } finally {
    await ownPool?.destroy();
  }
}

interface Piece {
  tensorIndex: number;
  inputBytes: number;
  /** one result per output of the group, in group order */
  start(): Promise<Uint8Array[]>;
}

/** One pass over the input writing every output of `group`; returns each output's files. */
async function onePass(group: number[], prepared: PreparedBuild[], pool: QuantizePool, threads: number, opts: MultiBuildOptions): Promise<string[][]> {
  const first = prepared[group[0]!]!;
  const model = first.model;
  const n = first.jobs.length;
  const bytesTotal = first.jobs.reduce((a, j) => a + j.source.bytes, 0);
  const reader = new TensorReader(model);
  const data = new TensorDataReader(model, reader);
  const writers: GGUFOutput[] = [];
  // every piece starts one task per output: the bound on tasks in flight is the single build's
  const maxInFlight = Math.max(2, Math.ceil((threads * IN_FLIGHT_PER_THREAD) / group.length));
  // Each quantizing output needs its own copy of the source rows (the worker writes its result
  // over them): reused buffers, as in buildModel. Fresh buffers per chunk and output cost more
  // main-thread time (allocation, page faults, GC) than the reads saved, on a 1.1 GB model.
  // Enough for every piece in flight and the one being written, one buffer per output each.
  const buffers = new BufferPool((maxInFlight + 1) * group.length + 2);
  const input = opts.input;
  function* pieces(): Generator<Piece> {
    for (let i = 0; i < n; i++) {
      const source = first.jobs[i]!.source;
      const ncols = source.shape[0]!;
      const srcRow = rowSize(source.type, ncols);
      const jobs = group.map((k) => prepared[k]!.jobs[i]!);
      const copied = jobs.some((j) => !j.quantize);
      const quantized = jobs.filter((j) => j.quantize).length;
      for (const chunk of quantizeChunks(source.shape)) {
        const length = chunk.nrows * srcRow;
        yield {
          tensorIndex: i,
          inputBytes: length,
          start: async () => {
            const read = buffers.take(length);
            const rows = new Uint8Array(read, 0, length);
            await data.readInto(source, chunk.row * srcRow, rows);
            if (copied) {
              const bad = firstNonFiniteRow(source.type, rows, srcRow);
              if (bad >= 0) throw new UserError(`${input}: tensor ${jobs.find((j) => !j.quantize)!.planned.name}: row ${chunk.row + bad} contains NaN or Inf`);
            }
            // the read buffer itself goes to the last quantizing output unless a copying output still needs it
            let copiesLeft = copied ? quantized : quantized - 1;
            return Promise.all(
              jobs.map(async (job) => {
                if (!job.quantize) return rows;
                let task = read;
                if (copiesLeft-- > 0) {
                  task = buffers.take(length);
                  new Uint8Array(task, 0, length).set(rows);
                }
                const dstRow = rowSize(job.planned.dstType, ncols);
                const result = await pool.run(
                  {
                    srcType: source.type,
                    dstType: job.planned.dstType,
                    nrows: chunk.nrows,
                    ncols,
                    data: task, // transferred to the worker, which writes the quantized rows over it
                    imatrix: job.importance ? job.importance[chunk.expert]! : null,
                  },
                  opts.signal,
                );
                if (!(result instanceof ArrayBuffer)) {
                  if ("referenceAbortRow" in result) throw referenceAbortError(input, job.planned, chunk.row + result.referenceAbortRow);
                  throw new UserError(`${input}: tensor ${job.planned.name}: row ${chunk.row + result.nonFiniteRow} contains NaN or Inf`);
                }
                return new Uint8Array(result, 0, chunk.nrows * dstRow);
              }),
            );
          },
        };
      }
    }
  }
  try {
    for (const k of group) {
      const p = prepared[k]!;
      writers.push(await createGGUFOutput(opts.outputs[k]!.output, p.kv, p.specs, { alignment: OUTPUT_ALIGNMENT, ...p.split }));
    }
    let bytesDone = 0;
    await runInOrder(
      pieces(),
      maxInFlight,
      async (piece, parts) => {
        for (let g = 0; g < group.length; g++) await writers[g]!.write(parts[g]!);
        // the writers have their own copies (a buffer shared by copying outputs is kept once)
        for (const part of parts) buffers.give(part.buffer);
        bytesDone += piece.inputBytes;
        opts.onProgress?.({ bytesDone, bytesTotal, tensorName: first.jobs[piece.tensorIndex]!.planned.name, outputs: group });
      },
      opts.signal,
    );
    // every output complete before any is renamed into place
    for (const w of writers) await w.finish();
    return writers.map((w) => w.paths);
  } catch (err) {
    // running chunks have settled (runInOrder)
    for (const w of writers) await w.abort();
    throw err;
  } finally {
    await data.close();
    await reader.close();
  }
}
