// The batching llama-perplexity's --hellaswag and --multiple-choice share: as many tasks per
// llama_decode as fit in n_ctx and in the context's sequences; each task's common prefix once, in
// the sequences of all its answers, with logits at its last token; then every answer's own tokens
// in its sequence, with logits at all but the last.
import { UserError } from "../../errors.js";
import type { BatchContext } from "../../runtime/batch.js";
import { outputRow, softmaxLogprob, tokenLogprob } from "./score.js";

export interface PrefixTask {
  /** tokens of question + answer, one array per answer */
  seqs: number[][];
  commonPrefix: number;
  requiredTokens: number;
}

/** Tokens shared by every sequence from the start (llama-perplexity's common_prefix). */
export function commonPrefix(seqs: number[][]): number {
  const min = Math.min(...seqs.map((s) => s.length));
  let k = 0;
  while (k < min && seqs.every((s) => s[k] === seqs[0][k])) k++;
  return k;
}

export function prefixTask(seqs: number[][]): PrefixTask {
  const cp = commonPrefix(seqs);
  return { seqs, commonPrefix: cp, requiredTokens: cp + seqs.reduce((n, s) => n + s.length - cp, 0) };
}

/** Per answer: log p of its first own token (softmax of the prefix's last logits) and of each later one. */
export interface AnswerLogprobs {
  first: number;
  rest: number[];
}

/**
 * Decodes the tasks in llama-perplexity's batches and calls `scored(i, answers)` for each task in
 * order. `fixedSeqs`: --hellaswag reserves 4 sequences per task (s0 = 4·k); --multiple-choice packs
 * answers back to back (s0 += answers).
 */
export function scoreSharedPrefix(
  context: BatchContext,
  tasks: PrefixTask[],
  maxSeq: number,
  fixedSeqs: number | undefined,
  what: (i: number) => string,
  scored: (i: number, answers: AnswerLogprobs[]) => void,
): void {
  const nCtx = context.nCtx;
  const nVocab = context.model.nVocab;
  for (const [i, t] of tasks.entries()) {
    if (t.commonPrefix === 0 || t.seqs.some((s) => s.length <= t.commonPrefix)) throw new UserError(`${what(i)}: its answers do not differ after a common start (nothing to score)`);
  }
  for (let i0 = 0; i0 < tasks.length; i0++) {
    let nCur = 0;
    let i1 = i0;
    let iLogits = 0;
    let s0 = 0;
    const starts: number[] = [];
    context.clear();
    while (nCur + tasks[i1].requiredTokens <= nCtx) {
      const t = tasks[i1];
      const nAnswers = t.seqs.length;
      if (fixedSeqs !== undefined) s0 = fixedSeqs * (i1 - i0);
      if (s0 + nAnswers > maxSeq) {
        if (i1 === i0) throw new UserError(`${what(i1)}: ${nAnswers} answers, more than the ${maxSeq} sequences llama-perplexity decodes together`);
        break;
      }
      const ids = Array.from({ length: nAnswers }, (_, s) => s0 + s);
      let nLogits = 0;
      for (let k = 0; k < t.commonPrefix; k++) context.add(t.seqs[0][k], k, ids, false);
      context.setLastLogits();
      nLogits += 1;
      for (let s = 0; s < nAnswers; s++) {
        const seq = t.seqs[s];
        for (let k = t.commonPrefix; k < seq.length; k++) {
          const needs = k < seq.length - 1;
          context.add(seq[k], k, [s0 + s], needs);
          if (needs) nLogits++;
        }
      }
      if (fixedSeqs === undefined) s0 += nAnswers;
      starts.push(iLogits);
      iLogits += nLogits;
      nCur += t.requiredTokens;
      if (++i1 === tasks.length) break;
    }
    if (i0 === i1) throw new UserError(`${what(i0)}: does not fit in the context window (needs ${tasks[i0].requiredTokens} tokens of ${nCtx}; raise --ctx)`);
    const logits = context.decodeFromEmpty();
    for (let i = i0; i < i1; i++) {
      const t = tasks[i];
      const start = starts[i - i0];
      const first = outputRow(logits, nVocab, start);
      let li = 1;
      const answers = t.seqs.map((seq) => {
        const rest: number[] = [];
        for (let j = t.commonPrefix; j < seq.length - 1; j++) rest.push(tokenLogprob(outputRow(logits, nVocab, start + li++), seq[j + 1]));
        return { first: softmaxLogprob(first, seq[t.commonPrefix]), rest };
      });
      scored(i, answers);
    }
    i0 = i1 - 1;
  }
}
