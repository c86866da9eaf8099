// The build pipeline: plan → output header → every tensor's data, streamed in output order.
// The main thread only reads (positioned reads of whole rows, bounded chunks) and writes; the pool
// converts to f32 and quantizes. Several chunks are in flight at once, results are written strictly
// in order, so memory is bounded by (chunks in flight × chunk size) whatever the model size.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { GGMLType, rowSize, typeName } from "../gguf/ggml-types.js";
import type { GGUFModel, TensorInfo } from "../gguf/model.js";
import { openModel, TensorReader } from "../gguf/reader.js";
import { createGGUFOutput, type GGUFOutput } from "../gguf/split.js";
import { loadImatrix, type Imatrix } from "../imatrix/index.js";
import { OUTPUT_ALIGNMENT, planModel, type Plan, type PlannedTensor, type ResolvedSchedule } from "../plan/planner.js";
import { isQuantizedType } from "../plan/tensors.js";
import { defaultThreads, QuantizePool } from "../pool/index.js";
import { copySlabs, quantizeChunks } from "./chunks.js";
import { importanceFor } from "./importance.js";
import { outputMetadata, outputTensors } from "../plan/metadata.js";

export interface BuildProgress {
  /** index (in output order) and name of the tensor being written */
  tensorIndex: number;
  tensorCount: number;
  tensorName: string;
  /** input bytes whose output has been written */
  bytesDone: number;
  bytesTotal: number;
}

export interface BuildOptions {
  input: string;
  output: string;
  /** the schedule, or how to resolve it once the model's header is known */
  schedule: ResolvedSchedule | ((model: GGUFModel) => ResolvedSchedule | Promise<ResolvedSchedule>);
  /** worker threads (default: one per core) */
  threads?: number;
  /** imatrix file (default: the schedule's) */
  imatrix?: string;
  /** record how the file was made under hquant.* keys (omit or false: exactly llama.cpp's metadata) */
  hquant?: { version: string } | false;
  /** allow quantized inputs (Q8_0 …) to be re-quantized */
  allowRequantize?: boolean;
  /** split output in gguf-split's layout: at most this many bytes of tensor data per shard */
  splitMaxSize?: number;
  onProgress?: (p: BuildProgress) => void;
  onWarning?: (message: string) => void;
  /** called once the plan is known, before any data is written */
  onPlan?: (plan: Plan) => void;
  signal?: AbortSignal;
  /** a pool to use instead of starting one (kept running afterwards); `threads` is then its size */
  pool?: QuantizePool;
}

export interface BuildResult {
  input: string;
  output: string;
  /** the files written: [output], or the shards of a split output */
  outputs: string[];
  plan: Plan;
  /** bytes written (all shards) */
  fileSize: number;
  inputBytes: number;
  threads: number;
  seconds: number;
  imatrix?: { file: string; entries: number; format: string };
}

/** Source types the kernels can turn into f32 (the quantized ones only with allowRequantize). */
const PLAIN_SOURCE_TYPES = new Set<GGMLType>([GGMLType.F32, GGMLType.F16, GGMLType.BF16]);
const REQUANTIZABLE_SOURCE_TYPES = new Set<GGMLType>([
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
  GGMLType.IQ4_NL, GGMLType.IQ4_XS,
]);

/** chunks in flight per worker: one running, the next ones read and queued */
const IN_FLIGHT_PER_THREAD = 3;

/** What one tensor needs, checked before the output file is created. */
interface TensorJob {
  planned: PlannedTensor;
  source: TensorInfo;
  quantize: boolean;
  importance: Float32Array[] | null;
}

function checkSourceType(job: TensorJob, input: string, allowRequantize: boolean, warn: (m: string) => void, warned: Set<GGMLType>): void {
  const src = job.source.type;
  if (PLAIN_SOURCE_TYPES.has(src)) return;
  if (!isQuantizedType(src) || !REQUANTIZABLE_SOURCE_TYPES.has(src)) {
    throw new UserError(`${input}: tensor ${job.planned.name}: cannot convert from type ${typeName(src)}`);
  }
  if (!allowRequantize) {
    throw new UserError(`${input}: tensor ${job.planned.name} is ${typeName(src)}: requantizing is disabled (use --allow-requantize)`);
  }
  if (!warned.has(src)) {
    warned.add(src);
    warn(`re-quantizing ${typeName(src)} tensors: quality is lower than quantizing from F16/F32`);
  }
}

/** The output's folder must exist and be writable: checked before any work. */
function checkOutputFolder(output: string): void {
  const dir = path.dirname(path.resolve(output));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UserError(`${output}: output folder ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`${output}: ${dir} is not a folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UserError(`${output}: output folder ${dir} is not writable`);
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}

/** Starts every piece of work lazily, in output order: each yields the bytes to write next. */
interface Piece {
  tensorIndex: number;
  inputBytes: number;
  start(): Promise<Uint8Array>;
}

function* pieces(jobs: readonly TensorJob[], reader: TensorReader, pool: QuantizePool, input: string, signal?: AbortSignal): Generator<Piece> {
  for (let i = 0; i < jobs.length; i++) {
    const { planned, source, quantize, importance } = jobs[i]!;
    if (!quantize) {
      for (const slab of copySlabs(source.type, source.shape, source.bytes)) {
        yield { tensorIndex: i, inputBytes: slab.length, start: () => reader.read(source, slab.offset, slab.length) };
      }
      continue;
    }
    const ncols = source.shape[0]!;
    const srcRow = rowSize(source.type, ncols);
    for (const chunk of quantizeChunks(source.shape)) {
      yield {
        tensorIndex: i,
        inputBytes: chunk.nrows * srcRow,
        start: async () => {
          const raw = await reader.read(source, chunk.row * srcRow, chunk.nrows * srcRow);
          const data = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? raw.buffer : raw.slice().buffer;
          const result = await pool.run(
            {
              srcType: source.type,
              dstType: planned.dstType,
              nrows: chunk.nrows,
              ncols,
              data: data as ArrayBuffer,
              imatrix: importance ? importance[chunk.expert]! : null,
            },
            signal,
          );
          if (!(result instanceof ArrayBuffer)) {
            throw new UserError(`${input}: tensor ${planned.name}: row ${chunk.row + result.nonFiniteRow} contains NaN or Inf`);
          }
          return new Uint8Array(result);
        },
      };
    }
  }
}

/** Resolves the plan and checks everything that can be checked before writing a byte. */
export async function prepareBuild(opts: BuildOptions): Promise<{ model: GGUFModel; plan: Plan; imatrix?: Imatrix; jobs: TensorJob[] }> {
  const model = await openModel(opts.input);
  let schedule = typeof opts.schedule === "function" ? await opts.schedule(model) : opts.schedule;
  const imatrixFile = opts.imatrix ?? schedule.imatrix;
  const imatrix = imatrixFile !== undefined ? await loadImatrix(imatrixFile) : undefined;
  // the planner only needs to know that there is one (a few rules depend on it)
  if (imatrixFile !== schedule.imatrix) schedule = { ...schedule, imatrix: imatrixFile };
  const plan = planModel({ kv: model.kv, tensors: model.tensors }, schedule, opts.input);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const warned = new Set<GGMLType>();
  const warn = opts.onWarning ?? (() => undefined);
  const jobs = plan.tensors.map((planned): TensorJob => {
    const source = byName.get(planned.name)!;
    const quantize = planned.srcType !== planned.dstType;
    const job: TensorJob = { planned, source, quantize, importance: null };
    if (quantize) {
      job.importance = importanceFor(planned, imatrix);
      checkSourceType(job, opts.input, opts.allowRequantize ?? false, warn, warned);
    }
    return job;
  });
  return { model, plan, imatrix, jobs };
}

/** Builds the output GGUF; on any error or abort no output file is left behind. */
export async function buildModel(opts: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  checkOutputFolder(opts.output);
  if (sameFile(opts.input, opts.output)) throw new UserError(`${opts.output}: input and output are the same file`);
  const { model, plan, imatrix, jobs } = await prepareBuild(opts);
  opts.onPlan?.(plan);

  const kv = outputMetadata(model.kv, plan, {
    imatrix: imatrix && { file: imatrix.file, datasets: imatrix.datasets, entries: imatrix.vectors.size, chunks: imatrix.chunkCount },
    hquant: opts.hquant ?? false,
  });
  const specs = outputTensors(plan);
  const threads = opts.pool?.threads ?? Math.max(1, Math.floor(opts.threads ?? defaultThreads()));
  const bytesTotal = jobs.reduce((a, j) => a + j.source.bytes, 0);

  const reader = new TensorReader(model);
  let writer: GGUFOutput | undefined;
  let ownPool: QuantizePool | undefined;
  const inFlight: { piece: Piece; result: Promise<Uint8Array> }[] = [];
  try {
    writer = await createGGUFOutput(opts.output, kv, specs, { alignment: OUTPUT_ALIGNMENT, splitMaxSize: opts.splitMaxSize });
    if (!opts.pool && jobs.some((j) => j.quantize)) ownPool = new QuantizePool(threads);
    const work = pieces(jobs, reader, (opts.pool ?? ownPool)!, opts.input, opts.signal);
    const maxInFlight = threads * IN_FLIGHT_PER_THREAD;
    let bytesDone = 0;
    const fill = () => {
      while (inFlight.length < maxInFlight) {
        const next = work.next();
        if (next.done) return;
        const result = next.value.start();
        result.catch(() => undefined); // awaited in order below; keeps an early failure from being "unhandled"
        inFlight.push({ piece: next.value, result });
      }
    };
    fill();
    while (inFlight.length > 0) {
      if (opts.signal?.aborted) throw new UserError("interrupted");
      const { piece, result } = inFlight.shift()!;
      const bytes = await result;
      fill();
      await writer.write(bytes);
      bytesDone += piece.inputBytes;
      opts.onProgress?.({
        tensorIndex: piece.tensorIndex,
        tensorCount: jobs.length,
        tensorName: jobs[piece.tensorIndex]!.planned.name,
        bytesDone,
        bytesTotal,
      });
    }
    await writer.finish();
  } catch (err) {
    // let running chunks settle before tearing down, then remove the partial output
    await Promise.allSettled(inFlight.map((f) => f.result));
    await writer?.abort();
    throw err;
  } finally {
    await ownPool?.destroy();
    await reader.close();
  }

  return {
    input: opts.input,
    output: opts.output,
    outputs: writer.paths,
    plan,
    fileSize: writer.paths.reduce((n, p) => n + fs.statSync(p).size, 0),
    inputBytes: bytesTotal,
    threads,
    seconds: (performance.now() - t0) / 1000,
    imatrix: imatrix ? { file: imatrix.file, entries: imatrix.vectors.size, format: imatrix.format } : undefined,
  };
}
