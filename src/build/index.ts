// The build pipeline: plan → output header → every tensor's data, streamed in output order.
// The main thread only reads (positioned reads of whole rows, bounded chunks) and writes; the pool
// converts to f32 and quantizes. Several chunks are in flight at once, results are written strictly
// in order, so memory is bounded by (chunks in flight × chunk size) whatever the model size.
import fs from "node:fs";
import { UserError } from "../errors.js";
import { GGMLType, mustTypeInfo, rowSize, typeName } from "../gguf/ggml-types.js";
import { dequantizeRows } from "../quant/kernels.js";
import type { GGUFKV, GGUFModel, TensorInfo } from "../gguf/model.js";
import { openModel, TensorReader } from "../gguf/reader.js";
import { createGGUFOutput, isSplitOutput, outputPaths, type GGUFOutput, type SplitOptions } from "../gguf/split.js";
import { checkOutputsAgainstInputs, resolveOutputTarget, sweepStaleTempFiles } from "../gguf/output-path.js";
import { openTempFiles, type TensorSpec } from "../gguf/writer.js";
import { isUrl } from "../gguf/source.js";
import { copyPlan } from "../plan/copy.js";
import { loadImatrix, type Imatrix } from "../imatrix/index.js";
import { OUTPUT_ALIGNMENT, planModel, type Plan, type PlannedTensor, type ResolvedSchedule } from "../plan/planner.js";
import { isQuantizedType } from "../plan/tensors.js";
import { BufferPool, defaultThreads, QuantizePool } from "../pool/index.js";
import { copySlabs, quantizeChunks, TensorDataReader } from "./chunks.js";
import { importanceFor } from "./importance.js";
import { firstNonFiniteRow } from "./validate.js";
import { runInOrder } from "./in-order.js";
import { outputMetadata } from "../plan/metadata.js";
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
  /** split output in gguf-split's layout: at most this many tensors per shard */
  splitMaxTensors?: number;
  /** llama-quantize --keep-split: one output shard per input shard, with the same tensors */
  keepSplit?: boolean;
  /** llama-quantize --override-kv entries (see parseKvOverride) */
  overrides?: readonly GGUFKV[];
  /** llama-quantize --include-weights / --exclude-weights: imatrix entries kept / dropped by substring */
  includeWeights?: readonly string[];
  excludeWeights?: readonly string[];
  /** http(s) input: connect/read timeout in ms (default 30 s) */
  httpTimeoutMs?: number;
  onProgress?: (p: BuildProgress) => void;
  onWarning?: (message: string) => void;
  /** called once the plan is known, before any data is written (with the imatrix entries it uses) */
  onPlan?: (plan: Plan, imatrix?: ImatrixUse) => void;
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
  imatrix?: ImatrixUse;
}

/** Which imatrix entries a build used: the summary names them so an unmatched imatrix shows. */
export interface ImatrixUse {
  file: string;
  format: string;
  /** entries after --include-weights / --exclude-weights (what quantize.imatrix.entries_count records) */
  entries: number;
  /** entries some quantized tensor used */
  used: number;
  /** entries no tensor used */
  unused: number;
}

/** Source types the kernels can turn into f32 (the quantized ones only with allowRequantize). */
const PLAIN_SOURCE_TYPES = new Set<GGMLType>([GGMLType.F32, GGMLType.F16, GGMLType.BF16]);
const REQUANTIZABLE_SOURCE_TYPES = new Set<GGMLType>([
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
  GGMLType.IQ4_NL, GGMLType.IQ4_XS,
  GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S,
  GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.TQ1_0, GGMLType.TQ2_0,
  GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0,
]);

/** Whether this build of the kernels can dequantize `type` (probed once per type, on one zero block). */
const dequantizable = new Map<GGMLType, boolean>();
function hasDequantizeKernel(type: GGMLType): boolean {
  let known = dequantizable.get(type);
  if (known === undefined) {
    const block = mustTypeInfo(type);
    try {
      dequantizeRows(type, new Uint8Array(block.typeSize), 1, block.blockSize);
      known = true;
    } catch (err) {
      if (!/^no (dequantize )?kernel for type/.test((err as Error).message)) throw err;
      known = false;
    }
    dequantizable.set(type, known);
  }
  return known;
}

/** chunks in flight per kernel thread: one running, one queued in the worker, the next ones read */
export const IN_FLIGHT_PER_THREAD = 4;

/** What one tensor needs, checked before the output file is created. */
export interface TensorJob {
  planned: PlannedTensor;
  /** the input tensor (a computed tensor's first input) */
  source: TensorInfo;
  quantize: boolean;
  importance: Float32Array[] | null;
  /** layer surgery: a computed tensor's inputs and how to combine them (always quantized) */
  computed?: { inputs: TensorInfo[]; recipe: Recipe<number> };
}

/** Input bytes a job reads. */
export const jobInputBytes = (j: TensorJob) => (j.computed ? j.computed.inputs.reduce((a, t) => a + t.bytes, 0) : j.source.bytes);

function checkSourceType(job: TensorJob, input: string, allowRequantize: boolean, warn: (m: string) => void, warned: Set<GGMLType>): void {
  const src = job.source.type;
  if (PLAIN_SOURCE_TYPES.has(src)) return;
  if (!isQuantizedType(src) || !REQUANTIZABLE_SOURCE_TYPES.has(src)) {
    throw new UserError(`${input}: tensor ${job.planned.name}: cannot convert from type ${typeName(src)}`);
  }
  if (!allowRequantize) {
    throw new UserError(`${input}: tensor ${job.planned.name} is ${typeName(src)}: requantizing is disabled (use --allow-requantize)`);
  }
  if (!hasDequantizeKernel(src)) {
    throw new UserError(`${input}: tensor ${job.planned.name}: cannot convert from type ${typeName(src)} (this build has no ${typeName(src)} dequantize kernel)`);
  }
  if (!warned.has(src)) {
    warned.add(src);
    warn(`re-quantizing ${typeName(src)} tensors: quality is lower than quantizing from F16/F32`);
  }
}

/** Starts every piece of work lazily, in output order: each yields the bytes to write next. */
interface Piece {
  tensorIndex: number;
  inputBytes: number;
  start(): Promise<Uint8Array>;
}

/** A computed tensor (layer surgery): each chunk reads the same rows of every input, in one buffer. */
/** A row llama.cpp's quantizer would abort on (GGML_ASSERT), refused with the tensor named. */
export function referenceAbortError(input: string, planned: PlannedTensor, row: number): UserError {
  return new UserError(
    `${input}: tensor ${planned.name}: row ${row} cannot be quantized to ${typeName(planned.dstType)}: its values are too large (llama.cpp's quantizer aborts on it)`,
  );
}

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
          if ("referenceAbortRow" in result) throw referenceAbortError(input, planned, chunk.row + result.referenceAbortRow);
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
      const row = rowSize(source.type, source.shape[0]!);
      for (const slab of copySlabs(source.type, source.shape, source.bytes)) {
        const start = async () => {
          const data = new Uint8Array(await readPooled(io, source, slab.offset, slab.length), 0, slab.length);
          const bad = firstNonFiniteRow(source.type, data, row);
          if (bad >= 0) throw new UserError(`${input}: tensor ${planned.name}: row ${slab.offset / row + bad} contains NaN or Inf`);
          return data;
        };
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
            if ("referenceAbortRow" in result) throw referenceAbortError(input, planned, chunk.row + result.referenceAbortRow);
            throw new UserError(`${input}: tensor ${planned.name}: row ${chunk.row + result.nonFiniteRow} contains NaN or Inf`);
          }
          // the quantized rows, at the start of the (usually same, pooled) buffer
          return new Uint8Array(result, 0, chunk.nrows * dstRow);
        },
      };
    }
  }
}

/** What prepareBuild resolved: everything but the tensor data. */
export interface PreparedBuild {
  model: GGUFModel;
  plan: Plan;
  /** the imatrix after --include-weights / --exclude-weights */
  imatrix?: Imatrix;
  imatrixUse?: ImatrixUse;
  /** the jobs in output order (by input shard for --keep-split) */
  jobs: TensorJob[];
  /** the output's metadata and tensors, in output order */
  kv: GGUFKV[];
  specs: TensorSpec[];
  split: SplitOptions;
  /** the files the build writes (one, or the shards; none without an output) */
  outputs: string[];
}

/** llama-quantize's prepare_imatrix: drop entries matching an excluded name, then keep only included ones. */
function filterImatrix(imatrix: Imatrix, include: readonly string[], exclude: readonly string[]): Imatrix {
  if (include.length > 0 && exclude.length > 0) throw new UserError("--include-weights and --exclude-weights cannot be used together");
  if (include.length === 0 && exclude.length === 0) return imatrix;
  const vectors = new Map([...imatrix.vectors].filter(([name]) => !exclude.some((x) => name.includes(x)) && (include.length === 0 || include.some((x) => name.includes(x)))));
  return { ...imatrix, vectors };
}

/**
 * Resolves the plan and checks everything that can be checked before writing a byte: the model,
 * the schedule, the imatrix, every source type, and every output file against every input file.
 * `hquant plan` runs it too, so it refuses what `hquant build` would refuse, with the same message.
 */
export async function prepareBuild(opts: PrepareOptions): Promise<PreparedBuild> {
  const model = await openModel(opts.input, { timeoutMs: opts.httpTimeoutMs, signal: opts.signal });
  let schedule: CopySchedule = typeof opts.schedule === "function" ? await opts.schedule(model) : opts.schedule;
  const imatrixFile = opts.imatrix ?? schedule.imatrix;
  const loaded = imatrixFile !== undefined ? await loadImatrix(imatrixFile) : undefined;
  const imatrix = loaded && filterImatrix(loaded, opts.includeWeights ?? [], opts.excludeWeights ?? []);
  if (!loaded && ((opts.includeWeights?.length ?? 0) > 0 || (opts.excludeWeights?.length ?? 0) > 0)) {
    throw new UserError("--include-weights and --exclude-weights need an importance matrix (--imatrix)");
  }
  // the planner only needs to know that there is one (a few rules depend on it); an imatrix
  // emptied by the filters is none at all, as in llama-quantize
  const effectiveImatrix = imatrix && imatrix.vectors.size > 0 ? imatrixFile : undefined;
  if (effectiveImatrix !== schedule.imatrix) schedule = { ...schedule, imatrix: effectiveImatrix };
  let plan = planModel({ kv: model.kv, tensors: model.tensors }, schedule, opts.input);
  if (schedule.copy) plan = copyPlan(plan, plan.surgery?.kv ?? model.kv, opts.input);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const warned = new Set<GGMLType>();
  const warn = opts.onWarning ?? (() => undefined);
  // layer surgery: output tensors are made from input tensors of other names; the imatrix is
  // looked up by output name, so its entries are renamed (averaged for computed layers) first
  const surgery = plan.surgery && new Map(plan.surgery.tensors.map((t) => [t.name, t]));
  for (const w of plan.surgery?.warnings ?? []) warn(w);
  const usable = imatrix && imatrix.vectors.size > 0 ? imatrix : undefined;
  const importance = usable && plan.surgery ? { ...usable, vectors: remapImatrix(usable.vectors, plan.surgery.recipes, usable.file) } : usable;
  const usedNames = new Set<string>();
  let jobs = plan.tensors.map((planned): TensorJob => {
    const made = surgery?.get(planned.name);
    const source = byName.get(made ? made.inputs[0]! : planned.name)!;
    const quantize = made?.computed === true || planned.srcType !== planned.dstType;
    const job: TensorJob = { planned, source, quantize, importance: null };
    if (made?.computed) job.computed = { inputs: made.inputs.map((n) => byName.get(n)!), recipe: made.recipe };
    if (quantize) {
      job.importance = importanceFor(planned, importance);
      // counted by input name: a surgered layer's entries serve the tensors made from them
      if (job.importance) for (const src of job.computed?.inputs ?? [source]) usedNames.add(src.name);
      for (const src of job.computed?.inputs ?? [source]) {
        checkSourceType({ ...job, source: src }, opts.input, opts.allowRequantize ?? false, warn, warned);
      }
    }
    return job;
  });
  let imatrixUse: ImatrixUse | undefined;
  if (imatrix) {
    const entries = imatrix.vectors.size;
    const used = [...imatrix.vectors.keys()].filter((n) => usedNames.has(n)).length;
    imatrixUse = { file: imatrix.file, format: imatrix.format, entries, used, unused: entries - used };
    if (used === 0) warn(`${imatrix.file}: none of its ${entries} entries matches a quantized tensor of ${opts.input}; the build uses no importance matrix`);
  }
  // --keep-split: the tensors of each input shard, in input order, as llama-quant sorts them
  if (opts.keepSplit) jobs = [...jobs].sort((x, y) => x.source.split - y.source.split || x.source.offset - y.source.offset);
  const split: SplitOptions = {
    splitMaxSize: opts.splitMaxSize,
    splitMaxTensors: opts.splitMaxTensors,
    ...(opts.keepSplit && { keepSplit: jobs.map((j) => j.source.split) }),
  };
  const kv = outputMetadata(model.kv, plan, {
    imatrix: usable && { file: usable.file, datasets: usable.datasets, entries: usable.vectors.size, chunks: usable.chunkCount },
    hquant: opts.hquant ?? false,
    overrides: opts.overrides,
  });
  const specs: TensorSpec[] = jobs.map((j) => ({ name: j.planned.name, shape: j.planned.shape, type: j.planned.dstType }));
  const outputs = opts.output !== undefined ? outputPaths(opts.output, kv, specs, split) : [];
  for (const out of outputs) resolveOutputTarget(out);
  checkOutputsAgainstInputs(outputs, model.files.map((f) => f.path).filter((p) => !isUrl(p)));
  return { model, plan, imatrix: usable, imatrixUse, jobs, kv, specs, split, outputs };
}

type CopySchedule = ResolvedSchedule & { copy?: boolean };

/** The build's options; without `output` only the output-path checks are left out (hquant plan). */
export type PrepareOptions = Omit<BuildOptions, "output"> & { output?: string };

/** Builds the output GGUF; on any error or abort no output file is left behind. */
export async function buildModel(opts: BuildOptions): Promise<BuildResult> {
  const t0 = opts.startTime ?? performance.now();
  opts.signal?.throwIfAborted();
  // the output path is checked before anything is read: a device, FIFO or folder is refused
  if (!isSplitOutput({ splitMaxSize: opts.splitMaxSize, splitMaxTensors: opts.splitMaxTensors })) resolveOutputTarget(opts.output);
  const threads = opts.pool?.threads ?? Math.max(1, Math.floor(opts.threads ?? defaultThreads()));
  // the workers start (and load the kernels) while the header is read and the plan is made
  const ownPool = opts.pool ? undefined : new QuantizePool(threads);
  let prepared: PreparedBuild;
  try {
    prepared = await prepareBuild(opts);
    opts.signal?.throwIfAborted();
  } catch (err) {
    await ownPool?.destroy();
    throw err;
  }
  const { model, plan, imatrixUse, jobs, kv, specs, split } = prepared;
  // temp files of earlier, killed runs of the same output: removed (or reported while their owner runs)
  const live = new Set(openTempFiles());
  for (const out of prepared.outputs) for (const m of sweepStaleTempFiles(resolveOutputTarget(out).file, live)) opts.onWarning?.(m);
  opts.onPlan?.(plan, imatrixUse);

  const bytesTotal = jobs.reduce((a, j) => a + jobInputBytes(j), 0);

  const reader = new TensorReader(model);
  const maxInFlight = threads * IN_FLIGHT_PER_THREAD;
  // every chunk in flight, the one being written, and one spare
  const io: ChunkIO = { data: new TensorDataReader(model, reader), buffers: new BufferPool(maxInFlight + 2) };
  let writer: GGUFOutput | undefined;
  try {
    writer = await createGGUFOutput(opts.output, kv, specs, { alignment: OUTPUT_ALIGNMENT, ...split });
    const out = writer;
    let bytesDone = 0;
    await runInOrder(
      pieces(jobs, reader, (opts.pool ?? ownPool)!, io, opts.input, opts.signal),
      maxInFlight,
      async (piece, bytes) => {
        await out.write(bytes);
        io.buffers.give(bytes.buffer); // the writer has its own copy
        bytesDone += piece.inputBytes;
        opts.onProgress?.({
          tensorIndex: piece.tensorIndex,
          tensorCount: jobs.length,
          tensorName: jobs[piece.tensorIndex]!.planned.name,
          bytesDone,
          bytesTotal,
        });
      },
      opts.signal,
    );
    await writer.finish();
  } catch (err) {
    // running chunks have settled (runInOrder); remove the partial output
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
    imatrix: imatrixUse,
  };
}

/** Where writePreparedTensors puts each tensor's data: the writer for tensor `name`. */
export type TensorSink = (name: string) => Promise<{ write(chunk: Uint8Array): Promise<void> }>;

/**
 * Some of a prepared build's tensors (in the build's order), each converted exactly as buildModel
 * converts it and streamed into the writer `sink` gives for it: tune writes a measurement's few
 * changed tensors this way instead of a whole file. Returns the bytes written.
 */
export async function writePreparedTensors(prepared: PreparedBuild, names: ReadonlySet<string>, pool: QuantizePool, sink: TensorSink, signal?: AbortSignal): Promise<number> {
  const jobs = prepared.jobs.filter((j) => names.has(j.planned.name));
  const reader = new TensorReader(prepared.model);
  const maxInFlight = pool.threads * IN_FLIGHT_PER_THREAD;
  const io: ChunkIO = { data: new TensorDataReader(prepared.model, reader), buffers: new BufferPool(maxInFlight + 2) };
  let written = 0;
  try {
    let current = -1;
    let out: { write(chunk: Uint8Array): Promise<void> } | undefined;
    await runInOrder(
      pieces(jobs, reader, pool, io, prepared.model.files[0]?.path ?? "", signal),
      maxInFlight,
      async (piece, bytes) => {
        if (piece.tensorIndex !== current) {
          current = piece.tensorIndex;
          out = await sink(jobs[current]!.planned.name);
        }
        await out!.write(bytes);
        written += bytes.length;
        io.buffers.give(bytes.buffer);
      },
      signal,
    );
  } finally {
    await io.data.close();
    await reader.close();
  }
  return written;
}
