// Task accuracy as llama-perplexity scores it (--hellaswag, --winogrande, --multiple-choice) and the
// greedy prompt suite, for one model file: the task file is read and checked first, then the model
// is loaded with llama-perplexity's task context (n_parallel 4 sequences of --ctx tokens, one
// unified KV cache, n_batch = min(2048, 4·ctx)).
import fs from "node:fs";
import { UserError } from "../../errors.js";
import { LlamaModel } from "../../runtime/index.js";
import { BatchContext } from "../../runtime/batch.js";
import { HELLASWAG_DEFAULT_TASKS, parseHellaswag, scoreHellaswag } from "./hellaswag.js";
import { parseWinogrande, scoreWinogrande } from "./winogrande.js";
import { parseMultipleChoice, scoreMultipleChoice } from "./multiple-choice.js";
import { parsePromptSuite, runPromptSuite, type PromptCase, type PromptSuiteScore } from "./prompts.js";
import type { TaskScore } from "./score.js";

export type TaskKind = "hellaswag" | "winogrande" | "multiple-choice";
export const TASK_KINDS: readonly TaskKind[] = ["hellaswag", "winogrande", "multiple-choice"];

export { type TaskScore } from "./score.js";
export { type PromptCase, type PromptResult, type PromptSuiteScore, parsePromptSuite } from "./prompts.js";
export { serializeMultipleChoice, parseMultipleChoice } from "./multiple-choice.js";
export { parseHellaswag } from "./hellaswag.js";
export { parseWinogrande } from "./winogrande.js";

export interface TaskOptions {
  kind: TaskKind;
  /** the task file */
  file: string;
  /** tasks to score (llama-perplexity's --hellaswag-tasks 400 / --winogrande-tasks / --multiple-choice-tasks 0 = all) */
  tasks?: number;
  /** tokens per sequence (llama-perplexity -c, default 512) */
  ctx?: number;
  threads: number;
}

/** llama-perplexity's task modes decode 4 sequences (max(4, -np)) in one unified cache. */
const TASK_SEQUENCES = 4;
const PERPLEXITY_BATCH = 2048;

function readTaskFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The tasks of a task file, checked (nothing is loaded): throws a one-line UserError naming the line or task. */
export function loadTasks(kind: TaskKind, file: string, tasks?: number) {
  const buf = readTaskFile(file);
  if (kind === "multiple-choice") return { kind, tasks: parseMultipleChoice(buf, file, tasks ?? 0) } as const;
  const text = buf.toString("utf8");
  if (kind === "hellaswag") return { kind, tasks: parseHellaswag(text, file) } as const;
  return { kind, tasks: parseWinogrande(text, file) } as const;
}

function openContext(model: LlamaModel, ctx: number, threads: number, nSeq = TASK_SEQUENCES): BatchContext {
  const nCtx = nSeq * ctx;
  return BatchContext.create(model, { nCtx, nSeq, nBatch: Math.min(PERPLEXITY_BATCH, nCtx), threads, kvUnified: true });
}

/** Scores `model` on a task file as llama-perplexity --hellaswag / --winogrande / --multiple-choice does. */
export function scoreTaskFile(model: string, opts: TaskOptions): TaskScore {
  const loaded = loadTasks(opts.kind, opts.file, opts.tasks);
  const m = LlamaModel.load(model);
  try {
    const context = openContext(m, opts.ctx ?? 512, opts.threads);
    try {
      const tokenize = (t: string) => Array.from(m.tokenize(t));
      if (loaded.kind === "hellaswag") return scoreHellaswag(context, tokenize, loaded.tasks, opts.tasks ?? HELLASWAG_DEFAULT_TASKS, opts.file);
      if (loaded.kind === "winogrande") return scoreWinogrande(context, tokenize, loaded.tasks, opts.tasks ?? 0, opts.file);
      return scoreMultipleChoice(context, tokenize, loaded.tasks, opts.file);
    } finally {
      context.dispose();
    }
  } finally {
    m.dispose();
  }
}

export interface PromptOptions {
  /** the suite's cases (parsePromptSuite) */
  cases: PromptCase[];
  threads: number;
}

/** Greedy-decodes every prompt of the suite with `model` and checks the expected substrings. */
export function scorePromptSuite(model: string, opts: PromptOptions): PromptSuiteScore {
  const m = LlamaModel.load(model);
  try {
    const longest = Math.max(...opts.cases.map((c) => m.tokenize(c.prompt).length + (c.maxTokens ?? 32)));
    const ctx = Math.max(256, Math.ceil(longest / 256) * 256);
    const context = BatchContext.create(m, { nCtx: ctx, nSeq: 1, nBatch: Math.min(PERPLEXITY_BATCH, ctx), threads: opts.threads });
    try {
      return runPromptSuite(context, (t) => Array.from(m.tokenize(t)), opts.cases);
    } finally {
      context.dispose();
    }
  } finally {
    m.dispose();
  }
}
