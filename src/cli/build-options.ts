// The options `build` and `plan` share — all of build's, so that any build command line can be
// re-run as a plan — and llama-quantize's positional form `IN OUT TYPE [NTHREADS]`.
import type { Command } from "commander";
import type { BuildOptions } from "../build/index.js";
import { UserError } from "../errors.js";
import { fileTypeByName, isCopyFileType, refusedFileType } from "../plan/ftypes.js";
import { parseKvOverride } from "../plan/kv-override.js";
import { addScheduleOptions, listPresets, type ScheduleCliOptions } from "../plan/options.js";
import { parseThreads } from "./args.js";

export interface BuildCliOptions extends ScheduleCliOptions {
  threads?: string;
  allowRequantize?: boolean;
  splitMaxSize?: string;
  splitMaxTensors?: string;
  keepSplit?: boolean;
  overrideKv?: string[];
  includeWeights?: string[];
  excludeWeights?: string[];
  timeout?: string;
  quiet?: boolean;
  json?: string | boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addBuildOptions(cmd: Command): Command {
  return addScheduleOptions(cmd)
    .option("--include-weights <name>", "use the imatrix only for tensors whose name contains this (repeatable)", collect)
    .option("--exclude-weights <name>", "do not use the imatrix for tensors whose name contains this (repeatable)", collect)
    .option("--override-kv <key=type:value>", "set a metadata key in the output; type int, float, bool or str (repeatable)", collect)
    .option("-t, --threads <n>", "worker threads (default: one per core)")
    .option("--allow-requantize", "allow quantized inputs (Q8_0 …) to be quantized again (quality loss)")
    .option("--split-max-size <size>", "split the output into shards of at most this size (e.g. 4G)")
    .option("--split-max-tensors <n>", "split the output into shards of at most N tensors")
    .option("--keep-split", "write the output in the same shards as the input")
    .option("--timeout <seconds>", "http(s) input: seconds to wait for an answer or for data (default 30)")
    .option("--quiet", "print nothing but errors")
    .option("--json [file]", "a machine-readable summary, on stdout or into FILE");
}

/** gguf-split's size syntax: a number of bytes with an optional K, M or G suffix (powers of 1000). */
export function parseSplitSize(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m || Number(m[1]) === 0) throw new UserError(`--split-max-size: ${JSON.stringify(s)} is not a size (e.g. 4G, 500M)`);
  const unit = { "": 1, K: 1e3, M: 1e6, G: 1e9 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Number(m[1]) * unit;
}

function positiveInteger(s: string | undefined, flag: string): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || Number(s) < 1) throw new UserError(`${flag}: ${JSON.stringify(s)} is not a positive integer`);
  return Number(s);
}

/** Whether a word is a file type llama-quantize accepts (name, alias, number, COPY) or a preset. */
export function isTypeWord(word: string): boolean {
  return fileTypeByName(word) !== undefined || isCopyFileType(word) || listPresets().some((p) => p.toUpperCase() === word.toUpperCase());
}

/**
 * llama-quantize's positionals after the output: TYPE (a file type, alias, number, COPY, or an
 * hquant preset) and NTHREADS. Sets the matching option; giving a thing twice is an error.
 */
export function applyPositionals(opts: BuildCliOptions, type: string | undefined, threads: string | undefined): void {
  if (type !== undefined) {
    if (opts.ftype !== undefined || opts.preset !== undefined) throw new UserError(`the file type is given twice (${type} and ${opts.ftype !== undefined ? "--ftype" : "--preset"})`);
    if (fileTypeByName(type) !== undefined || isCopyFileType(type)) opts.ftype = type;
    else if (listPresets().some((p) => p.toUpperCase() === type.toUpperCase())) opts.preset = type;
    else if (refusedFileType(type)) throw new UserError(refusedFileType(type)!);
    else throw new UserError(`${JSON.stringify(type)} is neither a file type nor a preset (see hquant build --help)`);
  }
  if (threads !== undefined) {
    if (opts.threads !== undefined) throw new UserError(`the thread count is given twice (${threads} and -t)`);
    opts.threads = threads;
  }
}

/**
 * The model cards' recipe form: `LAYER_TYPES='[…]' llama-quantize $FLAGS IN OUT TYPE`. The
 * environment variable gives the layers' types when no --layer-types, --schedule or --preset does
 * (as the patched llama-quantize reads it); the positional TYPE / --ftype is then the base type.
 * Returns the warnings to print.
 */
export function applyRecipeOptions(opts: BuildCliOptions, env: NodeJS.ProcessEnv = process.env): string[] {
  const warnings: string[] = [];
  const fromEnv = env.LAYER_TYPES;
  if (opts.layerTypes === undefined && opts.schedule === undefined && opts.preset === undefined && fromEnv !== undefined && fromEnv.trim() !== "") {
    opts.layerTypes = fromEnv;
    opts.layerTypesSource = "LAYER_TYPES";
  }
  if (opts.layerTypesHigh) warnings.push("--layer-types-high is ignored (a switch of the patched llama-quantize some model cards use; its meaning is not published)");
  return warnings;
}

/** The library's build options the CLI options describe (everything but input, output and schedule). */
export function buildOptionsFromCli(opts: BuildCliOptions): Omit<BuildOptions, "input" | "output" | "schedule" | "hquant"> {
  const include = opts.includeWeights ?? [];
  const exclude = opts.excludeWeights ?? [];
  if (include.length > 0 && exclude.length > 0) throw new UserError("--include-weights and --exclude-weights cannot be used together");
  const splitMaxSize = parseSplitSize(opts.splitMaxSize);
  const splitMaxTensors = positiveInteger(opts.splitMaxTensors, "--split-max-tensors");
  if (opts.keepSplit && (splitMaxSize !== undefined || splitMaxTensors !== undefined)) {
    throw new UserError("--keep-split and --split-max-size/--split-max-tensors exclude each other; give one");
  }
  if (splitMaxSize !== undefined && splitMaxTensors !== undefined) throw new UserError("--split-max-size and --split-max-tensors exclude each other; give one");
  const timeout = opts.timeout === undefined ? undefined : Number(opts.timeout);
  if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0)) throw new UserError(`--timeout: ${JSON.stringify(opts.timeout)} is not a number of seconds`);
  return {
    threads: parseThreads(opts.threads),
    allowRequantize: opts.allowRequantize,
    splitMaxSize,
    splitMaxTensors,
    keepSplit: opts.keepSplit,
    overrides: (opts.overrideKv ?? []).map(parseKvOverride),
    includeWeights: include,
    excludeWeights: exclude,
    httpTimeoutMs: timeout === undefined ? undefined : timeout * 1000,
  };
}
