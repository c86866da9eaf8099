// The math llama-perplexity's task modes share, in its own precisions: compute_logprobs (float
// log-softmax of one token, expf summed in float), softmax (float terms, double sum), the Wilson
// interval of --hellaswag and the printf formats of the lines it prints.
import { VocabKernels } from "../vocab-math.js";

const f = Math.fround;

let kernels: VocabKernels | undefined;

/** expf of every value as libm computes it (the kernels' expf, tested against llama.cpp's). */
function expfRow(values: Float32Array): Float32Array {
  kernels ??= new VocabKernels();
  return kernels.expf(values);
}

function rowMax(row: Float32Array): number {
  let m = row[0];
  for (let j = 1; j < row.length; j++) if (row[j] > m) m = row[j];
  return m;
}

/** compute_logprobs for one (row, token): logits[tok] − max − log(Σ expf(logit − max)), all in float. */
export function tokenLogprob(row: Float32Array, tok: number): number {
  const max = rowMax(row);
  const shifted = new Float32Array(row.length);
  for (let j = 0; j < row.length; j++) shifted[j] = row[j] - max;
  const e = expfRow(shifted);
  let sum = 0;
  for (let j = 0; j < e.length; j++) sum = f(sum + e[j]);
  return f(f(row[tok] - max) - f(Math.log(sum)));
}

/** log(softmax(row)[tok]) as llama-perplexity's softmax() then std::log (float) give it. */
export function softmaxLogprob(row: Float32Array, tok: number): number {
  const max = rowMax(row);
  const shifted = new Float32Array(row.length);
  for (let j = 0; j < row.length; j++) shifted[j] = row[j] - max;
  const e = expfRow(shifted);
  let sum = 0;
  for (let j = 0; j < e.length; j++) sum += e[j];
  return f(Math.log(f(e[tok] / sum)));
}

/** The logits row `i` of a decode's outputs. */
export function outputRow(logits: Float32Array, nVocab: number, i: number): Float32Array {
  return logits.subarray(i * nVocab, (i + 1) * nVocab);
}

/** Wilson score interval at 95 % for `correct` of `n`, as --hellaswag prints it (fractions). */
export function wilsonInterval(correct: number, n: number): [number, number] {
  const freq = correct / n;
  const za = 1.95996398454;
  const z = (za * za) / n;
  const cnf = (z * Math.sqrt(n * (4.0 * freq * (1 - freq) + z))) / (za + za);
  return [(freq + z * 0.5 - cnf) / (1.0 + z), (freq + z * 0.5 + cnf) / (1.0 + z)];
}

/** printf("%W.Pf") for finite values. */
export function fixed(v: number, precision: number, width = 0): string {
  return v.toFixed(precision).padStart(width);
}

/** What a task mode reports for one model: the figures llama-perplexity prints. */
export interface TaskScore {
  task: "hellaswag" | "winogrande" | "multiple-choice";
  /** tasks scored */
  tasks: number;
  correct: number;
  /** percent */
  accuracy: number;
  /** ± percent: √(p(1−p)/(n−1)) for winogrande and multiple-choice (as llama-perplexity's final line) */
  error?: number;
  /** 95 % Wilson interval in percent (--hellaswag's figure) */
  interval?: [number, number];
  /** the per-task lines llama-perplexity prints, in its format */
  lines: string[];
}
