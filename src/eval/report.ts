// The bench report: one row per evaluated file, sorted by size, Pareto-optimal rows marked (a row
// is dominated when another is no larger and no worse, and strictly better in one of the two).
import type { LlamaRuntimeReport } from "../runtime/index.js";
import { taskCells, taskColumns, type PromptSummary, type TaskSummary } from "./tasks/format.js";

/** Task accuracy and prompt-suite columns (bench --task / --prompts). */
export interface TaskFields {
  task?: TaskSummary;
  prompts?: PromptSummary;
}
export interface BenchRow extends TaskFields {
  /** short name shown in tables and charts */
  label: string;
  file: string;
  /** file size in bytes */
  bytes: number;
  /** bits per weight: tensor data bits over parameter count (llama-quantize's "quant size") */
  bpw: number;
  ppl: number;
  pplErr: number;
  /** mean KL-divergence base‖file per scored token */
  kld: number;
  /** 99th percentile of the per-token KLD */
  kld99: number;
  kldMax: number;
  /** % of scored tokens where the file's top token is the base model's */
  topTokenPct: number;
  /** llama.cpp file type name (general.file_type), e.g. "Q4_K_M" */
  ftype: string;
  /** hquant preset or schedule the file was built from, when it was built by hquant */
  preset?: string;
  imatrix: boolean;
  /** what produced the file ("llama.cpp", "hquant", "given") */
  producer?: string;
  pareto?: boolean;
}

export type QualityMetric = "kld" | "ppl";

/** Marks Pareto-optimal rows (smaller size and lower `metric` dominate) and sorts by size. */
export function markPareto<T extends BenchRow>(rows: readonly T[], metric: QualityMetric = "kld"): T[] {
  const dominated = (r: T) =>
    rows.some((o) => o !== r && o.bytes <= r.bytes && o[metric] <= r[metric] && (o.bytes < r.bytes || o[metric] < r[metric]));
  return rows.map((r) => ({ ...r, pareto: !dominated(r) })).sort((a, b) => a.bytes - b.bytes || a[metric] - b[metric]);
}

function fmt(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "—";
}

function fmtSmall(v: number): string {
  if (!Number.isFinite(v)) return "—";
  return v === 0 ? "0" : v < 0.001 ? v.toExponential(2) : v.toFixed(5);
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(2);
}

export interface BaseLine extends TaskFields {
  file: string;
  bytes: number;
  bpw: number;
  ppl: number;
  pplErr: number;
}

/** Markdown table of the rows (already sorted); the base model first as the reference. */
export function markdownTable(rows: readonly BenchRow[], base?: BaseLine, metric: QualityMetric = "kld"): string {
  const all: TaskFields[] = [...(base ? [base] : []), ...rows];
  const task = all.find((r) => r.task)?.task?.task;
  const prompts = all.some((r) => r.prompts);
  const extra = taskColumns(task, prompts);
  const cells = (r: TaskFields) => taskCells(r, task !== undefined, prompts).map((c) => ` ${c} |`).join("");
  const head = "| | file | type | imatrix | size MiB | bpw | PPL | KLD | KLD p99 | same top % |" + extra.map((c) => ` ${c} |`).join("");
  const sep = "|---|---|---|---|---:|---:|---:|---:|---:|---:|" + extra.map(() => "---:|").join("");
  const lines = [head, sep];
  if (base) lines.push(`| base | ${base.file} | | | ${mib(base.bytes)} | ${fmt(base.bpw, 2)} | ${fmt(base.ppl, 4)} ± ${fmt(base.pplErr, 4)} | 0 | 0 | 100 |${cells(base)}`);
  for (const r of rows) {
    // a preset named after its file type (Q4_K_M) says it once
    const type = r.preset && r.preset.toUpperCase() !== r.ftype.toUpperCase() ? `${r.preset} (${r.ftype})` : r.ftype;
    lines.push(
      `| ${r.pareto ? "★" : ""} | ${r.label} | ${type} | ${r.imatrix ? "yes" : "no"} | ${mib(r.bytes)} | ${fmt(r.bpw, 2)} | ${fmt(r.ppl, 4)} | ${fmtSmall(r.kld)} | ${fmtSmall(r.kld99)} | ${fmt(r.topTokenPct, 2)} |${cells(r)}`,
    );
  }
  const by = metric === "kld" ? "closer to the base model (lower KLD)" : "lower in perplexity";
  return lines.join("\n") + `\n\n★ Pareto-optimal: no other file is both smaller and ${by}.\n`;
}

export interface BenchReport {
  /** where llama.cpp ran: build, -ngl, devices */
  runtime?: LlamaRuntimeReport;
  base?: BaseLine;
  text: string;
  ctx: number;
  chunks: number;
  positions: number;
  rows: BenchRow[];
}

export function reportJson(report: BenchReport): string {
  return JSON.stringify(report, null, 2) + "\n";
}
