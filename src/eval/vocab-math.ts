// The per-position vocabulary math of llama-perplexity on raw logits (kernels/logits.ts, WASM-SIMD),
// spread over threads as llama-perplexity spreads it: the calling thread and threads − 1 workers
// take positions from a shared counter. Each row of logits is copied from llama.cpp's output buffer
// straight into the thread's kernel memory (runtime/memcpy.ts); packed base rows and per-position results live in
// SharedArrayBuffers, one slot per position, so the sums the caller forms in position order are the
// same whatever thread computed what.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { WASM_PATH } from "../quant/kernels.js";
import type { LogitsBlock } from "../runtime/evaluator.js";
import { nativeMemcpy, type NativeBytes } from "../runtime/memcpy.js";
import { packedRowLength } from "./kld-math.js";

interface LogitsExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  packLogitsRow(logits: number, n: number, out: number, tok: number): number;
  kldRow(logits: number, n: number, base: number, tok: number, res: number): void;
  expfRow(src: number, dst: number, n: number, scalar: number): void;
  logProbAt(logits: number, n: number, tok: number): number;
}

/** One position's logits: a Float32Array, or still in llama.cpp's memory. */
export type LogitsRow = Float32Array | NativeBytes;

/** One thread's kernels, with linear memory laid out for rows of `nVocab` tokens. */
export class VocabKernels {
  private readonly k: LogitsExports;
  private logitsPtr = 0;
  private rowPtr = 0;
  private resPtr = 0;
  private nVocab = 0;

  constructor() {
    const mod = new WebAssembly.Module(new Uint8Array(fs.readFileSync(WASM_PATH)));
    this.k = new WebAssembly.Instance(mod, { env: { abort: () => { throw new Error("kernel abort"); } } }).exports as unknown as LogitsExports;
  }

  private layout(nVocab: number): void {
    if (nVocab === this.nVocab) return;
    const align = (n: number) => (n + 63) & ~63;
    this.logitsPtr = align(this.k.heapBase());
    this.rowPtr = align(this.logitsPtr + 4 * nVocab);
    this.resPtr = align(this.rowPtr + 2 * packedRowLength(nVocab));
    const end = this.resPtr + 64;
    const have = this.k.memory.buffer.byteLength;
    if (end > have) this.k.memory.grow(Math.ceil((end - have) / 65536));
    this.nVocab = nVocab;
  }

  /** Puts the row in kernel memory; returns its length. */
  private placeLogits(logits: LogitsRow): number {
    const n = logits instanceof Float32Array ? logits.length : logits.byteLength / 4;
    this.layout(n);
    if (logits instanceof Float32Array) new Float32Array(this.k.memory.buffer, this.logitsPtr, n).set(logits);
    else logits.copyTo(new Uint8Array(this.k.memory.buffer, this.logitsPtr, 4 * n));
    return n;
  }

  /** Packs one position as a --kl-divergence-base row into out[offset …]; returns the NLL of `tok`. */
  pack(logits: LogitsRow, tok: number, out: Uint16Array, offset: number): number {
    const n = this.placeLogits(logits);
    const len = packedRowLength(n);
    const nll = this.k.packLogitsRow(this.logitsPtr, n, this.rowPtr, tok);
    out.set(new Uint16Array(this.k.memory.buffer, this.rowPtr, len), offset);
    return nll;
  }

  /** Scores one position against the packed base row at base[offset …]: res[at … at+2] = NLL, KLD, same top (0/1). */
  kld(logits: LogitsRow, tok: number, base: Uint16Array, offset: number, res: Float64Array, at: number): void {
    const n = this.placeLogits(logits);
    const len = packedRowLength(n);
    new Uint16Array(this.k.memory.buffer, this.rowPtr, len).set(base.subarray(offset, offset + len));
    this.k.kldRow(this.logitsPtr, n, this.rowPtr, tok, this.resPtr);
    res.set(new Float64Array(this.k.memory.buffer, this.resPtr, 3), at);
  }

  /** llama-imatrix's negative log-probability of `tok` (its log_softmax; kernels/logits.ts logProbAt). */
  nll(logits: LogitsRow, tok: number): number {
    const n = this.placeLogits(logits);
    return -this.k.logProbAt(this.logitsPtr, n, tok);
  }

  /** expf of every value with the kernels' four-lane code, or AssemblyScript's scalar expf (tests compare the two). */
  expf(values: Float32Array, scalar = false): Float32Array {
    const end = ((this.k.heapBase() + 63) & ~63) + 8 * values.length + 64;
    const have = this.k.memory.buffer.byteLength;
    if (end > have) this.k.memory.grow(Math.ceil((end - have) / 65536));
    this.nVocab = 0;
    const src = (this.k.heapBase() + 63) & ~63;
    const dst = src + 4 * values.length;
    new Float32Array(this.k.memory.buffer, src, values.length).set(values);
    this.k.expfRow(src, dst, values.length, scalar ? 1 : 0);
    return new Float32Array(this.k.memory.buffer, dst, values.length).slice();
  }
}


/**
 * One batch of positions: blocks of logits rows (row r is the r-th over all blocks), the token each
 * position predicts, and where results go. "pack": packed rows into `base`, NLL into results[3r];
 * "kld": base rows read from `base`, results[3r … 3r+2] = NLL, KLD, same top; "nll": llama-imatrix's
 * NLL into results[3r] (`base` unused).
 */
export interface VocabJob {
  kind: "pack" | "kld" | "nll";
  nVocab: number;
  blocks: LogitsBlock[];
  targets: Int32Array;
  base: Uint16Array;
  results: Float64Array;
  /** shared position counter */
  next: Int32Array;
}

type Koffi = typeof import("koffi");
const require = createRequire(import.meta.url);

/** Takes positions from the job's counter until none are left. */
export function runJob(kernels: VocabKernels, job: VocabJob, koffi: Koffi = require("koffi") as Koffi): void {
  const starts: number[] = [];
  let total = 0;
  for (const b of job.blocks) {
    starts.push(total);
    total += b.rows;
  }
  const copy = nativeMemcpy(koffi);
  const rowLength = packedRowLength(job.nVocab);
  let block = 0;
  for (;;) {
    const r = Atomics.add(job.next, 0, 1);
    if (r >= total) return;
    while (block + 1 < starts.length && starts[block + 1] <= r) block++;
    while (starts[block] > r) block--;
    const k = r - starts[block];
    const address = job.blocks[block].address + BigInt(4 * k * job.nVocab);
    const logits = { byteLength: 4 * job.nVocab, copyTo: (dst: Uint8Array) => copy(dst, address, dst.byteLength) };
    if (job.kind === "pack") job.results[3 * r] = kernels.pack(logits, job.targets[r], job.base, r * rowLength);
    else if (job.kind === "nll") job.results[3 * r] = kernels.nll(logits, job.targets[r]);
    else kernels.kld(logits, job.targets[r], job.base, r * rowLength, job.results, 3 * r);
  }
}

/** Workers must be JavaScript at run time: the compiled worker, from src/eval (vitest) and dist/eval alike. */
export const VOCAB_WORKER_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/eval/vocab-worker.js");

/** The calling thread plus threads − 1 workers; made once per process, grown when asked for more. */
export class VocabPool {
  private static shared: VocabPool | undefined;
  private readonly workers: Worker[] = [];
  private kernels: VocabKernels | undefined;

  static get(threads: number): VocabPool {
    VocabPool.shared ??= new VocabPool();
    VocabPool.shared.grow(Math.max(0, threads - 1));
    return VocabPool.shared;
  }

  private grow(nWorkers: number): void {
    if (this.workers.length < nWorkers && !fs.existsSync(VOCAB_WORKER_PATH)) {
      throw new Error(`vocabulary worker not built: ${VOCAB_WORKER_PATH} is missing (run npm run build:ts)`);
    }
    while (this.workers.length < nWorkers) {
      const w = new Worker(VOCAB_WORKER_PATH);
      w.unref();
      this.workers.push(w);
    }
  }

  /** Runs `job` on `threads` threads (this one included); resolves when every position is done. */
  async run(job: VocabJob, threads: number): Promise<void> {
    const helpers = this.workers.slice(0, Math.max(0, threads - 1));
    Atomics.store(job.next, 0, 0);
    const done = helpers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.ref();
          const onMessage = (m: { error?: string }) => {
            w.off("error", onError);
            w.unref();
            if (m.error) reject(new Error(`vocabulary worker: ${m.error}`));
            else resolve();
          };
          const onError = (err: Error) => {
            w.off("message", onMessage);
            reject(err);
          };
          w.once("message", onMessage);
          w.once("error", onError);
          w.postMessage(job);
        }),
    );
    this.kernels ??= new VocabKernels();
    try {
      runJob(this.kernels, job);
    } finally {
      await Promise.allSettled(done);
    }
    await Promise.all(done);
  }
}
