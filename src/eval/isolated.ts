// The evaluator's public functions, each run in the evaluation process (src/runtime/isolation.ts)
// so that a llama.cpp abort is a one-line error, not the end of hquant. Same signatures as
// evaluate.ts and tasks/index.ts; HQUANT_ISOLATION=0 calls those directly in this process.
import fs from "node:fs";
import path from "node:path";
import { cloneableOptions, isolationEnabled, runIsolated } from "../runtime/isolation.js";
import * as direct from "./evaluate.js";
import type { BaseEvaluation, EvalOptions } from "./evaluate.js";
import type { KldSummary } from "./kld-math.js";
import * as tasks from "./tasks/index.js";
import type { PromptOptions, PromptSuiteScore, TaskOptions, TaskScore } from "./tasks/index.js";

/** The base cache's temp file of a dead evaluation process (BaseCacheWriter: `<cache>.<pid>.tmp`). */
function removeCacheTemps(cacheDir: string): (pid: number) => void {
  return (pid) => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(cacheDir);
    } catch {
      return;
    }
    for (const n of names) if (n.endsWith(`.${pid}.tmp`)) fs.rmSync(path.join(cacheDir, n), { force: true });
  };
}

export async function evaluateBase(file: string, text: string, textName: string, opts: EvalOptions): Promise<BaseEvaluation> {
  if (!isolationEnabled()) return direct.evaluateBase(file, text, textName, opts);
  return runIsolated<BaseEvaluation>(
    { module: "eval/evaluate.js", fn: "evaluateBase", args: [file, text, textName, cloneableOptions(opts)], hooksArg: 3 },
    { file, onProgress: opts.onProgress, signal: opts.signal, cleanup: removeCacheTemps(opts.cacheDir) },
  );
}

export async function evaluateAgainstBase(base: BaseEvaluation, model: string | readonly string[], opts: EvalOptions): Promise<KldSummary> {
  if (!isolationEnabled()) return direct.evaluateAgainstBase(base, model, opts);
  return runIsolated<KldSummary>(
    { module: "eval/evaluate.js", fn: "evaluateAgainstBase", args: [base, model, cloneableOptions(opts)], hooksArg: 2 },
    // a model loaded from shards is named by its first shard
    { file: typeof model === "string" ? model : model[0]!, onProgress: opts.onProgress, signal: opts.signal },
  );
}

/** tasks.scoreTaskFile in the evaluation process. */
export async function scoreTaskFile(model: string, opts: TaskOptions & { signal?: AbortSignal }): Promise<TaskScore> {
  if (!isolationEnabled()) return tasks.scoreTaskFile(model, opts);
  return runIsolated<TaskScore>({ module: "eval/tasks/index.js", fn: "scoreTaskFile", args: [model, cloneableOptions(opts)] }, { file: model, signal: opts.signal });
}

/** tasks.scorePromptSuite in the evaluation process. */
export async function scorePromptSuite(model: string, opts: PromptOptions & { signal?: AbortSignal }): Promise<PromptSuiteScore> {
  if (!isolationEnabled()) return tasks.scorePromptSuite(model, opts);
  return runIsolated<PromptSuiteScore>({ module: "eval/tasks/index.js", fn: "scorePromptSuite", args: [model, cloneableOptions(opts)] }, { file: model, signal: opts.signal });
}

export type { BaseEvaluation, EvalOptions } from "./evaluate.js";
