// A piscina pool of kernel workers. Chunks go over by transfer (the source ArrayBuffer is moved
// to the worker, the quantized bytes are moved back), so no chunk is ever structured-cloned.
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

export function defaultThreads(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

export class QuantizePool {
  private readonly piscina: Piscina<QuantizeTask, QuantizeTaskResult>;
  readonly threads: number;

  constructor(threads = defaultThreads()) {
    if (!fs.existsSync(WORKER_PATH)) {
      throw new Error(`worker pool not built: ${WORKER_PATH} is missing (run npm run build:ts)`);
    }
    this.threads = Math.max(1, Math.floor(threads));
    this.piscina = new Piscina<QuantizeTask, QuantizeTaskResult>({
      filename: WORKER_PATH,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 60_000,
      // a kernel worker holds only its WASM memory; one queued task per thread is plenty
      concurrentTasksPerWorker: 1,
      // the worker is plain JS: it needs none of the parent's loaders (tsx, vitest), which would
      // otherwise be started again in every worker
      execArgv: [],
    });
  }

  /** Quantizes one chunk; `task.data` is transferred (unusable by the caller afterwards). */
  run(task: QuantizeTask, signal?: AbortSignal): Promise<QuantizeTaskResult> {
    return this.piscina.run(task, { transferList: [task.data], signal });
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}
