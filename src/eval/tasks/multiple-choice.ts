// llama-perplexity --multiple-choice: the binary task files of llama.cpp's ARC / MMLU / TruthfulQA
// sets. Layout (little-endian): u32 task count n, u32 byte offset of each task, then the tasks:
// a string (u32 length + bytes) question, then two answer sets (mc1: one correct answer, the one
// scored; mc2: ignored), each u32 count ≤ 100, that many strings, that many i32 labels (1 = correct).
// Each answer is scored by the mean log-probability of "question answer" after the shared start.
import { UserError } from "../../errors.js";
import type { BatchContext } from "../../runtime/batch.js";
import { floatIndex, Mt19937 } from "./random.js";
import type { TaskScore } from "./score.js";
import { fixed } from "./score.js";
import { prefixTask, scoreSharedPrefix } from "./shared-prefix.js";

export interface AnswerSet {
  answers: string[];
  labels: number[];
}

export interface MultipleChoiceTask {
  /** 1-based task number in the file */
  index: number;
  question: string;
  mc1: AnswerSet;
  mc2: AnswerSet;
}

class Reader {
  constructor(
    private readonly buf: Buffer,
    public at: number,
  ) {}
  u32(): number | undefined {
    if (this.at + 4 > this.buf.length) return undefined;
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  string(): string | undefined {
    const n = this.u32();
    if (n === undefined || this.at + n > this.buf.length) return undefined;
    const s = this.buf.toString("utf8", this.at, this.at + n);
    this.at += n;
    return s;
  }
  answers(): AnswerSet | undefined {
    const n = this.u32();
    if (n === undefined || n > 100) return undefined;
    const answers: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = this.string();
      if (s === undefined) return undefined;
      answers.push(s);
    }
    if (this.at + 4 * n > this.buf.length) return undefined;
    const labels = Array.from({ length: n }, (_, i) => this.buf.readInt32LE(this.at + 4 * i));
    this.at += 4 * n;
    return { answers, labels };
  }
}

function readTask(buf: Buffer, at: number, index: number): MultipleChoiceTask | undefined {
  const r = new Reader(buf, at);
  const question = r.string();
  if (question === undefined) return undefined;
  const mc1 = r.answers();
  const mc2 = mc1 && r.answers();
  return mc1 && mc2 ? { index, question, mc1, mc2 } : undefined;
}

/** The tasks llama-perplexity reads: all in file order, or `count` drawn at random through the offset table. */
export function parseMultipleChoice(buf: Buffer, file: string, count = 0): MultipleChoiceTask[] {
  const r = new Reader(buf, 0);
  const n = r.u32();
  if (n === undefined || n === 0) throw new UserError(`${file}: no tasks (not a multiple-choice task file)`);
  const positions: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = r.u32();
    if (p === undefined) throw new UserError(`${file}: the offsets of its ${n} tasks are cut short (not a multiple-choice task file?)`);
    positions.push(p);
  }
  const tasks: MultipleChoiceTask[] = [];
  if (count === 0 || count >= n) {
    let at = r.at;
    for (let i = 0; i < n; i++) {
      const t = readTask(buf, at, i + 1);
      if (!t) throw new UserError(`${file}: task ${i + 1} of ${n} (byte ${at}): truncated or malformed`);
      tasks.push(t);
      at = taskEnd(buf, at);
    }
  } else {
    const rng = new Mt19937(1);
    const aux = positions.map((_, i) => i);
    for (let k = 0; k < count; k++) {
      const j = floatIndex(rng, aux.length);
      const idx = aux[j];
      aux[j] = aux[aux.length - 1];
      aux.pop();
      const t = readTask(buf, positions[idx], idx + 1);
      if (!t) throw new UserError(`${file}: task ${idx + 1} of ${n} (byte ${positions[idx]}): truncated or malformed`);
      tasks.push(t);
    }
  }
  for (const t of tasks) {
    if (t.question === "" || t.mc1.answers.length === 0) throw new UserError(`${file}: task ${t.index}: an empty question or no answers`);
    if (t.mc1.answers.some((a) => a === "")) throw new UserError(`${file}: task ${t.index}: an empty answer`);
  }
  return tasks;
}

function taskEnd(buf: Buffer, at: number): number {
  const r = new Reader(buf, at);
  r.string();
  r.answers();
  r.answers();
  return r.at;
}

/** The file format, for writing task files (tests, converters). */
export function serializeMultipleChoice(tasks: { question: string; mc1: AnswerSet; mc2?: AnswerSet }[]): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return Buffer.concat([n, b]);
  };
  const set = (a: AnswerSet) => {
    const n = Buffer.alloc(4);
    n.writeUInt32LE(a.answers.length);
    const labels = Buffer.alloc(4 * a.labels.length);
    a.labels.forEach((l, i) => labels.writeInt32LE(l, 4 * i));
    return Buffer.concat([n, ...a.answers.map(str), labels]);
  };
  const bodies = tasks.map((t) => Buffer.concat([str(t.question), set(t.mc1), set(t.mc2 ?? { answers: [], labels: [] })]));
  const head = Buffer.alloc(4 + 4 * tasks.length);
  head.writeUInt32LE(tasks.length, 0);
  let at = head.length;
  bodies.forEach((b, i) => {
    head.writeUInt32LE(at, 4 + 4 * i);
    at += b.length;
  });
  return Buffer.concat([head, ...bodies]);
}

export function scoreMultipleChoice(context: BatchContext, tokenize: (text: string) => number[], tasks: MultipleChoiceTask[], file: string): TaskScore {
  const f = Math.fround;
  const prepared = tasks.map((t) => prefixTask(t.mc1.answers.map((a) => tokenize(`${t.question} ${a}`))));
  let correct = 0;
  let done = 0;
  const lines: string[] = [];
  // llama-perplexity: min(4 · 32, n_seq_max) sequences, answers packed back to back
  scoreSharedPrefix(context, prepared, Math.min(128, context.nSeq), undefined, (i) => `${file}: task ${tasks[i].index}`, (i, answers) => {
    const logProbs = answers.map((a) => {
      let lp = a.first;
      for (const r of a.rest) lp = f(lp + r);
      return f(lp / (a.rest.length + 1));
    });
    let best = 0;
    for (let s = 1; s < logProbs.length; s++) if (logProbs[s] > logProbs[best]) best = s;
    if (tasks[i].mc1.labels[best] === 1) correct++;
    done++;
    lines.push(`${done}\t${fixed((100 * correct) / done, 8)}`);
  });
  const p = f(correct / done);
  const sigma = f(Math.sqrt(f(f(p * f(1 - p)) / (done - 1))));
  return { task: "multiple-choice", tasks: done, correct, accuracy: f(100 * p), error: f(100 * sigma), lines };
}
