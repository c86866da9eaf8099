// hquant as a library: `import { inspect, plan, build, bench, scan } from "hquant"`. The CLI is a
// thin layer over these same functions. Nothing here exits the process or installs signal
// handlers: cancel with an AbortSignal (`signal`), and catch UserError for bad input.
import { buildModel, prepareBuild, type BuildOptions, type BuildResult, type PrepareOptions } from "./build/index.js";
import { runBench, type BenchOptions } from "./eval/run.js";
import type { BenchReport } from "./eval/report.js";
import { inspectModel, type InspectReport } from "./gguf/inspect.js";
import type { GGUFModel } from "./gguf/model.js";
import { openModel } from "./gguf/reader.js";
import type { SourceOptions } from "./gguf/source.js";
import { serializeHeader } from "./gguf/writer.js";
import { isSplitOutput, planSplit } from "./gguf/split.js";
import { mixtureHParams } from "./plan/hparams.js";
import { scheduleFromOptions, type ScheduleCliOptions } from "./plan/options.js";
import { OUTPUT_ALIGNMENT, type Plan, type ResolvedSchedule } from "./plan/planner.js";
import type { PlanSizes } from "./plan/summary.js";
import { runScan, type ScanOptions, type ScanReport } from "./scan/index.js";
import { HQUANT_VERSION } from "./version.js";

export { UserError } from "./errors.js";
export { runtimeReport, runtimeRecipe, type RuntimeReport, type RuntimeRecipe } from "./runtime/library-info.js";
export { HQUANT_VERSION as version };
export { listPresets, loadPreset } from "./plan/options.js";
export { parseKvOverride } from "./plan/kv-override.js";
export { FILE_TYPE_NAMES, FILE_TYPE_ALIASES } from "./plan/ftypes.js";
export type { BuildProgress, BuildResult, ImatrixUse } from "./build/index.js";
export type { BenchReport, BenchRow, QualityMetric } from "./eval/report.js";
export type { BenchTarget } from "./eval/run.js";
// evaluation, each call in the evaluation process (a llama.cpp abort is a one-line UserError)
export { evaluateBase, evaluateAgainstBase, scoreTaskFile, scorePromptSuite } from "./eval/isolated.js";
export { runTaskBench, type TaskBenchOptions, type TaskRow } from "./eval/tasks/run.js";
export { loadTasks, parsePromptSuite, serializeMultipleChoice, TASK_KINDS, type TaskKind, type TaskScore, type PromptCase } from "./eval/tasks/index.js";
export type { InspectReport } from "./gguf/inspect.js";
export type { Plan, PlannedTensor, ResolvedSchedule } from "./plan/planner.js";
export type { PlanSizes } from "./plan/summary.js";
export type { ScanOp, ScanReport, ScanRow } from "./scan/index.js";
export type { SourceOptions } from "./gguf/source.js";
export type { TuneMethod, TuneOptions, TuneProgress, TuneResult } from "./tune/index.js";
export type { ImatrixFormat, MakeImatrixOptions as ImatrixOptions, MakeImatrixResult as ImatrixResult } from "./imatrix/run.js";

/**
 * The schedule with the least predicted KLD within each size budget (`hquant tune`); loaded at
 * first use, so that importing the library (and every other command) does not load the tuner.
 */
export async function tune(opts: import("./tune/index.js").TuneOptions): Promise<import("./tune/index.js").TuneResult> {
  return (await import("./tune/index.js")).tune(opts);
}

/** An importance matrix of a calibration text with llama.cpp (`hquant imatrix`); loaded at first use. */
export async function imatrix(opts: import("./imatrix/run.js").MakeImatrixOptions): Promise<import("./imatrix/run.js").MakeImatrixResult> {
  return (await import("./imatrix/isolated.js")).makeImatrix(opts);
}
export { cleanCache, defaultCacheDir, listCache } from "./cache/index.js";
export type { CacheEntry, CacheKind, CleanOptions } from "./cache/index.js";

/**
 * What to make: the CLI's schedule options (`{ preset: "Q4_K_H" }`, `{ ftype: "Q4_K_M", imatrix }`,
 * `{ schedule: "my.json" }`, …), an already resolved schedule, or a function of the model header.
 */
export type ScheduleSpec = ScheduleCliOptions | ResolvedSchedule | ((model: GGUFModel) => ResolvedSchedule | Promise<ResolvedSchedule>);

function isResolved(s: ScheduleSpec): s is ResolvedSchedule {
  return typeof s === "object" && Array.isArray((s as ResolvedSchedule).layerFtypes);
}

function resolver(spec: ScheduleSpec, source: string): BuildOptions["schedule"] {
  if (typeof spec === "function" || isResolved(spec)) return spec;
  return (model) => scheduleFromOptions(spec, mixtureHParams(model.kv, source).nLayer);
}

export interface BuildSpec extends Omit<BuildOptions, "schedule" | "hquant"> {
  schedule: ScheduleSpec;
  /** record how the file was made under hquant.* keys (default true; false gives exactly llama.cpp's metadata) */
  hquant?: boolean;
}

const hquantKeys = (on: boolean | undefined) => (on === false ? false : { version: HQUANT_VERSION });

/** Quantizes `input` into `output` (temp file renamed at the end; nothing is left on error or abort). */
export async function build(spec: BuildSpec): Promise<BuildResult> {
  return buildModel({ ...spec, schedule: resolver(spec.schedule, spec.input), hquant: hquantKeys(spec.hquant) });
}

export interface PlanSpec extends Omit<PrepareOptions, "schedule" | "hquant"> {
  schedule: ScheduleSpec;
  hquant?: boolean;
}

export interface PlanResult {
  plan: Plan;
  sizes: PlanSizes;
  /** the files a build would write (empty without `output`) */
  outputs: string[];
  imatrix?: BuildResult["imatrix"];
}

/**
 * Every tensor's type and the exact output size, from the headers alone; checks what `build`
 * checks before any work (imatrix needed, requantizing, output paths) and fails the same way.
 */
export async function plan(spec: PlanSpec): Promise<PlanResult> {
  const prepared = await prepareBuild({ ...spec, schedule: resolver(spec.schedule, spec.input), hquant: hquantKeys(spec.hquant) });
  const { kv, specs, split, model } = prepared;
  const target = spec.output ?? spec.input;
  const shards = isSplitOutput(split) ? planSplit(target, kv, specs, split) : [{ kv, tensorIndices: specs.map((_, i) => i) }];
  const headers = shards.map((s) => serializeHeader(s.kv, s.tensorIndices.map((i) => specs[i]!), OUTPUT_ALIGNMENT));
  const sizes: PlanSizes = {
    headerBytes: headers[0]!.header.length,
    fileBytes: headers.reduce((n, h) => n + h.header.length + h.dataSize, 0),
    inputTensorBytes: model.tensors.reduce((a, t) => a + t.bytes, 0),
  };
  return { plan: prepared.plan, sizes, outputs: prepared.outputs, imatrix: prepared.imatrixUse };
}

/** What a GGUF file (local path, any shard of a split model, or http(s) URL) is made of. */
export async function inspect(pathOrUrl: string, opts: SourceOptions = {}): Promise<InspectReport> {
  return inspectModel(await openModel(pathOrUrl, opts));
}

/** PPL and KL-divergence of ready files against a base model, as llama-perplexity measures them. */
export async function bench(opts: BenchOptions): Promise<BenchReport> {
  return runBench(opts);
}

/** The layer-importance scan: every single-layer delete (or duplicate), ranked by the harm done. */
export async function scan(opts: ScanOptions): Promise<ScanReport> {
  return runScan(opts);
}

export type { BenchOptions, ScanOptions, BuildOptions };

export { release, verifyOutput, readManifest, releaseItems, type ReleaseOptions, type ReleaseResult, type ReleaseEvent, type Manifest as ReleaseManifest } from "./release/index.js";
export { buildModels, type MultiBuildOptions, type MultiBuildOutput, type MultiBuildResult } from "./build/multi.js";
