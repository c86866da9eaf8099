// Several outputs of one input in one pass (hquant release): each source chunk is read once and
// quantized for every output that needs it by one pool task, which widens the rows to f32 once
// for all of them (so N outputs cost less CPU than N builds, not only fewer reads), and each
// output is streamed to its own writer in its own order, so every file is byte for byte what
// buildModel writes alone. Outputs whose tensors
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
  // One pool task per piece carries every quantizing output (the worker widens each slice to f32
  // once for all of them), so a piece is up to group.length times buildModel's chunk of work. The
  // window keeps two tasks per kernel thread (one running, one queued in its worker) and reads
  // ahead as much work as buildModel does (IN_FLIGHT_PER_THREAD − 2 chunks per thread, that is
  // that many pieces ÷ the outputs). Memory stays bounded whatever the model's size: the window
  // × (source + one buffer per output) chunk buffers, ≈0.5 MB each for F16 sources (16 threads,
  // 5 outputs: 39 pieces, ≈120 MB).
  const maxInFlight = 2 * threads + Math.ceil((threads * (IN_FLIGHT_PER_THREAD - 2)) / group.length);
  // Reused buffers, as in buildModel: fresh buffers per chunk and output cost more main-thread
  // time (allocation, page faults, GC) than the reads saved, on a 1.1 GB model. Enough for every
  // piece in flight and the one being written: the source and one buffer per output each.
  const buffers = new BufferPool((maxInFlight + 1) * (group.length + 1) + 2);
  const input = opts.input;
  function* pieces(): Generator<Piece> {
    for (let i = 0; i < n; i++) {
      const source = first.jobs[i]!.source;
      const ncols = source.shape[0]!;
      const srcRow = rowSize(source.type, ncols);
      const jobs = group.map((k) => prepared[k]!.jobs[i]!);
      const copied = jobs.some((j) => !j.quantize);
      // the outputs that quantize (indices into jobs); the others write the source bytes as they are
      const quantizing = jobs.flatMap((j, g) => (j.quantize ? [g] : []));
      const dstRows = quantizing.map((g) => rowSize(jobs[g]!.planned.dstType, ncols));
      // one output may write over the source rows (as in buildModel) unless a copying output writes them
      const inPlace = copied ? -1 : dstRows.findIndex((r) => r <= srcRow);
      for (const chunk of quantizeChunks(source.shape)) {
        const length = chunk.nrows * srcRow;
        yield {
          tensorIndex: i,
          inputBytes: length,
          start: async () => {
            const read = buffers.take(length);
            await data.readInto(source, chunk.row * srcRow, new Uint8Array(read, 0, length));
            if (copied) {
              const bad = firstNonFiniteRow(source.type, new Uint8Array(read, 0, length), srcRow);
              if (bad >= 0) throw new UserError(`${input}: tensor ${jobs.find((j) => !j.quantize)!.planned.name}: row ${chunk.row + bad} contains NaN or Inf`);
            }
            if (quantizing.length === 0) return jobs.map(() => new Uint8Array(read, 0, length));
            const result = await pool.runMulti(
              {
                srcType: source.type,
                nrows: chunk.nrows,
                ncols,
                data: read, // transferred to the worker and moved back (unchanged unless an output writes over it)
                outputs: quantizing.map((g, q) => {
                  const job = jobs[g]!;
                  return {
                    dstType: job.planned.dstType,
                    imatrix: job.importance ? job.importance[chunk.expert]! : null,
                    dst: q === inPlace ? null : buffers.take(chunk.nrows * dstRows[q]!),
                  };
                }),
              },
              opts.signal,
            );
            if (!("source" in result)) {
              const job = jobs[quantizing[result.output]!]!;
              if ("referenceAbortRow" in result) throw referenceAbortError(input, job.planned, chunk.row + result.referenceAbortRow);
              throw new UserError(`${input}: tensor ${job.planned.name}: row ${chunk.row + result.nonFiniteRow} contains NaN or Inf`);
            }
            // the source buffer is reused at once when no output's part is in it
            if (!copied && inPlace < 0) buffers.give(result.source);
            const parts: Uint8Array[] = jobs.map(() => new Uint8Array(result.source, 0, length));
            quantizing.forEach((g, q) => (parts[g] = new Uint8Array(result.outputs[q]!, 0, chunk.nrows * dstRows[q]!)));
            return parts;
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
