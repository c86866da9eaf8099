// Every file of the release against the base on the evaluation text, with the bench evaluator
// (runBench): the same figures `hquant bench --files …` prints for the same files and settings.
import path from "node:path";
import { runBench } from "../eval/run.js";
import type { BenchReport } from "../eval/report.js";
import { sha256Bytes } from "./resume.js";

export interface EvaluateTarget {
  key: string;
  file: string;
}

export interface EvaluateOptions {
  base: string;
  text: string;
  textName: string;
  ctx: number;
  chunks?: number;
  threads: number;
  cacheDir: string;
  signal?: AbortSignal;
  onFile?: (file: string, index: number, total: number) => void;
  onProgress?: (file: string, done: number, total: number) => void;
}

/** What makes two evaluations of the same file comparable: text, context, chunks, threads. */
export function evaluationKey(opts: EvaluateOptions): string {
  return sha256Bytes(JSON.stringify({ text: sha256Bytes(opts.text), ctx: opts.ctx, chunks: opts.chunks ?? null, threads: opts.threads }));
}

/** The base once (cached), then each target; rows carry the file's path as given. */
export async function evaluateFiles(targets: readonly EvaluateTarget[], opts: EvaluateOptions): Promise<BenchReport> {
  return runBench({
    base: opts.base,
    text: opts.text,
    textName: opts.textName,
    targets: targets.map((t) => ({ file: t.file, label: path.basename(t.file, ".gguf") })),
    ctx: opts.ctx,
    chunks: opts.chunks,
    threads: opts.threads,
    cacheDir: opts.cacheDir,
    signal: opts.signal,
    onFile: opts.onFile,
    onProgress: opts.onProgress,
  });
}
