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
import type { TensorCategory } from "./tensors.js";
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
  /** named custom mixtures ("Q5_K_L": a standard file type plus per-kind types), usable in `layers` */
  mixtures?: Record<string, MixtureSpec | string>;
}

/** A custom mixture as a schedule writes it: `base` (a file type) and a type per tensor kind. */
export type MixtureSpec = { base?: string } & { [kind: string]: string | undefined };

/** A custom mixture, resolved: the base file type's rules, then these kinds' types in its layers. */
export interface CustomMixture {
  name: string;
  base: FileTypeName;
  overrides: { category: TensorCategory; type: GGMLType }[];
}

/** Tensor kinds a mixture may set: the model cards' short names and the tensors' own. */
export const MIXTURE_KINDS: Readonly<Record<string, TensorCategory>> = {
  attn_q: "attn_q",
  attn_k: "attn_k",
  attn_v: "attn_v",
  attn_qkv: "attn_qkv",
  attn_o: "attn_output",
  attn_output: "attn_output",
  ffn_u: "ffn_up",
  ffn_up: "ffn_up",
  ffn_g: "ffn_gate",
  ffn_gate: "ffn_gate",
  ffn_d: "ffn_down",
  ffn_down: "ffn_down",
};

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
    case "required": {
      // a misspelt key ("ftpye") makes the real one missing: name the misspelling
      const props = Object.keys((err.parentSchema as { properties?: object }).properties ?? {});
      const unknown = value !== null && typeof value === "object" ? Object.keys(value).filter((k) => !props.includes(k)) : [];
      if (unknown.length > 0 && props.length > 0) return `${field}: unknown key ${JSON.stringify(unknown[0])}; allowed: ${props.join(", ")}`;
      return `${fieldPath(err.instancePath, (err.params as { missingProperty: string }).missingProperty)}: required`;
    }
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
  // a surgery-only schedule takes its types from --ftype / --preset, a mixtures-only one its
  // layers from --layer-types / LAYER_TYPES (options.ts)
  if (!hasTypes(s) && s.surgery === undefined && s.mixtures === undefined) {
    throw new UserError(`${source}: ftype: required when the schedule has no layers`);
  }
  for (const [i, e] of (s.tensor_types ?? []).entries()) {
    const pattern = typeof e === "string" ? splitTensorTypeArg(e, `${source}: tensor_types[${i}]`).pattern : e.pattern;
    checkRegex(pattern, `${source}: tensor_types[${i}]`);
  }
  // relative and absolute entries do not mix: one schedule either fits any depth or names layers
  const kinds = new Set((s.layers ?? []).map((e) => (!Array.isArray(e) && "depth" in e ? "depth" : "index")));
  if (kinds.size > 1) throw new UserError(`${source}: layers: mixes depth entries with layer indices; use one or the other`);
  const mixtures = resolveMixtures(s, source);
  if (kinds.has("depth")) checkDepthCoverage(s.layers!, source, mixtures);
  else if (s.layers) absoluteLayerMap(s.layers, source, mixtures);
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

/** Where an entry's type is, for errors: `layers[3][1]` (tuple) or `layers[3].ftype`. */
function entryTypeWhere(e: LayerEntry, source: string, i: number): string {
  return Array.isArray(e) ? `${source}: layers[${i}][1]` : `${source}: layers[${i}].ftype`;
}

/** One layer's type: a standard file type, or a custom mixture (then `ftype` is its base). */
export interface LayerType {
  ftype: FileTypeName;
  mixture?: CustomMixture;
}

type Mixtures = ReadonlyMap<string, CustomMixture>;
const NO_MIXTURES: Mixtures = new Map();

/** A layer's type name: a file type (name, alias, number) or one of the schedule's mixtures. */
export function parseLayerType(name: string, mixtures: Mixtures, where: string): LayerType {
  const mixture = mixtures.get(name.toUpperCase());
  if (mixture) return { ftype: mixture.base, mixture };
  if (fileTypeByName(name) || refusedFileType(name) || mixtures.size === 0) return { ftype: parseFileType(name, where) };
  throw new UserError(
    `${where}: unknown file type ${JSON.stringify(name)}; valid: ${FILE_TYPE_NAMES.join(", ")} and the schedule's mixtures ${[...mixtures.values()].map((m) => m.name).join(", ")}`,
  );
}

/** Card notation: `Q4_K_M + attn_o = q6_k`, `attn_v = q8_0 ffn_d = q6_k`, `Q6_K` → the object form. */
export function parseMixtureText(text: string, where: string): MixtureSpec {
  const words = text.replace(/[=+,]/g, (c) => (c === "=" ? " = " : " ")).trim().split(/\s+/).filter(Boolean);
  const spec: MixtureSpec = {};
  let i = 0;
  if (words.length > 0 && words[1] !== "=") spec.base = words[i++];
  while (i < words.length) {
    const [kind, eq, type] = [words[i], words[i + 1], words[i + 2]];
    if (eq !== "=" || type === undefined || type === "=") {
      throw new UserError(`${where}: cannot read ${JSON.stringify(text)}; expected "BASE + KIND = TYPE KIND = TYPE …" (e.g. "Q4_K_M + attn_o = q6_k")`);
    }
    if (spec[kind!] !== undefined) throw new UserError(`${where}: ${kind} is given twice`);
    spec[kind!] = type;
    i += 3;
  }
  return spec;
}

/**
 * The base a mixture gets when its definition names none (the cards' `Q5_K_L : attn_v = q8_0 …`):
 * the file type llama-quantize reads from the name without its last `_X` (Q5_K_L → Q5_K = Q5_K_M,
 * Q6_K_M → Q6_K).
 */
function impliedBase(name: string): FileTypeName | undefined {
  const m = /^(.+)_[A-Za-z0-9]+$/.exec(name);
  return m ? fileTypeByName(m[1]!)?.name : undefined;
}

/** The schedule's `mixtures`, checked: names (upper-cased) → resolved mixtures. */
export function resolveMixtures(s: ScheduleFile, source: string): Mixtures {
  if (s.mixtures === undefined) return NO_MIXTURES;
  const out = new Map<string, CustomMixture>();
  for (const [name, def] of Object.entries(s.mixtures)) {
    const where = `${source}: mixtures.${name}`;
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw new UserError(`${where}: a mixture name is letters, digits and _`);
    if (fileTypeByName(name) || refusedFileType(name) || isCopyName(name)) {
      throw new UserError(`${where}: ${name} is a llama.cpp file type; give the mixture another name`);
    }
    if (out.has(name.toUpperCase())) throw new UserError(`${where}: defined twice (names are case-insensitive)`);
    const spec = typeof def === "string" ? parseMixtureText(def, where) : def;
    const base = spec.base !== undefined ? parseFileType(spec.base, `${where}.base`) : impliedBase(name);
    if (base === undefined) {
      throw new UserError(`${where}: base: required (the name does not imply a file type); e.g. "base": "Q4_K_M"`);
    }
    const overrides: CustomMixture["overrides"] = [];
    const seen = new Map<TensorCategory, string>();
    for (const [kind, type] of Object.entries(spec)) {
      if (kind === "base" || type === undefined) continue;
      const category = MIXTURE_KINDS[kind.toLowerCase()];
      if (category === undefined) {
        throw new UserError(`${where}: unknown tensor kind ${JSON.stringify(kind)}; valid: ${Object.keys(MIXTURE_KINDS).join(", ")}`);
      }
      const prev = seen.get(category);
      if (prev !== undefined) throw new UserError(`${where}: ${kind} and ${prev} name the same tensors`);
      seen.set(category, kind);
      overrides.push({ category, type: parseTargetType(type, `${where}.${kind}`) });
    }
    out.set(name.toUpperCase(), { name, base, overrides });
  }
  return out;
}

const isCopyName = (name: string) => name.toUpperCase() === "COPY";

/** `Q5_K_L = Q5_K_M + attn_v = q8_0 …`: how plan prints a mixture. */
export function describeMixture(m: CustomMixture): string {
  const kinds = m.overrides.map((o) => `${o.category} = ${typeName(o.type)}`);
  return `${m.name} = ${m.base}${kinds.length > 0 ? ` + ${kinds.join(", ")}` : ""}`;
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

/** Layer → type for an absolute list; checks overlaps and gaps. Returns the list's depth. */
function absoluteLayerMap(entries: readonly LayerEntry[], source: string, mixtures: Mixtures): LayerType[] {
  const owner: (number | undefined)[] = [];
  const ftypes: LayerType[] = [];
  const ranges = entries.map((e, i) => absoluteRange(e, `${source}: layers[${i}]`));
  entries.forEach((e, i) => {
    const [from, to] = ranges[i]!;
    const ftype = parseLayerType(entryFtype(e), mixtures, entryTypeWhere(e, source, i));
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
function checkDepthCoverage(entries: readonly LayerEntry[], source: string, mixtures: Mixtures): void {
  const items = entries.map((e, i) => ({ i, range: depthRange(e) }));
  for (const { i, range } of items) {
    const [a, b] = range;
    if (!(a >= 0 && b <= 1 && a < b)) {
      throw new UserError(`${source}: layers[${i}].depth: bad range ${a}-${b}; need 0 ≤ FROM < TO ≤ 1`);
    }
    parseLayerType(entryFtype(entries[i]!), mixtures, entryTypeWhere(entries[i]!, source, i));
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

/**
 * The most used file type (ties: the earliest layer's), for `general.file_type`, token_embd and
 * output when none is given; a custom mixture counts as its base.
 */
export function dominantFtype(ftypes: readonly FileTypeName[]): FileTypeName {
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
export function resolveLayerTypes(s: ScheduleFile, nLayer: number, source: string, model = "the model"): LayerType[] {
  const mixtures = resolveMixtures(s, source);
  const layers = s.layers ?? [];
  if (layers.length === 0) return new Array<LayerType>(nLayer).fill({ ftype: parseFileType(s.ftype!, `${source}: ftype`) });
  if (!Array.isArray(layers[0]) && "depth" in layers[0]!) {
    const ranges = layers.map(depthRange);
    return Array.from({ length: nLayer }, (_, i) => {
      const at = nLayer === 1 ? 0 : i / (nLayer - 1);
      const k = ranges.findIndex(([a, b]) => at >= a && (at < b || (at === 1 && b === 1)));
      return parseLayerType(entryFtype(layers[k]!), mixtures, entryTypeWhere(layers[k]!, source, k));
    });
  }
  const listed = absoluteLayerMap(layers, source, mixtures);
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

/** One file type per layer (a custom mixture gives its base; see resolveLayerTypes). */
export function resolveLayerFtypes(s: ScheduleFile, nLayer: number, source: string, model = "the model"): FileTypeName[] {
  return resolveLayerTypes(s, nLayer, source, model).map((t) => t.ftype);
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
  const layerTypes = recipes
    ? resolveLayerTypes(s, recipes.length, source, "the model after surgery")
    : resolveLayerTypes(s, nLayer, source);
  const layerFtypes = layerTypes.map((t) => t.ftype);
  const usesMixtures = layerTypes.some((t) => t.mixture !== undefined);
  return {
    ...(surgery && { surgery, recipes }),
    name: name ?? s.name ?? source,
    ftype: s.ftype !== undefined ? parseFileType(s.ftype, `${source}: ftype`) : dominantFtype(layerFtypes),
    ...(s.ftype === undefined && { ftypeFromLayers: true }),
    layerFtypes,
    ...(usesMixtures && { layerMixtures: layerTypes.map((t) => t.mixture) }),
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

