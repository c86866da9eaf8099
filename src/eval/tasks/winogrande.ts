// llama-perplexity --winogrande: CSV lines "index,sentence with _,choice 1,choice 2,answer (1|2)";
// each sentence is completed with both choices and scored by the mean log-probability of the words
// after the blank (of the choice too when fewer than 4 tokens follow it); with --tasks N, N tasks
// drawn at random (mt19937 seeded 1).
import { UserError } from "../../errors.js";
import type { BatchContext } from "../../runtime/batch.js";
import { floatIndex, Mt19937 } from "./random.js";
import { fixed, outputRow, tokenLogprob, type TaskScore } from "./score.js";
import { commonPrefix } from "./shared-prefix.js";
import { promptText } from "./hellaswag.js";

export interface WinograndeTask {
  line: number;
  first: string;
  second: string;
  choices: [string, string];
  answer: 1 | 2;
}

/**
 * Lines as llama-perplexity reads them: -f drops the file's final newline, and its loop stops at
 * the line that reaches the end of the text (std::getline … eof), so the last line is never read.
 * A first line that is not a task is a header. Every other malformed line is an error
 * (llama-perplexity logs it and skips it).
 */
export function parseWinogrande(text: string, file: string): WinograndeTask[] {
  const all = promptText(text).split("\n");
  all.pop();
  const tasks: WinograndeTask[] = [];
  for (const [k, line] of all.entries()) {
    const where = `${file}: line ${k + 1}`;
    const commas: number[] = [];
    let quoted = false;
    for (let i = 0; i < line.length && commas.length < 4; i++) {
      if (quoted) {
        if (line[i] === '"') quoted = false;
      } else if (line[i] === ",") commas.push(i);
      else if (line[i] === '"') quoted = true;
    }
    const answerText = commas.length === 4 ? line.slice(commas[3] + 1) : "";
    const m = /^\s*([+-]?\d+)/.exec(answerText);
    const answer = m ? Number(m[1]) : NaN;
    if (k === 0 && (commas.length !== 4 || !(answer === 1 || answer === 2))) continue; // a header
    if (commas.length !== 4) throw new UserError(`${where}: not 5 comma-separated fields (index,sentence,choice 1,choice 2,answer)`);
    const [c0, c1, c2, c3] = commas;
    const sentence = line[c0 + 1] === '"' ? line.slice(c0 + 2, c1 - 1) : line.slice(c0 + 1, c1);
    const blank = sentence.indexOf("_");
    if (blank < 0) throw new UserError(`${where}: the sentence has no _ (the blank the choices fill)`);
    if (!(answer === 1 || answer === 2)) throw new UserError(`${where}: the answer must be 1 or 2 (got ${JSON.stringify(answerText.slice(0, 20))})`);
    tasks.push({ line: k + 1, first: sentence.slice(0, blank), second: sentence.slice(blank + 1), choices: [line.slice(c1 + 1, c2), line.slice(c2 + 1, c3)], answer });
  }
  if (tasks.length === 0) throw new UserError(`${file}: no tasks`);
  return tasks;
}

export function selectWinogrande(tasks: WinograndeTask[], count: number): WinograndeTask[] {
  if (count <= 0 || count >= tasks.length) return tasks;
  const rng = new Mt19937(1);
  const aux = tasks.map((_, i) => i);
  const out: WinograndeTask[] = [];
  for (let i = 0; i < count; i++) {
    const j = floatIndex(rng, aux.length);
    out.push(tasks[aux[j]]);
    aux[j] = aux[aux.length - 1];
    aux.pop();
  }
  return out;
}

/** Tokens after the shared start that must follow the blank for the choice words to be skipped. */
const MIN_TRAILING_CTX = 3;

export function scoreWinogrande(context: BatchContext, tokenize: (text: string) => number[], all: WinograndeTask[], count: number, file: string): TaskScore {
  const tasks = selectWinogrande(all, count);
  const f = Math.fround;
  const prepared = tasks.map((t) => {
    const seqs = [tokenize(t.first + t.choices[0] + t.second), tokenize(t.first + t.choices[1] + t.second)];
    const cp = commonPrefix(seqs);
    if (cp === 0 || seqs.some((s) => s.length <= cp)) throw new UserError(`${file}: line ${t.line}: both choices give the same text`);
    return { seqs, cp, required: cp + seqs[0].length - cp + seqs[1].length - cp, nBase: [tokenize(t.first + t.choices[0]).length, tokenize(t.first + t.choices[1]).length] };
  });
  const nCtx = context.nCtx;
  const nVocab = context.model.nVocab;
  const maxSeq = Math.min(2 * 128, context.nSeq);
  let correct = 0;
  let done = 0;
  const lines: string[] = [];
  for (let i0 = 0; i0 < prepared.length; i0++) {
    let nCur = 0;
    let i1 = i0;
    let iLogits = 0;
    const starts: number[] = [];
    context.clear();
    while (nCur + prepared[i1].required <= nCtx) {
      const t = prepared[i1];
      const s0 = 2 * (i1 - i0);
      if (s0 + 2 > maxSeq) break;
      for (let k = 0; k < t.cp; k++) context.add(t.seqs[0][k], k, [s0, s0 + 1], false);
      context.setLastLogits();
      let nLogits = 1;
      for (let s = 0; s < 2; s++) {
        for (let k = t.cp; k < t.seqs[s].length; k++) {
          context.add(t.seqs[s][k], k, [s0 + s], true);
          nLogits++;
        }
      }
      starts.push(iLogits);
      iLogits += nLogits;
      nCur += t.required;
      if (++i1 === prepared.length) break;
    }
    if (i0 === i1) throw new UserError(`${file}: line ${tasks[i0].line}: does not fit in the context window (needs ${prepared[i0].required} tokens of ${nCtx}; raise --ctx)`);
    const logits = context.decodeFromEmpty();
    for (let i = i0; i < i1; i++) {
      const t = prepared[i];
      const start = starts[i - i0];
      const skipChoice = t.seqs[0].length - t.cp > MIN_TRAILING_CTX && t.seqs[1].length - t.cp > MIN_TRAILING_CTX;
      const scores: number[] = [];
      for (let s = 0; s < 2; s++) {
        const seq = t.seqs[s];
        const nBase = skipChoice ? t.nBase[s] : t.cp;
        const last = seq.length - nBase > 1 ? 1 : 0;
        // llama-perplexity's logit index for the second sequence (its FIXME: the first logits are
        // off by one when the choice is not skipped) is kept, so the scores are its scores
        let li = s === 0 ? nBase - t.cp : t.seqs[0].length - t.cp + nBase - t.cp;
        let score = 0;
        for (let j = nBase - 1; j < seq.length - 1 - last; j++) score = f(score + tokenLogprob(outputRow(logits, nVocab, start + li++), seq[j + 1]));
        scores.push(f(score / (seq.length - nBase - last)));
      }
      const result = scores[0] > scores[1] ? 1 : 2;
      if (result === tasks[i].answer) correct++;
      done++;
      lines.push(`${i + 1}\t${fixed((100.0 * correct) / done, 4)}\t${fixed(scores[0], 6, 10)}  ${fixed(scores[1], 6, 10)}  ${result}  ${tasks[i].answer}`);
    }
    i0 = i1 - 1;
  }
  const p = f(correct / done);
  const sigma = f(100 * f(Math.sqrt(f(f(p * f(1 - p)) / (done - 1)))));
  return { task: "winogrande", tasks: done, correct, accuracy: f(100 * p), error: sigma, lines };
}
