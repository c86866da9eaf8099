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
import { BufferPool, defaultThreads, QuantizePool } from "../pool/index.js";
import { copySlabs, quantizeChunks, TensorDataReader } from "./chunks.js";
import { importanceFor } from "./importance.js";
import { outputMetadata, outputTensors } from "../plan/metadata.js";
import { remapImatrix, type Recipe } from "../surgery/index.js";

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
  /** kernel threads (default: one per core); the calling thread only reads, orders and writes */
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
  /**
   * a pool to use instead of starting one (kept running afterwards); `threads` is then its size.
   * Callers building many files pass one pool to every build (sharedQuantizePool(threads)).
   */
  pool?: QuantizePool;
  /**
   * performance.now() at which the run began, counted in `seconds` (default: when buildModel is
   * called); the CLI passes 0, the process's start, so start-up is counted too
   */
  startTime?: number;
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
  /** from `startTime` (or the call) to the output's rename */
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

/** chunks in flight per kernel thread: one running, one queued in the worker, the next ones read */
const IN_FLIGHT_PER_THREAD = 4;

/** What one tensor needs, checked before the output file is created. */
interface TensorJob {
  planned: PlannedTensor;
  /** the input tensor (a computed tensor's first input) */
  source: TensorInfo;
  quantize: boolean;
  importance: Float32Array[] | null;
  /** layer surgery: a computed tensor's inputs and how to combine them (always quantized) */
  computed?: { inputs: TensorInfo[]; recipe: Recipe<number> };
}

/** Input bytes a job reads. */
const jobInputBytes = (j: TensorJob) => (j.computed ? j.computed.inputs.reduce((a, t) => a + t.bytes, 0) : j.source.bytes);

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

/** A computed tensor (layer surgery): each chunk reads the same rows of every input, in one buffer. */
function* computedPieces(i: number, job: TensorJob, reader: TensorReader, pool: QuantizePool, input: string, signal?: AbortSignal): Generator<Piece> {
  const { planned, importance } = job;
  const { inputs, recipe } = job.computed!;
  const ncols = planned.shape[0]!;
  const rowBytes = inputs.map((t) => rowSize(t.type, ncols));
  for (const chunk of quantizeChunks(planned.shape)) {
    const lengths = rowBytes.map((r) => chunk.nrows * r);
    const total = lengths.reduce((a, b) => a + b, 0);
    yield {
      tensorIndex: i,
      inputBytes: total,
      start: async () => {
        const parts = await Promise.all(inputs.map((t, k) => reader.read(t, chunk.row * rowBytes[k]!, lengths[k]!)));
        const data = new Uint8Array(total);
        const layout = parts.map((part, k) => {
          const byteOffset = lengths.slice(0, k).reduce((a, b) => a + b, 0);
          data.set(part, byteOffset);
          return { type: inputs[k]!.type, byteOffset, byteLength: lengths[k]! };
        });
        const result = await pool.run(
          {
            srcType: planned.srcType,
            dstType: planned.dstType,
            nrows: chunk.nrows,
            ncols,
            data: data.buffer,
            imatrix: importance ? importance[chunk.expert]! : null,
            surgery: { recipe, inputs: layout },
          },
          signal,
        );
        if (!(result instanceof ArrayBuffer)) {
          throw new UserError(`${input}: tensor ${planned.name}: row ${chunk.row + result.nonFiniteRow} is NaN or Inf after layer surgery`);
        }
        return new Uint8Array(result);
      },
    };
  }
}

/** Where plain chunks are read into: reused buffers (see BufferPool), filled by positioned reads. */
interface ChunkIO {
  data: TensorDataReader;
  buffers: BufferPool;
}

/** A pooled buffer holding `length` bytes of `tensor` from `offset`. */
async function readPooled(io: ChunkIO, tensor: TensorInfo, offset: number, length: number): Promise<ArrayBuffer> {
  const buffer = io.buffers.take(length);
  await io.data.readInto(tensor, offset, new Uint8Array(buffer, 0, length));
  return buffer;
}

function* pieces(jobs: readonly TensorJob[], reader: TensorReader, pool: QuantizePool, io: ChunkIO, input: string, signal?: AbortSignal): Generator<Piece> {
  for (let i = 0; i < jobs.length; i++) {
    const { planned, source, quantize, importance } = jobs[i]!;
    if (jobs[i]!.computed) {
      yield* computedPieces(i, jobs[i]!, reader, pool, input, signal);
      continue;
    }
    if (!quantize) {
      for (const slab of copySlabs(source.type, source.shape, source.bytes)) {
        const start = async () => new Uint8Array(await readPooled(io, source, slab.offset, slab.length), 0, slab.length);
        yield { tensorIndex: i, inputBytes: slab.length, start };
      }
      continue;
    }
    const ncols = source.shape[0]!;
    const srcRow = rowSize(source.type, ncols);
    const dstRow = rowSize(planned.dstType, ncols);
    for (const chunk of quantizeChunks(source.shape)) {
      yield {
        tensorIndex: i,
        inputBytes: chunk.nrows * srcRow,
        start: async () => {
          const data = await readPooled(io, source, chunk.row * srcRow, chunk.nrows * srcRow);
          const result = await pool.run(
            {
              srcType: source.type,
              dstType: planned.dstType,
              nrows: chunk.nrows,
              ncols,
              data,
              imatrix: importance ? importance[chunk.expert]! : null,
            },
            signal,
          );
          if (!(result instanceof ArrayBuffer)) {
            throw new UserError(`${input}: tensor ${planned.name}: row ${chunk.row + result.nonFiniteRow} contains NaN or Inf`);
          }
          // the quantized rows, at the start of the (usually same, pooled) buffer
          return new Uint8Array(result, 0, chunk.nrows * dstRow);
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
  // layer surgery: output tensors are made from input tensors of other names; the imatrix is
  // looked up by output name, so its entries are renamed (averaged for computed layers) first
  const surgery = plan.surgery && new Map(plan.surgery.tensors.map((t) => [t.name, t]));
  for (const w of plan.surgery?.warnings ?? []) warn(w);
  const importance = imatrix && plan.surgery ? { ...imatrix, vectors: remapImatrix(imatrix.vectors, plan.surgery.recipes, imatrix.file) } : imatrix;
  const jobs = plan.tensors.map((planned): TensorJob => {
    const made = surgery?.get(planned.name);
    const source = byName.get(made ? made.inputs[0]! : planned.name)!;
    const quantize = made?.computed === true || planned.srcType !== planned.dstType;
    const job: TensorJob = { planned, source, quantize, importance: null };
    if (made?.computed) job.computed = { inputs: made.inputs.map((n) => byName.get(n)!), recipe: made.recipe };
    if (quantize) {
      job.importance = importanceFor(planned, importance);
      for (const src of job.computed?.inputs ?? [source]) {
        checkSourceType({ ...job, source: src }, opts.input, opts.allowRequantize ?? false, warn, warned);
      }
    }
    return job;
  });
  return { model, plan, imatrix, jobs };
}

/** Builds the output GGUF; on any error or abort no output file is left behind. */
export async function buildModel(opts: BuildOptions): Promise<BuildResult> {
  const t0 = opts.startTime ?? performance.now();
  checkOutputFolder(opts.output);
  if (sameFile(opts.input, opts.output)) throw new UserError(`${opts.output}: input and output are the same file`);
  const threads = opts.pool?.threads ?? Math.max(1, Math.floor(opts.threads ?? defaultThreads()));
  // the workers start (and load the kernels) while the header is read and the plan is made
  const ownPool = opts.pool ? undefined : new QuantizePool(threads);
  let prepared: Awaited<ReturnType<typeof prepareBuild>>;
  try {
    prepared = await prepareBuild(opts);
  } catch (err) {
    await ownPool?.destroy();
    throw err;
  }
  const { model, plan, imatrix, jobs } = prepared;
  opts.onPlan?.(plan);

  const kv = outputMetadata(model.kv, plan, {
    imatrix: imatrix && { file: imatrix.file, datasets: imatrix.datasets, entries: imatrix.vectors.size, chunks: imatrix.chunkCount },
    hquant: opts.hquant ?? false,
  });
  const specs = outputTensors(plan);
  const bytesTotal = jobs.reduce((a, j) => a + jobInputBytes(j), 0);

  const reader = new TensorReader(model);
  const maxInFlight = threads * IN_FLIGHT_PER_THREAD;
  // every chunk in flight, the one being written, and one spare
  const io: ChunkIO = { data: new TensorDataReader(model, reader), buffers: new BufferPool(maxInFlight + 2) };
  let writer: GGUFOutput | undefined;
  const inFlight: { piece: Piece; result: Promise<Uint8Array> }[] = [];
  try {
    writer = await createGGUFOutput(opts.output, kv, specs, { alignment: OUTPUT_ALIGNMENT, splitMaxSize: opts.splitMaxSize });
    const work = pieces(jobs, reader, (opts.pool ?? ownPool)!, io, opts.input, opts.signal);
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
      io.buffers.give(bytes.buffer); // the writer has its own copy
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
    await io.data.close();
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
