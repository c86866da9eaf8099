// A tuned assignment (one type per tensor) as a schedule file the planner and `hquant build
// --schedule` read: anchored `tensor_types` overrides, one per (tensor kind, type) listing its
// layers, so every quantizable tensor is named and no mixture rule applies. Sized exactly as
// `hquant plan` sizes it: the overrides are recorded in the header (hquant.schedule.tensor_types),
// so a longer schedule makes a larger header, and that growth counts against the budget.
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import type { GGUFKV } from "../gguf/model.js";
import { outputFileSize, outputHeaderSize } from "../gguf/writer.js";
import { mixtureHParams } from "../plan/hparams.js";
import { FILE_TYPES, type FileTypeName } from "../plan/ftypes.js";
import { outputMetadata, outputTensors, type ImatrixInfo } from "../plan/metadata.js";
import { OUTPUT_ALIGNMENT, planModel, type Plan, type PlannerModel } from "../plan/planner.js";
import { resolveSchedule, type ScheduleFile } from "../plan/schedule.js";
import { HQUANT_VERSION } from "../version.js";
import type { TuneSpace } from "./candidates.js";

/** tensor name → written type */
export type Assignment = ReadonlyMap<string, GGMLType>;

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The file type recorded as general.file_type: the one whose default type covers most weights. */
function recordedFileType(space: TuneSpace, assignment: Assignment): FileTypeName {
  const elements = new Map<GGMLType, number>();
  for (const t of space.tensors) {
    const type = assignment.get(t.name)!;
    elements.set(type, (elements.get(type) ?? 0) + t.elements);
  }
  const ranked = [...elements].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (const [type] of ranked) {
    // the first file type (llama.cpp's order) with this default; Q2_K_S would demand an imatrix
    const ftype = FILE_TYPES.find((f) => f.defaultType === type && f.name !== "Q2_K_S" && f.name !== "Q3_K_S");
    // a non-quantized default (F16) would bypass the overrides: the planner keeps such layers as they are
    if (ftype && ftype.defaultType !== GGMLType.F16 && ftype.defaultType !== GGMLType.BF16 && ftype.defaultType !== GGMLType.F32) return ftype.name;
  }
  return "Q8_0";
}

export interface TunedScheduleInfo {
  name: string;
  description: string;
  /** imatrix path as the schedule file should record it (relative to the schedule's folder) */
  imatrix?: string;
}

/** The schedule file for an assignment. */
export function scheduleFile(space: TuneSpace, assignment: Assignment, info: TunedScheduleInfo): ScheduleFile {
  // (layer-less name, type) → layers, in model order
  const byKind = new Map<string, { suffix: string; layers: number[]; type: GGMLType; name?: string }>();
  for (const t of space.tensors) {
    const type = assignment.get(t.name);
    if (type === undefined) throw new Error(`no type assigned to ${t.name}`);
    if (t.layer < 0) {
      byKind.set(`${t.name}=${type}`, { suffix: t.name, layers: [], type, name: t.name });
      continue;
    }
    const suffix = t.name.slice(`blk.${t.layer}.`.length);
    const key = `${suffix}=${type}`;
    const e = byKind.get(key) ?? { suffix, layers: [], type };
    e.layers.push(t.layer);
    byKind.set(key, e);
  }
  const tensorTypes = [...byKind.values()].map((e) => {
    const pattern = e.name !== undefined ? `^${escapeRegex(e.name)}$` : `^blk\\.(${e.layers.join("|")})\\.${escapeRegex(e.suffix)}$`;
    return `${pattern}=${typeName(e.type)}`;
  });
  return {
    name: info.name,
    description: info.description,
    ftype: recordedFileType(space, assignment),
    tensor_types: tensorTypes,
    ...(info.imatrix !== undefined && { imatrix: info.imatrix }),
  };
}

export interface SizedSchedule {
  file: ScheduleFile;
  plan: Plan;
  /** the file `hquant build --schedule` writes, to the byte */
  fileBytes: number;
  headerBytes: number;
}

/**
 * Plans a schedule file against the model and sizes the output as the build writes it (hquant.*
 * keys, quantize.imatrix.* when `imatrix` is given). `hasImatrix` tells the planner one is used.
 */
export function sizeSchedule(model: PlannerModel & { kv: readonly GGUFKV[] }, file: ScheduleFile, imatrix: ImatrixInfo | undefined, source = "tuned schedule"): SizedSchedule {
  const nLayer = mixtureHParams(model.kv, source).nLayer;
  const resolved = resolveSchedule({ ...file, imatrix: imatrix?.file }, nLayer, source, file.name);
  const plan = planModel(model, resolved, source);
  const kv = outputMetadata(model.kv, plan, { imatrix, hquant: { version: HQUANT_VERSION } });
  const tensors = outputTensors(plan);
  return { file, plan, fileBytes: outputFileSize(kv, tensors, OUTPUT_ALIGNMENT), headerBytes: outputHeaderSize(kv, tensors, OUTPUT_ALIGNMENT) };
}

/** Throws unless the plan gives every tuned tensor its assigned type (the schedule round trip). */
export function checkPlanMatches(space: TuneSpace, assignment: Assignment, plan: Plan): void {
  const planned = new Map(plan.tensors.map((t) => [t.name, t.dstType]));
  for (const t of space.tensors) {
    const want = assignment.get(t.name)!;
    const got = planned.get(t.name);
    if (got !== want) throw new Error(`tuned schedule: ${t.name} plans as ${got === undefined ? "missing" : typeName(got)}, assigned ${typeName(want)}`);
  }
}
