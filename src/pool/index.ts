// A pool of kernel threads. `threads` is the number of threads doing kernel work: that many
// workers, while the calling (main) thread only reads, hands out chunks, orders the results and
// writes, so its I/O overlaps with the workers' compute. Chunks go over by transfer (the source
// ArrayBuffer is moved to a worker, which writes the quantized rows over the source and moves the
// same buffer back), so no chunk is ever structured-cloned, and a BufferPool hands the buffers out
// again: in steady state a build allocates no chunk memory at all. The kernels are compiled once
// per process and the module is handed to every worker; sharedQuantizePool keeps one pool per
// process for callers that build many files (scan, bench, tune).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { kernelModule } from "../quant/kernels.js";
import type { QuantizeTask, QuantizeTaskResult, WorkerReply, WorkerRequest } from "./task.js";

export type { QuantizeTask, QuantizeTaskResult } from "./task.js";

/**
 * Workers must be JavaScript at run time, so the pool always loads the compiled worker:
 * <repo>/dist/pool/worker.js — the same path from src/pool (under vitest/tsx) and dist/pool.
 */
export const WORKER_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/pool/worker.js");

/**
 * A kernel worker's JS heap holds only its code and a few task objects (the chunks live in
 * ArrayBuffers and WASM memory): a small young generation keeps its garbage small too.
 */
const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4 };

export function defaultThreads(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

/**
 * The worker is plain JS: it needs none of the parent's loaders (tsx, vitest), which would
 * otherwise be started again in every worker; profiling flags (node --cpu-prof …) are passed on,
 * so a profile has one file per kernel thread.
 */
const WORKER_EXEC_ARGV = profilingFlags(process.execArgv);

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

/** Tasks each worker holds: one running, one queued in its port so it never waits for the main thread. */
const TASKS_PER_WORKER = 2;

interface PendingTask {
  id: number;
  task: QuantizeTask;
  signal?: AbortSignal;
  onAbort?: () => void;
  resolve: (r: QuantizeTaskResult) => void;
  reject: (e: unknown) => void;
}

interface KernelThread {
  worker: Worker;
  running: Map<number, PendingTask>;
}

const abortError = (signal: AbortSignal) => (signal.reason instanceof Error ? signal.reason : new Error("aborted"));

/** `threads` kernel threads (worker threads); the caller's thread does no kernel work. */
export class QuantizePool {
  readonly threads: number;
  private readonly kernelThreads: KernelThread[] = [];
  /** tasks waiting for a worker with room, in order */
  private readonly waiting: PendingTask[] = [];
  private nextId = 0;
  private destroyed = false;

  /** Starts the workers at once (they start while the caller reads the model). */
  constructor(threads = defaultThreads()) {
    if (!fs.existsSync(WORKER_PATH)) {
      throw new Error(`worker pool not built: ${WORKER_PATH} is missing (run npm run build:ts)`);
    }
    this.threads = Math.max(1, Math.floor(threads));
    const kernels = kernelModule();
    for (let i = 0; i < this.threads; i++) this.kernelThreads.push(this.startThread(kernels));
  }

  private startThread(kernels: WebAssembly.Module): KernelThread {
    const worker = new Worker(WORKER_PATH, {
      workerData: { kernels },
      execArgv: WORKER_EXEC_ARGV,
      resourceLimits: WORKER_RESOURCE_LIMITS,
    });
    const thread: KernelThread = { worker, running: new Map() };
    worker.on("message", (reply: WorkerReply) => {
      const pending = thread.running.get(reply.id);
      if (!pending) return;
      thread.running.delete(reply.id);
      if (reply.error !== undefined) pending.reject(reply.error);
      else pending.resolve(reply.result!);
      this.dispatch();
    });
    worker.on("error", (err) => this.lost(thread, err));
    worker.on("exit", (code) => this.lost(thread, new Error(`quantize worker exited (code ${code})`)));
    // an idle pool never keeps the process alive (a shared pool is never destroyed); after the
    // listeners, since adding a message listener refs the worker's port again
    worker.unref();
    return thread;
  }

  /** A worker died: its tasks fail, and a fresh worker takes its place (unless destroyed). */
  private lost(thread: KernelThread, err: Error): void {
    const tasks = [...thread.running.values()];
    thread.running.clear();
    for (const t of tasks) t.reject(err);
    const i = this.kernelThreads.indexOf(thread);
    if (i < 0 || this.destroyed) return;
    this.kernelThreads[i] = this.startThread(kernelModule());
    this.dispatch();
  }

  /**
   * Quantizes one chunk; `task.data` is transferred (unusable by the caller afterwards). The
   * result's first rowSize(dstType, ncols) × nrows bytes are the quantized rows: it is `task.data`
   * itself whenever a destination row fits in a source row (ready to be handed out again), else a
   * new buffer.
   */
  run(task: QuantizeTask, signal?: AbortSignal): Promise<QuantizeTaskResult> {
    if (this.destroyed) return Promise.reject(new Error("quantize pool destroyed"));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const pending: PendingTask = { id: this.nextId++, task, signal, resolve, reject };
      if (signal) {
        pending.onAbort = () => {
          const at = this.waiting.indexOf(pending);
          if (at >= 0) {
            this.waiting.splice(at, 1);
            reject(abortError(signal));
          }
        };
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.waiting.push(pending);
      this.dispatch();
    });
  }

  /** Hands waiting tasks, in order, to the least busy workers with room. */
  private dispatch(): void {
    while (this.waiting.length > 0) {
      let best: KernelThread | undefined;
      for (const t of this.kernelThreads) {
        if (t.running.size < TASKS_PER_WORKER && (!best || t.running.size < best.running.size)) best = t;
      }
      if (!best) break;
      const pending = this.waiting.shift()!;
      if (pending.onAbort) pending.signal!.removeEventListener("abort", pending.onAbort);
      best.running.set(pending.id, pending);
      const request: WorkerRequest = { id: pending.id, task: pending.task };
      best.worker.postMessage(request, [pending.task.data]);
    }
    // a worker with work keeps the process alive until its results are in
    for (const t of this.kernelThreads) {
      if (t.running.size > 0) t.worker.ref();
      else t.worker.unref();
    }
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const error = new Error("quantize pool destroyed");
    for (const t of this.waiting.splice(0)) t.reject(error);
    for (const thread of this.kernelThreads) {
      for (const t of thread.running.values()) t.reject(error);
      thread.running.clear();
    }
    await Promise.all(this.kernelThreads.map((t) => t.worker.terminate()));
    if (sharedPools.get(this.threads) === this) sharedPools.delete(this.threads);
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
