// Layer schedules: the JSON a user or preset writes (validated against schemas/schedule.schema.json),
// and its resolution against a model's layer count into a ResolvedSchedule (planner.ts).
// Pure: the caller reads the files.
import type { ErrorObject } from "ajv";
import { GGMLType, typeByName, typeName } from "../gguf/ggml-types.js";
import { UserError } from "../errors.js";
import { FILE_TYPE_NAMES, TARGET_TYPES, fileTypeByName, refusedFileType, type FileTypeName } from "./ftypes.js";
import type { ResolvedSchedule, TensorOverride } from "./planner.js";
import { applySurgery, validateSurgery, type SurgeryOp } from "../surgery/index.js";
import { compileStdRegex } from "./std-regex.js";
import { lazyValidator } from "./validators.js";

/** `[index, "FTYPE"]`, as in the LAYER_TYPES lists hybrid-quant publishers post. */
export type LayerTuple = [number, string];
export interface LayerRangeObject {
  from: number;
  to: number;
}
/** One entry of `layers`: absolute (index, "A-B", {from,to}) or relative (depth fractions). */
export type LayerEntry =
  | LayerTuple
  | { layers: number | string | LayerRangeObject; ftype: string }
  | { depth: [number, number] | LayerRangeObject; ftype: string };

export interface TensorTypeEntry {
  pattern: string;
  type: string;
}

/** The schedule file / preset format (see schemas/schedule.schema.json). */
export interface ScheduleFile {
  $schema?: string;
  name?: string;
  description?: string;
  ftype?: string;
  layers?: LayerEntry[];
  resample?: boolean;
  token_embedding_type?: string;
  output_tensor_type?: string;
  leave_output_tensor?: boolean;
  tensor_types?: (TensorTypeEntry | string)[];
  pure?: boolean;
  imatrix?: string;
  /** layer surgery, applied in order to the input's layers (see schemas/surgery.schema.json) */
  surgery?: SurgeryOp[];
}

/** Canonical ggml names of the types a user may name, for error messages. */
export const TARGET_TYPE_NAMES: readonly string[] = TARGET_TYPES.map(typeName);

/** schemas/schedule.schema.json (a package asset, two levels up from src/plan and dist/plan). */
export const SCHEDULE_SCHEMA_URL = new URL("../../schemas/schedule.schema.json", import.meta.url);

// loaded at first use: a build from --ftype never validates a schedule
const validate = lazyValidator("schedule", SCHEDULE_SCHEMA_URL);

/** `/layers/3/ftype` → `layers[3].ftype` */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split("/").slice(1);
  if (extra !== undefined) parts.push(extra);
  let out = "";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === "" ? p : `.${p}`;
  return out === "" ? "(top level)" : out;
}

function isTypeField(path: string): boolean {
  return /(^|\.)(type|token_embedding_type|output_tensor_type)$/.test(path);
}

function valueAt(data: unknown, instancePath: string): unknown {
  let v: unknown = data;
  for (const p of instancePath.split("/").slice(1)) v = (v as Record<string, unknown>)?.[p];
  return v;
}

/** One readable line for the first schema error. */
function describeSchemaError(err: ErrorObject, data: unknown): string {
  const field = fieldPath(err.instancePath);
  const value = valueAt(data, err.instancePath);
  switch (err.keyword) {
    case "enum": {
      if (field.endsWith("ftype") || /^layers\[\d+\]\[1\]$/.test(field)) {
        return `${field}: unknown file type ${JSON.stringify(value)}; valid: ${FILE_TYPE_NAMES.join(", ")}`;
      }
      if (isTypeField(field)) {
        return `${field}: unknown tensor type ${JSON.stringify(value)}; valid: ${TARGET_TYPE_NAMES.join(", ")}`;
      }
      return `${field}: ${JSON.stringify(value)} is not one of ${(err.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`;
    }
    case "additionalProperties": {
      const extra = (err.params as { additionalProperty: string }).additionalProperty;
      const props = Object.keys((err.parentSchema as { properties?: object }).properties ?? {});
      return `${fieldPath(err.instancePath, extra)}: unknown field; allowed: ${props.join(", ")}`;
    }
    case "required":
      return `${fieldPath(err.instancePath, (err.params as { missingProperty: string }).missingProperty)}: required`;
    case "type":
      return `${field}: must be ${(err.params as { type: string }).type}`;
    case "pattern":
      return `${field}: ${JSON.stringify(value)} ${err.parentSchema && (err.parentSchema as { description?: string }).description ? `is not ${(err.parentSchema as { description: string }).description}` : `does not match ${(err.params as { pattern: string }).pattern}`}`;
    default:
      return `${field}: ${err.message ?? "invalid"}`;
  }
}

/** Parse + validate a schedule file's text. A bare LAYER_TYPES array is a valid schedule. */
export function parseSchedule(text: string, source: string): ScheduleFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${source}: not valid JSON (${(err as Error).message})`);
  }
  return validateSchedule(Array.isArray(data) ? { layers: data } : data, source);
}

export function validateSchedule(data: unknown, source: string): ScheduleFile {
  const errors = validate(data);
  if (errors.length > 0) throw new UserError(`${source}: ${describeSchemaError(errors[0]!, data)}`);
  const s = data as ScheduleFile;
  if (s.surgery !== undefined) validateSurgery(s.surgery, source);
  // a surgery-only schedule takes its types from --ftype / --preset (options.ts)
  if (!hasTypes(s) && s.surgery === undefined) {
    throw new UserError(`${source}: ftype: required when the schedule has no layers`);
  }
  for (const [i, e] of (s.tensor_types ?? []).entries()) {
    const pattern = typeof e === "string" ? splitTensorTypeArg(e, `${source}: tensor_types[${i}]`).pattern : e.pattern;
    checkRegex(pattern, `${source}: tensor_types[${i}]`);
  }
  // relative and absolute entries do not mix: one schedule either fits any depth or names layers
  const kinds = new Set((s.layers ?? []).map((e) => (!Array.isArray(e) && "depth" in e ? "depth" : "index")));
  if (kinds.size > 1) throw new UserError(`${source}: layers: mixes depth entries with layer indices; use one or the other`);
  if (kinds.has("depth")) checkDepthCoverage(s.layers!, source);
  else if (s.layers) absoluteLayerMap(s.layers, source);
  return s;
}

/** true when the schedule says which file type each layer gets (ftype or layers). */
export function hasTypes(s: ScheduleFile): boolean {
  return s.ftype !== undefined || (s.layers !== undefined && s.layers.length > 0);
}

/** A --tensor-type pattern, read as llama.cpp's std::regex reads it (std-regex.ts). */
export function checkRegex(pattern: string, where: string): RegExp {
  return compileStdRegex(pattern, where);
}

/** `PATTERN=TYPE` as llama-quantize parses --tensor-type (split at the first '='). */
export function splitTensorTypeArg(arg: string, where: string): TensorTypeEntry {
  const eq = arg.indexOf("=");
  if (eq < 0) throw new UserError(`${where}: malformed tensor type ${JSON.stringify(arg)}; expected PATTERN=TYPE`);
  if (eq === 0) throw new UserError(`${where}: missing tensor name pattern in ${JSON.stringify(arg)}`);
  if (eq === arg.length - 1) throw new UserError(`${where}: missing quantization type in ${JSON.stringify(arg)}`);
  return { pattern: arg.slice(0, eq), type: arg.slice(eq + 1) };
}

/** A user-named tensor type (case-insensitive ggml name), limited to the types hquant writes. */
export function parseTargetType(name: string, where: string): GGMLType {
  const info = typeByName(name);
  if (!info || !TARGET_TYPES.includes(info.id)) {
    throw new UserError(`${where}: unknown tensor type ${JSON.stringify(name)}; valid: ${TARGET_TYPE_NAMES.join(", ")}`);
  }
  return info.id;
}

export function parseFileType(name: string, where: string): FileTypeName {
  const f = fileTypeByName(name);
  const refused = f ? undefined : refusedFileType(name);
  if (refused) throw new UserError(`${where}: ${refused}`);
  if (!f) throw new UserError(`${where}: unknown file type ${JSON.stringify(name)}; valid: ${FILE_TYPE_NAMES.join(", ")}`);
  return f.name;
}

// --- layers -----------------------------------------------------------------------------------

function entryFtype(e: LayerEntry): string {
  return Array.isArray(e) ? e[1] : e.ftype;
}

/** Inclusive layer range of an absolute entry. */
function absoluteRange(e: LayerEntry, where: string): [number, number] {
  if (Array.isArray(e)) return [e[0], e[0]];
  const l = (e as { layers: number | string | LayerRangeObject }).layers;
  if (typeof l === "number") return [l, l];
  let from: number;
  let to: number;
  if (typeof l === "string") {
    const m = /^(\d+)(?:-(\d+))?$/.exec(l);
    if (!m) throw new UserError(`${where}.layers: bad range ${JSON.stringify(l)}; expected "N" or "FROM-TO"`);
    from = Number(m[1]);
    to = m[2] === undefined ? from : Number(m[2]);
  } else {
    ({ from, to } = l);
  }
  if (from > to) throw new UserError(`${where}.layers: bad range ${from}-${to}; FROM must not be greater than TO`);
  return [from, to];
}

function rangeText([a, b]: [number, number]): string {
  return a === b ? `${a}` : `${a}-${b}`;
}

/** Layer → file type for an absolute list; checks overlaps and gaps. Returns the list's depth. */
function absoluteLayerMap(entries: readonly LayerEntry[], source: string): FileTypeName[] {
  const owner: (number | undefined)[] = [];
  const ftypes: FileTypeName[] = [];
  const ranges = entries.map((e, i) => absoluteRange(e, `${source}: layers[${i}]`));
  entries.forEach((e, i) => {
    const [from, to] = ranges[i]!;
    const ftype = parseFileType(entryFtype(e), `${source}: layers[${i}]`);
    for (let l = from; l <= to; l++) {
      const prev = owner[l];
      if (prev !== undefined) {
        throw new UserError(
          `${source}: layers[${i}] (layer ${rangeText(ranges[i]!)}) overlaps layers[${prev}] (layer ${rangeText(ranges[prev]!)})`,
        );
      }
      owner[l] = i;
      ftypes[l] = ftype;
    }
  });
  const missing: number[] = [];
  for (let l = 0; l < owner.length; l++) if (owner[l] === undefined) missing.push(l);
  if (missing.length > 0) {
    throw new UserError(`${source}: layers: no file type for layer ${compactList(missing)}`);
  }
  return ftypes;
}

function compactList(xs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    out.push(rangeText([xs[i]!, xs[j]!]));
    i = j + 1;
  }
  return out.join(", ");
}

function depthRange(e: LayerEntry): [number, number] {
  const d = (e as { depth: [number, number] | LayerRangeObject }).depth;
  return Array.isArray(d) ? [d[0], d[1]] : [d.from, d.to];
}

/** Depth entries must tile [0, 1) exactly: sorted by start, each starting where the previous ended. */
function checkDepthCoverage(entries: readonly LayerEntry[], source: string): void {
  const items = entries.map((e, i) => ({ i, range: depthRange(e) }));
  for (const { i, range } of items) {
    const [a, b] = range;
    if (!(a >= 0 && b <= 1 && a < b)) {
      throw new UserError(`${source}: layers[${i}].depth: bad range ${a}-${b}; need 0 ≤ FROM < TO ≤ 1`);
    }
    parseFileType(entryFtype(entries[i]!), `${source}: layers[${i}]`);
  }
  items.sort((x, y) => x.range[0] - y.range[0]);
  let covered = 0;
  let last: (typeof items)[number] | undefined;
  for (const it of items) {
    const [a, b] = it.range;
    if (a < covered && last) {
      throw new UserError(
        `${source}: layers[${it.i}] (depth ${a}-${b}) overlaps layers[${last.i}] (depth ${last.range[0]}-${last.range[1]})`,
      );
    }
    if (a > covered) throw new UserError(`${source}: layers: no file type for depth ${covered}-${a}`);
    covered = b;
    last = it;
  }
  if (covered < 1) throw new UserError(`${source}: layers: no file type for depth ${covered}-1`);
}

/** The most used file type (ties: the earliest layer's), for `general.file_type` when none is given. */
function dominantFtype(ftypes: readonly FileTypeName[]): FileTypeName {
  const counts = new Map<FileTypeName, number>();
  for (const f of ftypes) counts.set(f, (counts.get(f) ?? 0) + 1);
  let best = ftypes[0]!;
  for (const f of ftypes) if (counts.get(f)! > counts.get(best)!) best = f;
  return best;
}

/**
 * One file type per layer for a model of `nLayer` layers.
 * - no `layers`: every layer gets `ftype`;
 * - depth entries: layer i sits at depth i / (nLayer - 1) (first 0, last 1) and takes the entry whose
 *   [from, to) holds it (the last entry also holds 1). A list made for N layers with boundaries at
 *   multiples of 1/N gives back exactly that list on N layers;
 * - absolute entries: must list exactly layers 0…nLayer-1, unless `resample` maps the list's
 *   L layers onto nLayer (layer i ← round(i·(L-1)/(nLayer-1)), so first and last map to first and last).
 */
export function resolveLayerFtypes(s: ScheduleFile, nLayer: number, source: string, model = "the model"): FileTypeName[] {
  const layers = s.layers ?? [];
  if (layers.length === 0) return new Array<FileTypeName>(nLayer).fill(parseFileType(s.ftype!, `${source}: ftype`));
  if (!Array.isArray(layers[0]) && "depth" in layers[0]!) {
    const ranges = layers.map(depthRange);
    return Array.from({ length: nLayer }, (_, i) => {
      const at = nLayer === 1 ? 0 : i / (nLayer - 1);
      const k = ranges.findIndex(([a, b]) => at >= a && (at < b || (at === 1 && b === 1)));
      return parseFileType(entryFtype(layers[k]!), `${source}: layers[${k}]`);
    });
  }
  const listed = absoluteLayerMap(layers, source);
  if (listed.length === nLayer) return listed;
  if (!s.resample) {
    throw new UserError(
      `${source}: layers: the schedule lists ${listed.length} layers (0-${listed.length - 1}) but ${model} has ${nLayer}; ` +
        `use depth entries or set "resample": true`,
    );
  }
  if (nLayer === 1) return [listed[0]!];
  const L = listed.length;
  return Array.from({ length: nLayer }, (_, i) => listed[Math.round((i * (L - 1)) / (nLayer - 1))]!);
}

function toOverride(e: TensorTypeEntry | string, where: string): TensorOverride {
  const { pattern, type } = typeof e === "string" ? splitTensorTypeArg(e, where) : e;
  checkRegex(pattern, where);
  return { pattern, type: parseTargetType(type, where) };
}

/**
 * A validated schedule file, resolved for an input model with `nLayer` layers. With `surgery`, the
 * ops are applied first and the per-layer types refer to the final layer list.
 */
export function resolveSchedule(s: ScheduleFile, nLayer: number, source: string, name?: string): ResolvedSchedule {
  if (!hasTypes(s)) throw new UserError(`${source}: ftype: required when the schedule has no layers (or give --ftype / --preset)`);
  const surgery = s.surgery !== undefined && s.surgery.length > 0 ? s.surgery : undefined;
  const recipes = surgery ? applySurgery(nLayer, surgery, source) : undefined;
  const layerFtypes = recipes
    ? resolveLayerFtypes(s, recipes.length, source, "the model after surgery")
    : resolveLayerFtypes(s, nLayer, source);
  return {
    ...(surgery && { surgery, recipes }),
    name: name ?? s.name ?? source,
    ftype: s.ftype !== undefined ? parseFileType(s.ftype, `${source}: ftype`) : dominantFtype(layerFtypes),
    layerFtypes,
    tokenEmbeddingType:
      s.token_embedding_type !== undefined ? parseTargetType(s.token_embedding_type, `${source}: token_embedding_type`) : undefined,
    outputTensorType:
      s.output_tensor_type !== undefined ? parseTargetType(s.output_tensor_type, `${source}: output_tensor_type`) : undefined,
    leaveOutputTensor: s.leave_output_tensor ?? false,
    tensorTypes: (s.tensor_types ?? []).map((e, i) => toOverride(e, `${source}: tensor_types[${i}]`)),
    pure: s.pure ?? false,
    imatrix: s.imatrix,
  };
}

/** The plain llama-quantize case: one file type everywhere. */
export function uniformSchedule(ftype: FileTypeName, nLayer: number, extra: Partial<ResolvedSchedule> = {}): ResolvedSchedule {
  return {
    name: ftype,
    ftype,
    layerFtypes: new Array<FileTypeName>(nLayer).fill(ftype),
    leaveOutputTensor: false,
    tensorTypes: [],
    pure: false,
    ...extra,
  };
}

