// The schedule options `plan` and `build` share (--preset, --schedule, --ftype, --imatrix,
// --token-embedding-type, --output-tensor-type, --tensor-type, --pure, --leave-output-tensor),
// and the reading of preset / schedule files. The only part of src/plan that touches the disk.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { readFileError, UserError } from "../errors.js";
import {
  checkRegex,
  hasTypes,
  parseFileType,
  parseSchedule,
  parseTargetType,
  resolveSchedule,
  validateSchedule,
  splitTensorTypeArg,
  type LayerEntry,
  type ScheduleFile,
} from "./schedule.js";
import type { ResolvedSchedule } from "./planner.js";
import { isCopyFileType } from "./ftypes.js";

export const PRESETS_DIR = fileURLToPath(new URL("../../presets/", import.meta.url));

export interface ScheduleCliOptions {
  preset?: string;
  schedule?: string;
  ftype?: string;
  imatrix?: string;
  tokenEmbeddingType?: string;
  outputTensorType?: string;
  tensorType?: string[];
  pure?: boolean;
  leaveOutputTensor?: boolean;
  /** llama-quantize --prune-layers L0,L1,…: a surgery delete of those layers (input numbering) */
  pruneLayers?: string;
  /** a LAYER_TYPES array literal (`[[0,"Q4_K_M"],…]`) or a file holding one: the layers' types */
  layerTypes?: string;
  /** where layerTypes came from, for messages (default "--layer-types"; the CLI says "LAYER_TYPES") */
  layerTypesSource?: string;
  /** the patched llama-quantize's --layer-types-high: accepted, ignored (a warning says so) */
  layerTypesHigh?: boolean;
}

/** A resolved schedule; `copy` is llama-quantize's COPY file type (tensors copied as they are). */
export type CliSchedule = ResolvedSchedule & { copy?: boolean };

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addScheduleOptions(cmd: Command): Command {
  return cmd
    .option("--preset <name>", `a preset from presets/ (${listPresets().join(", ")})`)
    .option("--schedule <file>", "a JSON layer schedule (or a file holding only a LAYER_TYPES array)")
    .option("--ftype <name>", "one llama.cpp file type for every layer (Q4_K_M, Q4_K, 15, COPY, …; as the positional TYPE); with per-layer types, the base type (token_embd, output, general.file_type)")
    .option("--layer-types <list>", "a model card's LAYER_TYPES literal '[[0,\"Q4_K_M\"],…]' (or a file holding it); default: the LAYER_TYPES environment variable")
    .option("--layer-types-high", "accepted for model cards' FLAGS and ignored (a switch of a patched llama-quantize, meaning unpublished)")
    .option("--imatrix <file>", "importance matrix (.dat or .gguf)")
    .option("--token-embedding-type <type>", "type of token_embd.weight")
    .option("--output-tensor-type <type>", "type of output.weight")
    .option("--tensor-type <pattern=type>", "regex override, first match wins (repeatable)", collect)
    .option("--pure", "no mixture rules: every quantized tensor gets its layer's default type")
    .option("--leave-output-tensor", "keep output.weight unquantized")
    .option("--prune-layers <list>", "remove these layers (comma-separated, e.g. 20,21,22), as llama-quantize does");
}

/** `--prune-layers 20,21,22` → the layer numbers. */
export function parsePruneLayers(arg: string): number[] {
  const parts = arg.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UserError(`--prune-layers: ${JSON.stringify(arg)} is not a comma-separated list of layer numbers`);
  return [...new Set(parts.map(Number))].sort((a, b) => a - b);
}

export function listPresets(): string[] {
  try {
    return fs
      .readdirSync(PRESETS_DIR)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

export function loadPreset(name: string): ScheduleFile {
  const valid = listPresets();
  const match = valid.find((p) => p.toUpperCase() === name.toUpperCase());
  if (!match) throw new UserError(`unknown preset ${JSON.stringify(name)}; valid: ${valid.join(", ")}`);
  const file = path.join(PRESETS_DIR, `${match}.json`);
  return parseSchedule(fs.readFileSync(file, "utf8"), `preset ${match}`);
}

function readScheduleText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    throw readFileError(file, err);
  }
}

export function loadScheduleFile(file: string): ScheduleFile {
  const s = parseSchedule(readScheduleText(file), file);
  // an imatrix named in a schedule file is relative to that file
  if (s.imatrix !== undefined && !path.isAbsolute(s.imatrix)) s.imatrix = path.join(path.dirname(file), s.imatrix);
  return s;
}

/** The file a --preset or --ftype option names, with its source and display name. */
function typeSourceFile(opts: ScheduleCliOptions): { file: ScheduleFile; source: string; name: string } {
  if (opts.preset !== undefined) {
    const file = loadPreset(opts.preset);
    return { file, source: `preset ${file.name}`, name: file.name ?? opts.preset };
  }
  // COPY plans as F32 and is then turned into a copy (copyPlan); its name is what users typed
  if (isCopyFileType(opts.ftype!)) return { file: { ftype: "F32" }, source: "--ftype", name: "COPY" };
  const ftype = parseFileType(opts.ftype!, "--ftype");
  return { file: { ftype }, source: "--ftype", name: ftype };
}

/** --layer-types: the literal, or the file holding it (a value not starting with "[" is a file). */
function layerTypesFile(opts: ScheduleCliOptions, check: boolean): { file: ScheduleFile; source: string } {
  const source = opts.layerTypesSource ?? "--layer-types";
  const value = opts.layerTypes!;
  const literal = value.trimStart().startsWith("[");
  const text = literal ? value : readScheduleText(value);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${literal ? source : value}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(data)) throw new UserError(`${literal ? source : value}: not a LAYER_TYPES array ([[0,"Q4_K_M"],…])`);
  // with a schedule, its mixtures may be named: checked once the two are joined
  const file = check ? parseSchedule(text, literal ? source : value) : { layers: data as LayerEntry[] };
  return { file, source: literal ? source : value };
}

/** The schedule the options describe, before it is fitted to a model; plus its display name. */
export function scheduleFileFromOptions(opts: ScheduleCliOptions): { file: ScheduleFile; source: string; name: string } {
  if (opts.preset !== undefined && opts.ftype !== undefined) throw new UserError("--preset and --ftype exclude each other; give one");
  if (opts.preset !== undefined && opts.layerTypes !== undefined) {
    throw new UserError(`--preset and ${opts.layerTypesSource ?? "--layer-types"} exclude each other; give one`);
  }
  if (opts.preset === undefined && opts.ftype === undefined && opts.schedule === undefined && opts.layerTypes === undefined) {
    throw new UserError("one of --preset, --schedule, --ftype or --layer-types is required");
  }
  let file: ScheduleFile;
  let source: string;
  let name: string;
  if (opts.schedule !== undefined) {
    file = loadScheduleFile(opts.schedule);
    source = opts.schedule;
    name = file.name ?? path.basename(opts.schedule);
    if (opts.preset !== undefined) {
      // a schedule without types (only `surgery`, say) takes them from the preset
      if (hasTypes(file)) throw new UserError("--preset and a schedule with types exclude each other; give one");
      const types = typeSourceFile(opts);
      const { name: _name, description: _description, $schema: _schema, ...rest } = file;
      file = { ...types.file, ...rest };
      name = `${types.name}+${name}`;
    }
  } else if (opts.layerTypes !== undefined) {
    ({ file, source } = layerTypesFile(opts, true));
    name = source;
  } else {
    ({ file, source, name } = typeSourceFile(opts));
  }
  if (opts.layerTypes !== undefined && opts.schedule !== undefined) {
    // a schedule may bring the mixtures and options, the LAYER_TYPES literal the layers
    const lt = layerTypesFile(opts, false);
    if (file.layers !== undefined && file.layers.length > 0) {
      throw new UserError(`${lt.source} and the layers of ${opts.schedule} exclude each other; give one`);
    }
    file = { ...file, layers: lt.file.layers };
    name = `${name}+${lt.source}`;
    source = lt.source;
  }
  if (opts.ftype !== undefined && (opts.schedule !== undefined || opts.layerTypes !== undefined)) {
    if (file.layers === undefined || file.layers.length === 0) {
      // a schedule without layers (only `surgery`, say): --ftype gives every layer's type
      const types = typeSourceFile(opts);
      const { name: _name, description: _description, $schema: _schema, ...rest } = file;
      file = { ...rest, ...types.file };
      name = `${types.name}+${name}`;
    } else {
      // with per-layer types, --ftype is the base type: token_embd, output, general.file_type
      if (isCopyFileType(opts.ftype)) throw new UserError("--ftype COPY cannot be combined with per-layer types");
      file = { ...file, ftype: parseFileType(opts.ftype, "--ftype") };
    }
  } else if (opts.schedule !== undefined && !hasTypes(file)) {
    throw new UserError(`${opts.schedule}: ftype: required when the schedule has no layers (or give --ftype / --preset / --layer-types)`);
  }
  // the layers may name the schedule's mixtures: check them together
  if (opts.layerTypes !== undefined && opts.schedule !== undefined) file = validateSchedule(file, source);
  // command-line options win over the schedule's
  file = { ...file };
  if (opts.imatrix !== undefined) file.imatrix = opts.imatrix;
  // checked here so that the error names the option the user typed, not the schedule's field
  if (opts.tokenEmbeddingType !== undefined) {
    parseTargetType(opts.tokenEmbeddingType, "--token-embedding-type");
    file.token_embedding_type = opts.tokenEmbeddingType;
  }
  if (opts.outputTensorType !== undefined) {
    parseTargetType(opts.outputTensorType, "--output-tensor-type");
    file.output_tensor_type = opts.outputTensorType;
  }
  // pruned layers are input layer numbers (as llama-quantize's): the delete goes before any schedule surgery
  if (opts.pruneLayers !== undefined) file.surgery = [{ op: "delete", layers: parsePruneLayers(opts.pruneLayers) }, ...(file.surgery ?? [])];
  if (opts.pure) file.pure = true;
  if (opts.leaveOutputTensor) file.leave_output_tensor = true;
  if (opts.tensorType && opts.tensorType.length > 0) {
    // llama-quantize lower-cases --tensor-type patterns; given ones match before the schedule's
    const cli = opts.tensorType.map((arg) => {
      const where = `--tensor-type ${arg}`;
      const e = splitTensorTypeArg(arg, where);
      const pattern = e.pattern.toLowerCase();
      checkRegex(pattern, where);
      parseTargetType(e.type, where);
      return { pattern, type: e.type };
    });
    file.tensor_types = [...cli, ...(file.tensor_types ?? [])];
  }
  return { file, source, name };
}

/** Options → the schedule fitted to a model of `nLayer` layers. */
export function scheduleFromOptions(opts: ScheduleCliOptions, nLayer: number): CliSchedule {
  const { file, source, name } = scheduleFileFromOptions(opts);
  const resolved = resolveSchedule(file, nLayer, source, name);
  return opts.ftype !== undefined && opts.preset === undefined && isCopyFileType(opts.ftype) ? { ...resolved, copy: true } : resolved;
}
