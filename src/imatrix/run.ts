// `hquant imatrix` without the CLI: merge previous imatrix files, collect statistics on a text with
// llama.cpp, save in either format. Everything the user gave is checked before the model runs.
import { offloadOf, type OffloadOptions } from "../runtime/index.js";
import fs from "node:fs";
import { UserError } from "../errors.js";
import { resolveOutputTarget } from "../gguf/output-path.js";
import { ImatrixCollector } from "./collect.js";
import { computeImatrix, imatrixLayout, type ImatrixComputeResult } from "./compute.js";
import { loadRawImatrix } from "./index.js";
import { saveImatrixGGUF, saveImatrixLegacy } from "./save.js";

export type ImatrixFormat = "gguf" | "dat";

export interface MakeImatrixOptions extends OffloadOptions {
  model?: string;
  /** the calibration text and its name as the user typed it (recorded as the dataset) */
  text?: { content: string; name: string };
  output: string;
  format?: ImatrixFormat;
  ctx?: number;
  chunks?: number;
  processOutput?: boolean;
  computePpl?: boolean;
  threads?: number;
  /** previous imatrix files to start from (--in-file) */
  inFiles?: string[];
  /** also save `<output>.at_<chunks>` every this many chunks */
  saveFrequency?: number;
  onProgress?: (done: number, total: number, ppl: number) => void;
  signal?: AbortSignal;
}

export interface MakeImatrixResult {
  output: string;
  format: ImatrixFormat;
  entries: number;
  chunks: number;
  compute?: Omit<ImatrixComputeResult, "collector">;
  /** intermediate saves written (--save-frequency) */
  saves: string[];
}

export async function makeImatrix(opts: MakeImatrixOptions): Promise<MakeImatrixResult> {
  const format = opts.format ?? "gguf";
  const ctx = opts.ctx ?? 512;
  if (!opts.text && !(opts.inFiles && opts.inFiles.length > 0)) {
    throw new UserError("no --text and no --in-file: nothing to compute or combine");
  }
  if (opts.text && !opts.model) throw new UserError("--text needs a model");
  if (opts.model && !fs.existsSync(opts.model)) throw new UserError(`${opts.model}: no such file`);
  // a regular file (new or existing) in a writable folder, as for every output
  resolveOutputTarget(opts.output);
  const collector = new ImatrixCollector(imatrixLayout(ctx).chunkSize);
  for (const f of opts.inFiles ?? []) collector.merge(f, await loadRawImatrix(f));

  const save = async (file: string) => {
    if (format === "gguf") await saveImatrixGGUF(file, collector, opts.text?.name);
    else saveImatrixLegacy(file, collector, opts.text?.name);
  };
  const saves: string[] = [];
  let compute: ImatrixComputeResult | undefined;
  if (opts.text) {
    let lastSaved = collector.lastChunk;
    const every = opts.saveFrequency;
    compute = await computeImatrix({
      model: opts.model!,
      text: opts.text.content,
      textName: opts.text.name,
      ctx,
      chunks: opts.chunks,
      processOutput: opts.processOutput,
      computePpl: opts.computePpl,
      threads: opts.threads,
      ...offloadOf(opts),
      collector,
      onProgress: opts.onProgress,
      signal: opts.signal,
      onChunks: every
        ? async (c) => {
            // a save each time the chunk count passes a multiple of --save-frequency
            if (Math.floor(c.lastChunk / every) > Math.floor(lastSaved / every)) {
              const file = `${opts.output}.at_${c.lastChunk}`;
              await save(file);
              saves.push(file);
            }
            lastSaved = c.lastChunk;
          }
        : undefined,
    });
  }
  if (collector.stats.size === 0) throw new UserError(`${opts.model}: no matrix multiplication of a blk.* weight was seen (a model without blocks?)`);
  await save(opts.output);
  // plain data (the collector's sums are in the file): the result crosses from the evaluation process
  const figures = compute && { chunks: compute.chunks, tokens: compute.tokens, ppl: compute.ppl, pplErr: compute.pplErr };
  return { output: opts.output, format, entries: collector.stats.size, chunks: collector.lastChunk, compute: figures, saves };
}
