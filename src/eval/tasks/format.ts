// How task scores and prompt-suite results appear in bench's tables (also report.ts's columns).
import type { TaskScore } from "./score.js";

/** A task score without its per-task lines. */
export type TaskSummary = Omit<TaskScore, "lines">;

export interface PromptSummary {
  passed: number;
  total: number;
  /** the prompts that failed, with what the model wrote */
  failed: { prompt: string; output: string; missing: string[]; present: string[] }[];
}

/** "55.4622 ± 4.5753" (winogrande, multiple-choice) or "25.0000 [13.2524, 42.1066]" (hellaswag's 95 % interval). */
export function formatTaskScore(t: TaskSummary): string {
  if (t.interval) return `${t.accuracy.toFixed(4)} [${t.interval[0].toFixed(4)}, ${t.interval[1].toFixed(4)}]`;
  return `${t.accuracy.toFixed(4)} ± ${(t.error ?? NaN).toFixed(4)}`;
}

/** The extra table columns: header cells and the cells of one row. */
export function taskColumns(task: string | undefined, prompts: boolean): string[] {
  return [...(task ? [`${task} %`] : []), ...(prompts ? ["prompts"] : [])];
}

export function taskCells(row: { task?: TaskSummary; prompts?: PromptSummary }, task: boolean, prompts: boolean): string[] {
  return [...(task ? [row.task ? formatTaskScore(row.task) : "—"] : []), ...(prompts ? [row.prompts ? `${row.prompts.passed}/${row.prompts.total}` : "—"] : [])];
}

