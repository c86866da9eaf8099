// llama-perplexity --hellaswag: six lines per task (context, gold ending 0–3, four endings), tasks
// drawn at random (mt19937 seeded 1, without replacement), each ending scored by its mean token
// log-probability after "context ending"; the score is acc_norm with a 95 % Wilson interval.
import { UserError } from "../../errors.js";
import type { BatchContext } from "../../runtime/batch.js";
import { Mt19937, uniformIndex } from "./random.js";
import { fixed, wilsonInterval, type TaskScore } from "./score.js";
import { prefixTask, scoreSharedPrefix } from "./shared-prefix.js";

export interface HellaswagTask {
  /** 1-based line of the context in the file */
  line: number;
  context: string;
  gold: number;
  endings: [string, string, string, string];
}

/** llama-perplexity's default --hellaswag-tasks */
export const HELLASWAG_DEFAULT_TASKS = 400;

/** llama-perplexity's -f drops one final newline of the file. */
export function promptText(text: string): string {
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

/** The lines of the prompt as std::getline gives them (a final newline ends the last line, it does not start another). */
export function textLines(text: string): string[] {
  const lines = promptText(text).split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function parseHellaswag(text: string, file: string): HellaswagTask[] {
  const lines = textLines(text);
  if (lines.length === 0) throw new UserError(`${file}: no tasks (a HellaSwag task is 6 lines)`);
  if (lines.length % 6 !== 0) throw new UserError(`${file}: line ${lines.length - (lines.length % 6) + 1}: an incomplete task (${lines.length} lines, not a multiple of 6)`);
  const tasks: HellaswagTask[] = [];
  for (let i = 0; i < lines.length; i += 6) {
    const gold = lines[i + 1];
    if (!/^[0-3]\r?$/.test(gold)) throw new UserError(`${file}: line ${i + 2}: the gold ending must be 0, 1, 2 or 3 (got ${JSON.stringify(gold.slice(0, 40))})`);
    tasks.push({ line: i + 1, context: lines[i], gold: Number(gold.trim()), endings: [lines[i + 2], lines[i + 3], lines[i + 4], lines[i + 5]] });
  }
  return tasks;
}

/** The tasks llama-perplexity scores, in its order: `count` drawn at random without replacement. */
export function selectHellaswag(tasks: HellaswagTask[], count: number): HellaswagTask[] {
  const left = [...tasks];
  const rng = new Mt19937(1);
  const n = Math.min(count, tasks.length);
  const out: HellaswagTask[] = [];
  for (let i = 0; i < n; i++) {
    const idx = uniformIndex(rng, left.length);
    out.push(left[idx]);
    left.splice(idx, 1);
  }
  return out;
}

export function scoreHellaswag(context: BatchContext, tokenize: (text: string) => number[], all: HellaswagTask[], count: number, file: string): TaskScore {
  const tasks = selectHellaswag(all, count);
  const prepared = tasks.map((t) => prefixTask(t.endings.map((e) => tokenize(`${t.context} ${e}`))));
  let correct = 0;
  const lines: string[] = [];
  // llama-perplexity: min(4 · 32 tasks, n_seq_max) sequences, 4 per task
  scoreSharedPrefix(context, prepared, Math.min(128, context.nSeq), 4, (i) => `${file}: line ${tasks[i].line}`, (i, answers) => {
    const means = answers.map((a) => {
      let lp = a.first;
      for (const r of a.rest) lp += r;
      return lp / (a.rest.length + 1);
    });
    let best = 0;
    for (let s = 1; s < 4; s++) if (means[s] > means[best]) best = s;
    if (best === tasks[i].gold) correct++;
    const n = i + 1;
    const [a, b] = wilsonInterval(correct, n);
    lines.push(`${n}\t${fixed((correct / n) * 100, 8, 3)}%\t[${fixed(a * 100, 4, 3)}%, ${fixed(b * 100, 4, 3)}%]`);
  });
  const n = tasks.length;
  const [a, b] = wilsonInterval(correct, n);
  return { task: "hellaswag", tasks: n, correct, accuracy: (correct / n) * 100, interval: [a * 100, b * 100], lines };
}
