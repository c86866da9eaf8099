// A piscina pool of kernel workers. Chunks go over by transfer (the source ArrayBuffer is moved
// to the worker, which writes the quantized rows over the source and moves the same buffer back),
// so no chunk is ever structured-cloned, and a BufferPool hands the buffers out again: in steady
// state a build allocates no chunk memory at all. As in llama.cpp (nthread), the calling thread is
// one of the threads: N threads are N-1 workers plus the main thread, which takes chunks whenever
// every worker has one running and one queued (one worker's memory and start-up saved).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import type { QuantizeTask, QuantizeTaskResult } from "./task.js";

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

/** Tasks each worker holds: one running, one queued in its port so it never waits for the main thread. */
const TASKS_PER_WORKER = 2;

/** piscina's marker for a moved (transferred) result: the value itself is under this key. */
const PISCINA_VALUE = Symbol.for("Piscina.valueOf");

type ChunkHandler = (task: QuantizeTask) => QuantizeTaskResult;

/** `threads` kernel threads: threads − 1 piscina workers and the calling (main) thread. */
export class QuantizePool {
  private readonly piscina: Piscina<QuantizeTask, QuantizeTaskResult> | undefined;
  readonly threads: number;
  private readonly workers: number;
  /** tasks sent to the workers and not settled */
  private outstanding = 0;
  /** tasks for the main thread, run one per macrotask so I/O and worker results keep flowing */
  private readonly inline: { task: QuantizeTask; signal?: AbortSignal; resolve: (r: QuantizeTaskResult) => void; reject: (e: unknown) => void }[] = [];
  private inlineScheduled = false;
  private readonly handler: Promise<ChunkHandler>;

  /** Starts the workers at once (they load the kernels while the caller reads the model). */
  constructor(threads = defaultThreads()) {
    if (!fs.existsSync(WORKER_PATH)) {
      throw new Error(`worker pool not built: ${WORKER_PATH} is missing (run npm run build:ts)`);
    }
    this.threads = Math.max(1, Math.floor(threads));
    this.workers = this.threads - 1;
    // the main thread's kernels load while the workers start (and the caller reads the model)
    this.handler = import("./worker.js").then((m) => m.default as ChunkHandler);
    this.handler.catch(() => undefined); // awaited when the main thread first quantizes
    if (this.workers === 0) return;
    this.piscina = new Piscina<QuantizeTask, QuantizeTaskResult>({
      filename: WORKER_PATH,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      // the handler is synchronous: the second task waits in the worker's port, ready the moment
      // the first is done (the main thread may be busy quantizing then)
      concurrentTasksPerWorker: TASKS_PER_WORKER,
      // the worker is plain JS: it needs none of the parent's loaders (tsx, vitest), which would
      // otherwise be started again in every worker
      execArgv: [],
      resourceLimits: WORKER_RESOURCE_LIMITS,
    });
  }

  /**
   * Quantizes one chunk; `task.data` is transferred (unusable by the caller afterwards). The
   * result's first rowSize(dstType, ncols) × nrows bytes are the quantized rows: it is `task.data`
   * itself whenever a destination row fits in a source row (ready to be handed out again), else a
   * new buffer.
   */
  run(task: QuantizeTask, signal?: AbortSignal): Promise<QuantizeTaskResult> {
    if (this.piscina && this.outstanding < this.workers * TASKS_PER_WORKER) {
      this.outstanding++;
      const result = this.piscina.run(task, { transferList: [task.data], signal });
      const settled = () => void this.outstanding--;
      result.then(settled, settled);
      return result;
    }
    // the same contract as a worker's: the caller's buffer is detached (moved, not copied)
    const moved = { ...task, data: structuredClone(task.data, { transfer: [task.data] }) };
    return new Promise((resolve, reject) => {
      this.inline.push({ task: moved, signal, resolve, reject });
      this.scheduleInline();
    });
  }

  private scheduleInline(): void {
    if (this.inlineScheduled || this.inline.length === 0) return;
    this.inlineScheduled = true;
    setImmediate(() => void this.runInline());
  }

  /** Runs the next main-thread task with the workers' own handler (imported at construction). */
  private async runInline(): Promise<void> {
    const next = this.inline.shift()!;
    try {
      const handler = await this.handler;
      if (next.signal?.aborted) throw next.signal.reason ?? new Error("aborted");
      const result = handler(next.task) as QuantizeTaskResult | Record<symbol, QuantizeTaskResult>;
      next.resolve(typeof result === "object" && PISCINA_VALUE in result ? (result as Record<symbol, QuantizeTaskResult>)[PISCINA_VALUE]! : (result as QuantizeTaskResult));
    } catch (err) {
      next.reject(err);
    } finally {
      this.inlineScheduled = false;
      this.scheduleInline();
    }
  }

  async destroy(): Promise<void> {
    for (const t of this.inline.splice(0)) t.reject(new Error("quantize pool destroyed"));
    await this.piscina?.destroy();
  }
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
