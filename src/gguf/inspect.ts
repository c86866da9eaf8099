// `hquant inspect`: what a GGUF model is made of, as a pure report (GGUFModel → object) and a
// text rendering. The per-layer map shows one row per blk.N and one column per tensor kind, so
// a hybrid quant's layer schedule can be seen at a glance.
import { FILE_TYPES } from "../plan/ftypes.js";
import { typeName } from "./ggml-types.js";
import { architecture, archNumber, kvValue, type GGUFModel, type GGUFScalar } from "./model.js";

export interface TypeRow {
  type: string;
  tensors: number;
  params: number;
  bytes: number;
}

export interface LayerRow {
  layer: number;
  /** tensor kind → type name */
  types: Record<string, string>;
}

export interface InspectReport {
  file: string;
  shards: number;
  fileSize: number;
  architecture: string | null;
  name: string | null;
  parameterCount: number;
  layerCount: number;
  contextLength: number | null;
  tensorCount: number;
  /** bytes of tensor data (padding excluded) */
  tensorBytes: number;
  /** tensor data bits per parameter, as llama.cpp's "BPW" */
  bitsPerWeight: number;
  types: TypeRow[];
  layerColumns: string[];
  layers: LayerRow[];
  /** tensors outside blk.N (embeddings, output, norms) */
  otherTensors: { name: string; type: string; shape: number[] }[];
  /** general.file_type: the llama_ftype id and its name (null when the key is absent) */
  fileType: { id: number; name: string } | null;
  /** quantize.imatrix.* metadata (llama-quantize's record of the importance matrix) */
  quantize: Record<string, GGUFScalar | GGUFScalar[]>;
  /** hquant.* metadata, values as stored */
  hquant: Record<string, GGUFScalar | GGUFScalar[]>;
}

/** Column order of the layer map; kinds not listed follow in name order. */
export const LAYER_KIND_ORDER = [
  "attn_norm",
  "attn_q",
  "attn_k",
  "attn_v",
  "attn_qkv",
  "attn_q_norm",
  "attn_k_norm",
  "attn_output",
  "attn_post_norm",
  "ffn_norm",
  "ffn_gate_inp",
  "ffn_gate",
  "ffn_up",
  "ffn_down",
  "ffn_gate_exps",
  "ffn_up_exps",
  "ffn_down_exps",
  "ffn_gate_shexp",
  "ffn_up_shexp",
  "ffn_down_shexp",
  "post_ffw_norm",
];

const LAYER_TENSOR = /^blk\.(\d+)\.(.+?)(?:\.weight)?$/;

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function kindRank(kind: string): number {
  const base = kind.replace(/\.bias$/, "");
  const i = LAYER_KIND_ORDER.indexOf(base);
  return (i < 0 ? LAYER_KIND_ORDER.length : i) * 2 + (kind.endsWith(".bias") ? 1 : 0);
}

function compareKinds(a: string, b: string): number {
  return kindRank(a) - kindRank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

export function inspectModel(model: GGUFModel): InspectReport {
  const byType = new Map<number, TypeRow>();
  const layers = new Map<number, Record<string, string>>();
  const kinds = new Set<string>();
  const otherTensors: InspectReport["otherTensors"] = [];
  let params = 0;
  let bytes = 0;
  for (const t of model.tensors) {
    const n = elements(t.shape);
    params += n;
    bytes += t.bytes;
    const row = byType.get(t.type) ?? { type: typeName(t.type), tensors: 0, params: 0, bytes: 0 };
    row.tensors++;
    row.params += n;
    row.bytes += t.bytes;
    byType.set(t.type, row);
    const m = LAYER_TENSOR.exec(t.name);
    if (m) {
      const layer = Number(m[1]);
      kinds.add(m[2]);
      const cells = layers.get(layer) ?? {};
      cells[m[2]] = typeName(t.type);
      layers.set(layer, cells);
    } else {
      otherTensors.push({ name: t.name, type: typeName(t.type), shape: [...t.shape] });
    }
  }
  const name = kvValue(model.kv, "general.name");
  const hquant: InspectReport["hquant"] = {};
  for (const e of model.kv) if (e.key.startsWith("hquant.")) hquant[e.key] = e.value;
  const quantize: InspectReport["quantize"] = {};
  for (const e of model.kv) if (e.key.startsWith("quantize.")) quantize[e.key] = e.value;
  const ftypeId = kvValue(model.kv, "general.file_type");
  const fileType =
    typeof ftypeId === "number" ? { id: ftypeId, name: FILE_TYPES.find((f) => f.id === ftypeId)?.name ?? (ftypeId === 0 ? "F32" : `llama_ftype ${ftypeId}`) } : null;
  const blockCount = archNumber(model.kv, "block_count");
  return {
    file: model.files[0].path,
    shards: model.files.length,
    fileSize: model.files.reduce((n, f) => n + f.fileSize, 0),
    architecture: architecture(model.kv) ?? null,
    name: typeof name === "string" ? name : null,
    parameterCount: params,
    layerCount: blockCount ?? layers.size,
    contextLength: archNumber(model.kv, "context_length") ?? null,
    tensorCount: model.tensors.length,
    tensorBytes: bytes,
    bitsPerWeight: params > 0 ? (bytes * 8) / params : 0,
    types: [...byType.entries()].sort(([a], [b]) => a - b).map(([, row]) => row),
    layerColumns: [...kinds].sort(compareKinds),
    layers: [...layers.entries()].sort(([a], [b]) => a - b).map(([layer, types]) => ({ layer, types })),
    otherTensors,
    fileType,
    quantize,
    hquant,
  };
}

/** JSON with bigints as numbers when exact, else as decimal strings. */
export function reportToJson(report: InspectReport): string {
  return JSON.stringify(
    report,
    (_k, v) => (typeof v === "bigint" ? (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
    2,
  );
}

const thousands = (n: number) => n.toLocaleString("en-US");

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join("  ").trimEnd());
}

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 2)} ${units[u]}`;
}

function rawValue(v: GGUFScalar | GGUFScalar[]): string {
  return Array.isArray(v) ? `[${v.map(rawValue).join(", ")}]` : typeof v === "string" ? JSON.stringify(v) : String(v);
}

export function renderReport(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(
    ...table([
      ["file", r.shards > 1 ? `${r.file} (${r.shards} shards)` : r.file],
      ["architecture", r.architecture ?? "-"],
      ["name", r.name ?? "-"],
      ["file type", r.fileType ? `${r.fileType.name} (${r.fileType.id})` : "-"],
      ["parameters", `${thousands(r.parameterCount)}`],
      ["layers", String(r.layerCount)],
      ["context length", r.contextLength === null ? "-" : String(r.contextLength)],
      ["tensors", String(r.tensorCount)],
      ["file size", `${thousands(r.fileSize)} bytes (${humanBytes(r.fileSize)})`],
      ["bits per weight", r.bitsPerWeight.toFixed(2)],
    ]),
  );
  lines.push("");
  lines.push(
    ...table([
      ["type", "tensors", "params", "bytes"],
      ...r.types.map((t) => [t.type, String(t.tensors), thousands(t.params), thousands(t.bytes)]),
      ["total", String(r.tensorCount), thousands(r.parameterCount), thousands(r.tensorBytes)],
    ]),
  );
  if (r.layers.length > 0) {
    lines.push("");
    lines.push(...table([["layer", ...r.layerColumns], ...r.layers.map((l) => [String(l.layer), ...r.layerColumns.map((k) => l.types[k] ?? "-")])]));
  }
  if (r.otherTensors.length > 0) {
    lines.push("");
    lines.push(...table([["tensor", "type", "shape"], ...r.otherTensors.map((t) => [t.name, t.type, `[${t.shape.join(", ")}]`])]));
  }
  const hq = [...Object.entries(r.quantize), ...Object.entries(r.hquant)];
  if (hq.length > 0) {
    lines.push("");
    lines.push(...table(hq.map(([k, v]) => [k, rawValue(v)])));
  }
  return lines.join("\n") + "\n";
}
