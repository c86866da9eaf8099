// The search side of `hquant scan`: --op swap|interpolate|merge|all (one pass over every single
// edit), --greedy K / --target-layers N / --max-kld X (greedy multi-step), --laco (LaCo's
// procedure). Thin over src/scan: parses the options, shows progress with an ETA, prints the
// tables, writes the final surgery as a schedule.
import { gpuOptions, type GpuCliOptions } from "../gpu-options.js";
import { llamaRuntime, runtimeLine } from "../../runtime/index.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { jsonTarget, parseThreads, positiveInt, readText } from "../args.js";
import { commandSignal } from "../signals.js";
import { defaultCacheDir, writeFileAtomic } from "../../eval/run.js";
import { parseFileType, validateSchedule } from "../../plan/schedule.js";
import { checkMergeCount, parseSearchOps, type Candidate } from "../../scan/candidates.js";
import { greedyMarkdown, greedySearch, surgerySchedule } from "../../scan/greedy.js";
import { checkLacoParams, HiddenStateSimilarity, lacoSearch } from "../../scan/laco.js";
import { openModel } from "../../gguf/reader.js";
import { mixtureHParams } from "../../plan/hparams.js";
import { CandidateMeasurer } from "../../scan/measure.js";
import { lacoMarkdown, rankedMarkdown, rankEdits } from "../../scan/search.js";
import type { SurgeryOp } from "../../surgery/index.js";

/** The options `hquant scan` has with or without a search. */
export interface ScanCliOptions extends GpuCliOptions {
  text: string;
  op?: string;
  ctx: string;
  chunks?: string;
  top?: string;
  ftype?: string;
  threads?: string;
  json?: string | boolean;
  out?: string;
  cacheDir?: string;
  quiet?: boolean;
  progress: boolean;
}

export interface ScanSearchCliOptions extends ScanCliOptions {
  mergeCount?: string;
  greedy?: string;
  targetLayers?: string;
  maxKld?: string;
  scheduleOut?: string;
  laco?: boolean;
  lacoLowest?: string;
  lacoHighest?: string;
  lacoInterval: string;
  lacoThreshold: string;
  lacoMaxCompression: string;
}

/** The options only the search uses (added to `hquant scan`). */
export function addSearchOptions(cmd: Command): Command {
  return cmd
    .option("--merge-count <c>", "layers per merge for --op merge / --laco (default 2, LaCo 3)")
    .option("--greedy <k>", "greedy search: apply the best edit, rescan from the edited stack, up to K edits")
    .option("--target-layers <n>", "greedy search until the stack has N layers")
    .option("--max-kld <x>", "greedy search: stop when no edit keeps the KLD below X")
    .option("--schedule-out <file>", "write the search's final surgery as a schedule (for hquant build --schedule)")
    .option("--laco", "LaCo: merge C consecutive layers from the top down while the final hidden states stay similar")
    .option("--laco-lowest <l>", "LaCo: lowest layer a merge may start at (default 1)")
    .option("--laco-highest <l>", "LaCo: highest layer a merge may start at, tried first (default layers − C)")
    .option("--laco-interval <i>", "LaCo: layers l moves down after a kept merge", "2")
    .option("--laco-threshold <t>", "LaCo: keep a merge while the cosine similarity is above T", "0.85")
    .option("--laco-max-compression <f>", "LaCo: at most this fraction of the layers removed", "0.25");
}

/** True when the options ask for more than today's delete/duplicate scan. */
export function isSearch(opts: ScanSearchCliOptions, scanOps: readonly string[]): boolean {
  return opts.laco === true || opts.greedy !== undefined || opts.targetLayers !== undefined || opts.maxKld !== undefined ||
    opts.mergeCount !== undefined || opts.scheduleOut !== undefined || (opts.op !== undefined && !scanOps.includes(opts.op));
}

function finite(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UserError(`${flag} must be a number (got ${JSON.stringify(value)})`);
  return n;
}

function nonNegativeInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`${flag} must be an integer ≥ 0 (got ${JSON.stringify(value)})`);
  return n;
}

/** "3 m 20 s" */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)} m ${s % 60} s` : `${s} s`;
}

export async function runSearchCommand(base: string, opts: ScanSearchCliOptions): Promise<void> {
  if (opts.laco && (opts.greedy !== undefined || opts.targetLayers !== undefined || opts.maxKld !== undefined)) {
    throw new UserError("--laco is its own procedure: it does not take --greedy, --target-layers or --max-kld");
  }
  if (!opts.laco && opts.op === undefined) throw new UserError("--op is required (or --laco)");
  const ops = opts.laco ? [] : parseSearchOps(opts.op!);
  const ctx = positiveInt(opts.ctx, "--ctx")!;
  const chunks = positiveInt(opts.chunks, "--chunks");
  const top = positiveInt(opts.top, "--top");
  const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
  // checked before any work: --json FILE must be writable
  const jsonFile = jsonTarget(opts.json);
  const ftype = opts.ftype !== undefined ? parseFileType(opts.ftype, "--ftype") : undefined;
  const mergeCount = opts.mergeCount !== undefined ? checkMergeCount(Number(opts.mergeCount)) : undefined;
  const maxSteps = positiveInt(opts.greedy, "--greedy");
  const targetLayers = positiveInt(opts.targetLayers, "--target-layers");
  const maxKld = finite(opts.maxKld, "--max-kld");
  const greedy = maxSteps !== undefined || targetLayers !== undefined || maxKld !== undefined;
  if (maxKld !== undefined && maxSteps === undefined && targetLayers === undefined) throw new UserError("--max-kld bounds a greedy search: give --greedy K or --target-layers N too");
  if (opts.scheduleOut !== undefined && !greedy && !opts.laco) throw new UserError("--schedule-out needs a search (--greedy, --target-layers or --laco)");
  const laco = opts.laco
    ? {
        lowest: nonNegativeInt(opts.lacoLowest, "--laco-lowest") ?? 1,
        highest: nonNegativeInt(opts.lacoHighest, "--laco-highest"),
        interval: positiveInt(opts.lacoInterval, "--laco-interval")!,
        threshold: finite(opts.lacoThreshold, "--laco-threshold")!,
        maxCompression: finite(opts.lacoMaxCompression, "--laco-max-compression")!,
      }
    : undefined;
  if (!fs.existsSync(base)) throw new UserError(`${base}: no such file`);
  const text = readText(opts.text);
  const log = (s: string) => opts.progress && process.stderr.write(`${s}\n`);
  // parameters that cannot work fail before the (slow) base evaluation
  const nLayer = mixtureHParams((await openModel(base)).kv, base).nLayer;
  const lacoParams = laco && { mergeCount: mergeCount ?? 3, ...laco, highest: laco.highest ?? nLayer - (mergeCount ?? 3) };
  if (lacoParams) checkLacoParams(lacoParams, nLayer);
  if (targetLayers === nLayer) throw new UserError(`--target-layers ${targetLayers}: the model already has ${nLayer} layers`);

  const gpu = gpuOptions(opts);
  const runtime = llamaRuntime(gpu);
  log(runtimeLine(runtime));
  const measurer = await CandidateMeasurer.open({ base, text, textName: path.basename(opts.text), ftype, ctx, chunks, threads, cacheDir: opts.cacheDir ?? defaultCacheDir(), signal: commandSignal(), ...gpu });
  // ETA from the mean time of the measurements built so far (cached ones cost nothing)
  let built = 0;
  let builtMs = 0;
  const timedMeasure = async (surgery: SurgeryOp[]) => {
    const misses = measurer.misses;
    const t = Date.now();
    const m = await measurer.measure(surgery);
    if (measurer.misses > misses) {
      built++;
      builtMs += Date.now() - t;
    }
    return m;
  };
  const eta = (remaining: number) => (built > 0 ? ` · ETA ${duration((builtMs / built) * remaining)}` : "");
  const progress = (prefix: string, i: number, n: number, c: Candidate) => log(`${prefix}[${i + 1}/${n}] ${c.label}${eta(n - i)}`);
  const title =
    `hquant scan: ${measurer.nLayer} layers, built in ${measurer.ftype}; text ${path.basename(opts.text)}, ctx ${ctx}, ` +
    `${measurer.base.plan.nChunk} chunks (${measurer.base.positions} scored tokens); base PPL ${measurer.base.ppl.toFixed(4)} ± ${measurer.base.pplErr.toFixed(4)}`;
  const started = Date.now();
  let markdown: string;
  let json: unknown;
  let surgery: SurgeryOp[] | undefined;
  let description = "";
  try {
    if (lacoParams) {
      const params = lacoParams;
      const C = params.mergeCount;
      const similarity = await HiddenStateSimilarity.open(measurer);
      const result = await lacoSearch({
        nLayer: measurer.nLayer,
        ...params,
        similarity: similarity.similarity,
        measure: timedMeasure,
        onTrial: (t) => log(`LaCo ${t.label}: similarity ${t.similarity.toFixed(4)} (${t.accepted ? "kept" : "rejected"})`),
      });
      markdown = `${title}\n\nLaCo: C=${C}, layers ${params.lowest}–${params.highest}, interval ${params.interval}, threshold ${params.threshold}, max compression ${params.maxCompression}\n\n${lacoMarkdown(result)}`;
      json = { params, ...result };
      surgery = result.surgery;
      description = `LaCo (C=${C}, layers ${params.lowest}-${params.highest}, interval ${params.interval}, threshold ${params.threshold}) on ${path.basename(opts.text)}: ${measurer.nLayer} → ${result.layers} layers`;
    } else if (greedy) {
      const result = await greedySearch({
        nLayer: measurer.nLayer,
        ops,
        mergeCount,
        maxSteps,
        targetLayers,
        maxKld,
        measure: timedMeasure,
        onCandidate: (step, i, n, c) => progress(`step ${step} `, i, n, c),
        onStep: (s) => log(`step ${s.step}: ${s.label} → ${s.measurement.layers} layers, KLD ${s.measurement.kld.toFixed(6)}, PPL ${s.measurement.ppl.toFixed(4)}`),
      });
      markdown = `${title}\n\n${greedyMarkdown(result, { ppl: measurer.base.ppl, layers: measurer.nLayer })}`;
      json = result;
      surgery = result.surgery;
      const last = result.steps[result.steps.length - 1];
      description = `greedy ${ops.join("/")} search on ${path.basename(opts.text)}: ${measurer.nLayer} → ${last?.measurement.layers ?? measurer.nLayer} layers` + (last ? `, KLD ${last.measurement.kld.toFixed(6)}` : "");
    } else {
      const rows = await rankEdits({ nLayer: measurer.nLayer, ops, mergeCount, measure: timedMeasure, onCandidate: (i, n, c) => progress("", i, n, c) });
      const kept = top !== undefined ? rows.slice(0, top) : rows;
      markdown = `${title}\n\n${rankedMarkdown(kept)}`;
      json = kept.map((r) => ({ edit: r.candidate.op, label: r.candidate.label, ...r.measurement }));
    }
  } finally {
    await measurer.close();
  }
  log(`${duration(Date.now() - started)}: ${measurer.misses} edit(s) built and evaluated, ${measurer.hits} from the cache (${measurer.cache.file})`);
  process.stdout.write(markdown);
  const report = JSON.stringify({ base, text: path.basename(opts.text), ctx, chunks: measurer.base.plan.nChunk, basePpl: measurer.base.ppl, result: json, runtime }, null, 2) + "\n";
  const schedule = surgery !== undefined ? validateSchedule(surgerySchedule(surgery, measurer.ftype, "hquant scan search", description), "the search's schedule") : undefined;
  const files: [string, string][] = [];
  if (opts.out) {
    files.push([path.join(opts.out, "scan.md"), markdown], [path.join(opts.out, "scan.json"), report]);
    if (schedule) files.push([path.join(opts.out, "schedule.json"), JSON.stringify(schedule, null, 2) + "\n"]);
  }
  if (jsonFile === "-") process.stdout.write(report);
  else if (jsonFile !== undefined) files.push([jsonFile, report]);
  if (opts.scheduleOut && schedule) files.push([opts.scheduleOut, JSON.stringify(schedule, null, 2) + "\n"]);
  for (const [f, data] of files) {
    writeFileAtomic(f, data);
    log(`wrote ${f}`);
  }
}
