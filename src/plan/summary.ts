// What `hquant plan` prints: a per-layer grid of types, a per-type table and the totals. Pure.
import { typeName } from "../gguf/ggml-types.js";
import { describeSurgery, formatSurgeryTable } from "../surgery/index.js";
import type { Plan, PlannedTensor, ResolvedSchedule } from "./planner.js";
import { describeMixture, type CustomMixture } from "./schedule.js";

/** Each layer's type name: its custom mixture's, else its file type. */
export function layerTypeNames(s: ResolvedSchedule): string[] {
  return s.layerFtypes.map((f, l) => s.layerMixtures?.[l]?.name ?? f);
}

/** The custom mixtures the layers use, in order of first use. */
export function usedMixtures(s: ResolvedSchedule): CustomMixture[] {
  return [...new Set((s.layerMixtures ?? []).filter((m): m is CustomMixture => m !== undefined))];
}

/** How the file type of the tensors outside the layers (and general.file_type) was chosen. */
export function fileTypeNote(s: ResolvedSchedule): string {
  return s.ftypeFromLayers ? `file type ${s.ftype} (the most frequent layer type; --ftype sets it)` : `file type ${s.ftype}`;
}

export interface PlanSizes {
  /** output header bytes (metadata + tensor infos + padding) */
  headerBytes: number;
  /** exact output file size */
  fileBytes: number;
  /** input tensor bytes, for the ratio */
  inputTensorBytes: number;
}

export interface TypeRow {
  type: string;
  tensors: number;
  elements: number;
  bytes: number;
}

const elementsOf = (t: PlannedTensor) => t.shape.reduce((a, b) => a * b, 1);

/** `blk.3.attn_q.weight` → `attn_q` (the grid's column). */
function columnOf(t: PlannedTensor): string {
  return t.name.replace(/^blk\.\d+\./, "").replace(/\.weight$/, "");
}

export function typeTable(plan: Plan): TypeRow[] {
  const rows = new Map<string, TypeRow>();
  for (const t of plan.tensors) {
    const type = typeName(t.dstType);
    const r = rows.get(type) ?? { type, tensors: 0, elements: 0, bytes: 0 };
    r.tensors++;
    r.elements += elementsOf(t);
    r.bytes += t.bytes;
    rows.set(type, r);
  }
  return [...rows.values()].sort((a, b) => b.bytes - a.bytes);
}

export function bitsPerWeight(plan: Plan): number {
  return plan.elements === 0 ? 0 : (plan.tensorBytes * 8) / plan.elements;
}

const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd());
}

/** The per-layer grid: one row per run of identical layers; only the matrices (≥ 2-D). */
export function layerGrid(plan: Plan): string[] {
  const matrices = plan.tensors.filter((t) => t.layer >= 0 && t.shape.length >= 2 && t.shape.filter((d) => d > 1).length >= 2);
  const columns = [...new Set(matrices.map(columnOf))];
  const nLayer = plan.schedule.layerFtypes.length;
  const names = layerTypeNames(plan.schedule);
  const cells: string[][] = [];
  for (let l = 0; l < nLayer; l++) {
    const byCol = new Map(matrices.filter((t) => t.layer === l).map((t) => [columnOf(t), typeName(t.dstType)]));
    cells.push([names[l]!, ...columns.map((c) => byCol.get(c) ?? "-")]);
  }
  const rows: string[][] = [["layer", "ftype", ...columns]];
  for (let l = 0; l < nLayer; ) {
    let e = l;
    while (e + 1 < nLayer && cells[e + 1]!.join() === cells[l]!.join()) e++;
    rows.push([e === l ? `${l}` : `${l}-${e}`, ...cells[l]!]);
    l = e + 1;
  }
  return table(rows);
}

export function formatPlan(plan: Plan, sizes: PlanSizes, modelName: string): string {
  const s = plan.schedule;
  const out: string[] = [];
  const from = plan.surgery ? ` (after surgery; the input has ${plan.surgery.inputLayers})` : "";
  out.push(`${modelName}: ${plan.hparams.arch}, ${s.layerFtypes.length} layers${from}, ${plan.tensors.length} tensors`);
  const opts: string[] = [fileTypeNote(s)];
  if (s.tokenEmbeddingType !== undefined) opts.push(`token embedding ${typeName(s.tokenEmbeddingType)}`);
  if (s.outputTensorType !== undefined) opts.push(`output ${typeName(s.outputTensorType)}`);
  if (s.tensorTypes.length > 0) opts.push(`overrides ${s.tensorTypes.map((o) => `${o.pattern}=${typeName(o.type)}`).join(" ")}`);
  if (s.pure) opts.push("pure");
  if (s.leaveOutputTensor) opts.push("leave output tensor");
  if (s.imatrix !== undefined) opts.push(`imatrix ${s.imatrix}`);
  out.push(`schedule ${s.name}: ${opts.join(", ")}`);
  for (const m of usedMixtures(s)) out.push(`mixture ${describeMixture(m)}`);
  if (plan.surgery) {
    out.push("");
    out.push(...formatSurgeryTable(describeSurgery(plan.surgery.recipes), plan.surgery.inputLayers));
    for (const w of plan.surgery.warnings) out.push(`warning: ${w}`);
  }
  out.push("");
  out.push(...layerGrid(plan));
  const outside = plan.tensors.filter((t) => t.layer < 0);
  if (outside.length > 0) {
    out.push("");
    out.push(...table(outside.map((t) => [t.name, typeName(t.dstType)])));
  }
  out.push("");
  const rows = [["type", "tensors", "elements", "bytes", "share"]];
  for (const r of typeTable(plan)) {
    rows.push([r.type, `${r.tensors}`, `${r.elements}`, `${r.bytes}`, `${((100 * r.bytes) / plan.tensorBytes).toFixed(1)}%`]);
  }
  out.push(...table(rows));
  out.push("");
  if (plan.fallbacks.length > 0) out.push(`fallbacks: ${plan.fallbacks.length} tensor(s) did not fit their type's block (row length)`);
  out.push(`tensor data: ${plan.tensorBytes} bytes (${mib(plan.tensorBytes)}), from ${sizes.inputTensorBytes} (${mib(sizes.inputTensorBytes)})`);
  out.push(`output file: ${sizes.fileBytes} bytes (${mib(sizes.fileBytes)}; header ${sizes.headerBytes})`);
  out.push(`bits per weight: ${bitsPerWeight(plan).toFixed(4)}`);
  return out.join("\n");
}

export function planJson(plan: Plan, sizes: PlanSizes, modelName: string): object {
  const s = plan.schedule;
  return {
    model: modelName,
    arch: plan.hparams.arch,
    layers: s.layerFtypes.length,
    schedule: {
      name: s.name,
      ftype: s.ftype,
      fileTypeId: plan.fileType.id,
      fileTypeFromLayers: s.ftypeFromLayers === true,
      layerFtypes: s.layerFtypes,
      layerTypes: layerTypeNames(s),
      mixtures: usedMixtures(s).map((m) => ({ name: m.name, base: m.base, kinds: Object.fromEntries(m.overrides.map((o) => [o.category, typeName(o.type)])) })),
      tokenEmbeddingType: s.tokenEmbeddingType === undefined ? null : typeName(s.tokenEmbeddingType),
      outputTensorType: s.outputTensorType === undefined ? null : typeName(s.outputTensorType),
      tensorTypes: s.tensorTypes.map((o) => ({ pattern: o.pattern, type: typeName(o.type) })),
      pure: s.pure,
      leaveOutputTensor: s.leaveOutputTensor,
      imatrix: s.imatrix ?? null,
    },
    surgery: plan.surgery
      ? { ops: plan.surgery.ops, inputLayers: plan.surgery.inputLayers, layers: describeSurgery(plan.surgery.recipes), warnings: plan.surgery.warnings }
      : null,
    tensors: plan.tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      layer: t.layer,
      ftype: t.ftype,
      srcType: typeName(t.srcType),
      dstType: typeName(t.dstType),
      reason: t.reason,
      bytes: t.bytes,
      offset: t.offset,
    })),
    types: typeTable(plan),
    fallbacks: plan.fallbacks.map((f) => ({ name: f.name, from: typeName(f.from), to: typeName(f.to) })),
    tensorBytes: plan.tensorBytes,
    inputTensorBytes: sizes.inputTensorBytes,
    headerBytes: sizes.headerBytes,
    fileBytes: sizes.fileBytes,
    bitsPerWeight: bitsPerWeight(plan),
  };
}
