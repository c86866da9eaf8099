// LaCo (Yang et al. 2024, "LaCo: Large Language Model Pruning via Layer Collapse"), Algorithm 1:
// from the highest layer l = L_h down to the lowest L_l, merge the C layers l … l+C−1 into layer l
// (RDSC: θ_l + Σ_k (θ_{l+k} − θ_l), the surgery's `merge`), and keep the merge only while the
// merged model's representations stay close to the base's: the mean cosine similarity of the final
// hidden states on the calibration text above the threshold T. A kept merge moves l down by the
// interval I; a rejected one by 1. Merges stop once the next one would compress the stack beyond
// the maximum compression (layers removed / base layers).
import { offloadOf, type OffloadOptions } from "../runtime/index.js";
import { chunkInput, type ChunkPlan } from "../eval/chunks.js";
import { chunksPerDecode } from "../runtime/evaluator.js";
import { UserError } from "../errors.js";
import { HiddenStateModel } from "../runtime/embeddings.js";
import { isolationEnabled, runIsolated } from "../runtime/isolation.js";
import type { SurgeryOp } from "../surgery/index.js";
import { checkMergeCount, editLabel } from "./candidates.js";
import type { CandidateMeasurer, Measurement, MeasureFn } from "./measure.js";

export interface LacoParams {
  /** C: layers per merge */
  mergeCount: number;
  /** L_l: the lowest layer a merge may start at */
  lowest: number;
  /** L_h: the highest layer a merge may start at (the first tried) */
  highest: number;
  /** I: how far l moves down after a kept merge */
  interval: number;
  /** T: a merge is kept when the similarity is above this */
  threshold: number;
  /** at most this fraction of the base's layers removed (0 … 1) */
  maxCompression: number;
}

export interface LacoOptions extends LacoParams {
  nLayer: number;
  /** mean cosine similarity of the final hidden states, base vs the base with `surgery` */
  similarity: (surgery: SurgeryOp[]) => Promise<number>;
  /** KLD etc. of each kept merge (on the same text) */
  measure?: MeasureFn;
  onTrial?: (trial: LacoTrial) => void;
}

export interface LacoTrial {
  /** l: the merge's first layer in the stack at that point */
  layer: number;
  edit: SurgeryOp;
  label: string;
  similarity: number;
  accepted: boolean;
  /** layers after the merge */
  layers: number;
  /** set for a kept merge when `measure` was given */
  measurement?: Measurement;
}

export interface LacoResult {
  trials: LacoTrial[];
  /** the kept merges, in order */
  surgery: SurgeryOp[];
  layers: number;
  stopped: string;
}

export function checkLacoParams(p: LacoParams, nLayer: number): void {
  checkMergeCount(p.mergeCount);
  if (!Number.isInteger(p.lowest) || p.lowest < 0) throw new UserError(`--laco-lowest must be a layer index ≥ 0 (got ${p.lowest})`);
  if (!Number.isInteger(p.highest) || p.highest + p.mergeCount > nLayer) {
    throw new UserError(`--laco-highest ${p.highest}: a merge of ${p.mergeCount} layers from there needs layers up to ${p.highest + p.mergeCount - 1}; the model has ${nLayer}`);
  }
  if (p.highest < p.lowest) throw new UserError(`--laco-highest ${p.highest} is below --laco-lowest ${p.lowest}`);
  if (!Number.isInteger(p.interval) || p.interval < 1) throw new UserError(`--laco-interval must be a positive integer (got ${p.interval})`);
  if (!(p.threshold >= -1 && p.threshold <= 1)) throw new UserError(`--laco-threshold must be a cosine similarity between -1 and 1 (got ${p.threshold})`);
  if (!(p.maxCompression > 0 && p.maxCompression < 1)) throw new UserError(`--laco-max-compression must be a fraction between 0 and 1 (got ${p.maxCompression})`);
}

export async function lacoSearch(opts: LacoOptions): Promise<LacoResult> {
  checkLacoParams(opts, opts.nLayer);
  const C = opts.mergeCount;
  const minLayers = Math.ceil(opts.nLayer * (1 - opts.maxCompression) - 1e-9);
  const trials: LacoTrial[] = [];
  let surgery: SurgeryOp[] = [];
  let layers = opts.nLayer;
  let l = opts.highest;
  while (l >= opts.lowest) {
    if (layers - (C - 1) < minLayers) return { trials, surgery, layers, stopped: `another merge would compress beyond ${(100 * opts.maxCompression).toFixed(1)} %` };
    // layers above l shifted down by earlier merges: the merge must fit the stack as it stands
    const from = Math.min(l, layers - C);
    if (from < opts.lowest) break;
    const edit: SurgeryOp = { op: "merge", from, count: C };
    const trialSurgery = [...surgery, edit];
    const similarity = await opts.similarity(trialSurgery);
    const accepted = similarity > opts.threshold;
    const trial: LacoTrial = { layer: from, edit, label: editLabel(edit), similarity, accepted, layers: layers - (C - 1) };
    if (accepted) {
      surgery = trialSurgery;
      layers -= C - 1;
      if (opts.measure) trial.measurement = await opts.measure(surgery);
      l = from - opts.interval;
    } else {
      l = from - 1;
    }
    trials.push(trial);
    opts.onTrial?.(trial);
  }
  return { trials, surgery, layers, stopped: `l went below the lowest layer ${opts.lowest}` };
}

/** Mean of the per-token cosine similarities of two token-major hidden-state blocks. */
export function meanCosine(a: Float32Array, b: Float32Array, nEmbd: number): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let t = 0; t + nEmbd <= a.length; t += nEmbd) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = t; k < t + nEmbd; k++) {
      const x = a[k]!;
      const y = b[k]!;
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    sum += na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : na === nb ? 1 : 0;
    count++;
  }
  return { sum, count };
}

/** What a hidden-state run needs: the text's tokens and their chunking (the base evaluation's), threads, placement. */
export interface HiddenStateInput extends OffloadOptions {
  tokens: ArrayLike<number>;
  plan: ChunkPlan;
  threads: number;
}

/** The final hidden states of every chunk of `input` (one ctx·n_embd block per chunk), in this process. */
export function hiddenStatesInProcess(file: string | readonly string[], input: HiddenStateInput): { states: Float32Array[]; nEmbd: number } {
  const { plan, tokens } = input;
  const perDecode = chunksPerDecode(plan.ctx);
  const model = HiddenStateModel.open(file, { ctx: plan.ctx, nSeq: perDecode, threads: input.threads, ...offloadOf(input) });
  try {
    const states: Float32Array[] = [];
    for (let g = 0; g < plan.nChunk; g += perDecode) {
      const group: number[][] = [];
      for (let c = g; c < Math.min(plan.nChunk, g + perDecode); c++) group.push(chunkInput(tokens, plan, c, model.model.bos));
      states.push(...model.hiddenStates(group));
    }
    return { states, nEmbd: model.nEmbd };
  } finally {
    model.dispose();
  }
}

/**
 * hiddenStatesInProcess in the evaluation process (src/runtime/isolation.ts), so that a llama.cpp
 * abort is a one-line error naming the file; the states come back as Float32Arrays (plain data).
 * HQUANT_ISOLATION=0 runs it here.
 */
export async function hiddenStates(file: string | readonly string[], input: HiddenStateInput): Promise<{ states: Float32Array[]; nEmbd: number }> {
  if (!isolationEnabled()) return hiddenStatesInProcess(file, input);
  // only what the child needs: the tokens as one typed array, not the whole base evaluation
  const plain: HiddenStateInput = { ...offloadOf(input), tokens: Int32Array.from(input.tokens), plan: input.plan, threads: input.threads };
  return runIsolated({ module: "scan/laco.js", fn: "hiddenStatesInProcess", args: [file, plain] }, { file: typeof file === "string" ? file : file[0]! });
}

/**
 * LaCo's similarity on the measurer's text and chunks: every token of every chunk (the chunks the
 * KLD is taken on, BOS first), cosine of the final hidden states, averaged. The base's hidden
 * states are computed once and kept; results are cached with the measurements. llama.cpp runs in
 * the evaluation process (hiddenStates).
 */
export class HiddenStateSimilarity {
  private constructor(
    private readonly measurer: CandidateMeasurer,
    private readonly baseStates: Float32Array[],
    private readonly nEmbd: number,
  ) {}

  private static states(file: string | readonly string[], measurer: CandidateMeasurer): Promise<{ states: Float32Array[]; nEmbd: number }> {
    const { plan, tokens } = measurer.base;
    return hiddenStates(file, { ...offloadOf(measurer.opts), tokens, plan, threads: measurer.opts.threads });
  }

  static async open(measurer: CandidateMeasurer): Promise<HiddenStateSimilarity> {
    const { states, nEmbd } = await HiddenStateSimilarity.states(measurer.opts.base, measurer);
    return new HiddenStateSimilarity(measurer, states, nEmbd);
  }

  readonly similarity = async (surgery: SurgeryOp[]): Promise<number> => {
    const cached = this.measurer.cache.get<number>("cosine", surgery);
    if (cached !== undefined) return cached;
    const value = await this.measurer.withBuild(surgery, async (file) => {
      const { states, nEmbd } = await HiddenStateSimilarity.states(file, this.measurer);
      if (nEmbd !== this.nEmbd) throw new Error(`${file[0]}: hidden size ${nEmbd}, the base's is ${this.nEmbd}`);
      let sum = 0;
      let count = 0;
      states.forEach((s, i) => {
        const r = meanCosine(this.baseStates[i]!, s, nEmbd);
        sum += r.sum;
        count += r.count;
      });
      return sum / count;
    });
    this.measurer.cache.put("cosine", surgery, value);
    return value;
  };
}
