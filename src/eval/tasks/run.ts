// `hquant bench --task / --prompts` without the CLI: every model scored on the task file and the
// prompt suite, each in the evaluation process (a llama.cpp abort is one model's one-line error).
// No base model is needed: task accuracy and prompts are absolute, not relative to a base.
import path from "node:path";
import { readFileInfo } from "../file-info.js";
import { scorePromptSuite, scoreTaskFile } from "../isolated.js";
import type { PromptCase } from "./prompts.js";
import type { TaskKind } from "./index.js";
import { taskCells, taskColumns, type PromptSummary, type TaskSummary } from "./format.js";

export type { PromptSummary, TaskSummary } from "./format.js";

export interface TaskBenchOptions {
  models: { file: string; label?: string }[];
  task?: { kind: TaskKind; file: string; tasks?: number; ctx?: number };
  prompts?: { file: string; cases: PromptCase[] };
  threads: number;
  signal?: AbortSignal;
  /** before each model */
  onFile?: (file: string, index: number, total: number) => void;
}

export interface TaskRow {
  label: string;
  file: string;
  bytes: number;
  bpw: number;
  ftype: string;
  task?: TaskSummary;
  prompts?: PromptSummary;
}

export async function runTaskBench(opts: TaskBenchOptions): Promise<TaskRow[]> {
  const rows: TaskRow[] = [];
  for (const [k, m] of opts.models.entries()) {
    opts.signal?.throwIfAborted();
    opts.onFile?.(m.file, k, opts.models.length);
    const info = await readFileInfo(m.file);
    const row: TaskRow = { label: m.label ?? path.basename(m.file, ".gguf"), file: m.file, bytes: info.bytes, bpw: info.bpw, ftype: info.ftype };
    if (opts.task) {
      const { lines: _lines, ...summary } = await scoreTaskFile(m.file, { ...opts.task, threads: opts.threads, signal: opts.signal });
      row.task = summary;
    }
    if (opts.prompts) {
      const s = await scorePromptSuite(m.file, { cases: opts.prompts.cases, threads: opts.threads, signal: opts.signal });
      row.prompts = { passed: s.passed, total: s.total, failed: s.results.filter((r) => !r.pass).map(({ prompt, output, missing, present }) => ({ prompt, output, missing, present })) };
    }
    rows.push(row);
  }
  return rows;
}

/** The table of the KLD-free mode: one row per model. */
export function taskTable(rows: readonly TaskRow[], task: string | undefined, prompts: boolean): string {
  const extra = taskColumns(task, prompts);
  const lines = [`| file | type | size MiB | bpw | ${extra.join(" | ")} |`, `|---|---|---:|---:|${extra.map(() => "---:").join("|")}|`];
  for (const r of rows) lines.push(`| ${r.label} | ${r.ftype} | ${(r.bytes / (1024 * 1024)).toFixed(2)} | ${r.bpw.toFixed(2)} | ${taskCells(r, task !== undefined, prompts).join(" | ")} |`);
  return lines.join("\n") + "\n";
}
