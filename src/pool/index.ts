// The kernel pool: piscina, with `threads` workers doing all kernel work, while the calling (main)
// thread only reads, hands out chunks, orders the results and writes, so its I/O overlaps with the
// workers' compute. What hquant adds to piscina, and why:
// - the kernels are compiled once per process and the WebAssembly.Module goes to every worker in
//   workerData (no worker compiles them; the compiled code is shared);
// - chunk buffers are moved, never cloned: the source ArrayBuffer is in the transfer list, the
//   worker writes the quantized rows over it and Piscina.move()s the same buffer back, and a
//   BufferPool hands it out again, so in steady state a build allocates no chunk memory (a
//   multi-output task, runMulti, moves its source and one destination buffer per output the same way);
// - two tasks per worker (one running, one waiting in its port), so a worker never waits for the
//   main thread between chunks;
// - workers get none of the parent's loaders (tsx, vitest), only its profiling flags;
// - sharedQuantizePool keeps one pool per process for callers that build many files.
import { setMaxListeners } from "node:events";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Piscina } from "piscina";
import { UserError } from "../errors.js";
import type { GGMLType } from "../gguf/ggml-types.js";
import { kernelModule } from "../quant/kernels.js";
import type { MultiQuantizeTask, MultiQuantizeTaskResult, ProxyTaskResult, QuantizeTask, QuantizeTaskResult } from "./task.js";

export type { MultiQuantizeTask, MultiQuantizeTaskResult, MultiTaskOutput, ProxyTaskErrors, ProxyTaskResult, QuantizeTask, QuantizeTaskResult } from "./task.js";

/**
 * Workers must be JavaScript at run time, so the pool always loads the compiled worker:
 * <repo>/dist/pool/worker.js — the same path from src/pool (under vitest/tsx) and dist/pool.
 */
export const WORKER_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/pool/worker.js");

export function defaultThreads(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

/**
 * piscina is required where a pool starts, not imported with this module: loading it costs
 * ~20 ms (more under load), which commands that never quantize (plan, inspect, …) need not pay.
 */
const loadPiscina = (): typeof Piscina => (createRequire(import.meta.url)("piscina") as typeof import("piscina")).Piscina;

/** Profiling flags (node --cpu-prof …) are passed on to workers, so a profile has one file per kernel thread. */
function profilingFlags(argv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (!/^--(cpu|heap)-prof/.test(flag)) continue;
    kept.push(flag);
    // `--cpu-prof-dir DIR` (the value as the next argument)
    if (/^--(cpu|heap)-prof-(dir|name|interval)$/.test(flag) && i + 1 < argv.length) kept.push(argv[++i]!);
  }
  return kept;
}

/**
 * A worker that died (killed, out of memory) fails its tasks with piscina's error; the build shows
 * it as one line, not a stack. piscina starts a fresh worker in its place.
 */
function workerDeath(err: unknown): UserError | undefined {
  if (!(err instanceof Error)) return undefined;
  const died = /^worker exited with code: /.test(err.message) || (err as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY";
  return died ? new UserError(`a kernel thread died (${err.message})`) : undefined;
}

/** `threads` kernel threads (piscina workers); the caller's thread does no kernel work. */
export class QuantizePool {
  readonly threads: number;
  private readonly piscina: Piscina;
  private destroyed = false;
  /**
   * piscina adds an abort listener to a task's signal for as long as the task is queued or
   * running; a build has threads × 4 tasks in flight, past Node's 10-listener warning on the
   * caller's signal. So each caller signal gets one listener, relayed to a signal of the pool's own.
   */
  private readonly relays = new WeakMap<AbortSignal, AbortSignal>();

  /** Starts the workers at once (they start while the caller reads the model). */
  constructor(threads = defaultThreads()) {
    if (!fs.existsSync(WORKER_PATH)) throw new Error(`worker pool not built: ${WORKER_PATH} is missing (run npm run build:ts)`);
    this.threads = Math.max(1, Math.floor(threads));
    const Pool = loadPiscina();
    this.piscina = new Pool({
      filename: WORKER_PATH,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 2,
      workerData: { kernels: kernelModule() },
      // the worker is plain JS: none of the parent's loaders, which every worker would start again
      execArgv: profilingFlags(process.execArgv),
      // a worker's JS heap holds only code and a few task objects (chunks are in ArrayBuffers and
      // WASM memory): a small young generation keeps its garbage small too
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
  }

  /**
   * Quantizes one chunk; `task.data` is transferred (unusable by the caller afterwards). The
   * result's first rowSize(dstType, ncols) × nrows bytes are the quantized rows: it is `task.data`
   * itself whenever a destination row fits in a source row (ready to be handed out again), else a
   * new buffer. An abort rejects with the signal's reason (a running task's worker is replaced).
   */
  async run(task: QuantizeTask, signal?: AbortSignal): Promise<QuantizeTaskResult> {
    return this.dispatch<QuantizeTaskResult>(task, [task.data], signal);
  }

  /**
   * Quantizes one chunk to several types, widening the source rows once (see MultiQuantizeTask);
   * `task.data` and every output's dst are transferred and come back in the result. An abort
   * rejects with the signal's reason.
   */
  async runMulti(task: MultiQuantizeTask, signal?: AbortSignal): Promise<MultiQuantizeTaskResult> {
    return this.dispatch<MultiQuantizeTaskResult>(task, [task.data, ...task.outputs.flatMap((o) => (o.dst ? [o.dst] : []))], signal);
  }

  /**
   * tune's proxy: the weighted squared error of the chunk's rows for each of `task.errorTypes`
   * (see ProxyTaskErrors), computed on a worker; `task.data` is transferred.
   */
  async proxyErrors(task: QuantizeTask & { errorTypes: GGMLType[] }): Promise<ProxyTaskResult> {
    return this.dispatch<ProxyTaskResult>(task, [task.data]);
  }

  /** One task to a worker, `transferList` moved; a dead worker or a destroyed pool is one line, an abort the signal's reason. */
  private async dispatch<T>(task: QuantizeTask | MultiQuantizeTask, transferList: ArrayBuffer[], signal?: AbortSignal): Promise<T> {
    if (this.destroyed) throw new Error("quantize pool destroyed");
    signal?.throwIfAborted();
    try {
      return (await this.piscina.run(task, { transferList, signal: signal && this.relay(signal) })) as T;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (this.destroyed) throw new Error("quantize pool destroyed");
      throw workerDeath(err) ?? err;
    }
  }

  private relay(signal: AbortSignal): AbortSignal {
    let relayed = this.relays.get(signal);
    if (!relayed) {
      const controller = new AbortController();
      setMaxListeners(0, controller.signal);
      signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
      relayed = controller.signal;
      this.relays.set(signal, relayed);
    }
    return relayed;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (sharedPools.get(this.threads) === this) sharedPools.delete(this.threads);
    await this.piscina.destroy();
  }
}

const sharedPools = new Map<number, QuantizePool>();

/**
 * One pool of `threads` kernel threads per process, started on first use and kept: pass it as
 * buildModel's `pool` when building many files in one process, so the threads and the compiled
 * kernels are set up once. Its idle workers never keep the process alive; destroy() ends it (a
 * later call starts a new one).
 */
export function sharedQuantizePool(threads = defaultThreads()): QuantizePool {
  const n = Math.max(1, Math.floor(threads));
  let pool = sharedPools.get(n);
  if (!pool) {
    pool = new QuantizePool(n);
    sharedPools.set(n, pool);
  }
  return pool;
}

/**
 * Least capacity of a pooled buffer: a whole chunk of F16/BF16 rows or a copy slab (see
 * build/chunks.ts); F32 chunks get larger buffers, which are pooled as well.
 */
export const POOLED_BUFFER_BYTES = 512 * 1024;

/**
 * ArrayBuffers used chunk after chunk: taken to read a chunk into, transferred to a worker and
 * back, given back once the chunk's result is written. At most `maxFree` are kept.
 */
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(private readonly maxFree: number) {}

  /** A buffer of at least `bytes` bytes: the smallest free one large enough, else a new one. */
  take(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.byteLength;
      if (len >= bytes && (best < 0 || len < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    return new ArrayBuffer(Math.max(bytes, POOLED_BUFFER_BYTES));
  }

  /** Hands a buffer back (a detached one is ignored); the smallest is dropped when too many are kept. */
  give(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < POOLED_BUFFER_BYTES || this.free.includes(buffer)) return;
    this.free.push(buffer);
    if (this.free.length > this.maxFree) {
      this.free.sort((a, b) => b.byteLength - a.byteLength);
      this.free.pop();
    }
  }

  get size(): number {
    return this.free.length;
  }
}
