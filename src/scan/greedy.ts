// Greedy multi-step search: measure every candidate edit of the current stack, apply the least
// harmful (KLD against the base, then ΔPPL, then enumeration order), rescan from the edited stack,
// repeat. Stops after `maxSteps` edits, at `targetLayers`, or when no edit keeps the KLD under
// `maxKld`. The path's surgery is the chosen edits in order (each one's indices refer to the stack
// the edits before it left), so it is a schedule's `surgery` as is.
import { UserError } from "../errors.js";
import type { FileTypeName } from "../plan/ftypes.js";
import type { ScheduleFile } from "../plan/schedule.js";
import type { SurgeryOp } from "../surgery/index.js";
import { enumerateAll, type Candidate, type CandidateOptions, type SearchOp } from "./candidates.js";
import type { Measurement, MeasureFn } from "./measure.js";

export interface GreedyOptions extends CandidateOptions {
  nLayer: number;
  ops: readonly SearchOp[];
  measure: MeasureFn;
  /** at most this many edits (`--greedy K`) */
  maxSteps?: number;
  /** stop at this layer count (`--target-layers N`); only edits that move toward it are tried */
  targetLayers?: number;
  /** an edit is taken only while its KLD stays below this (`--max-kld X`) */
  maxKld?: number;
  /** before each candidate's measurement */
  onCandidate?: (step: number, index: number, total: number, candidate: Candidate) => void;
  /** after each step */
  onStep?: (step: GreedyStep) => void;
}

export interface GreedyStep {
  /** 1-based */
  step: number;
  edit: SurgeryOp;
  label: string;
  /** every edit so far, the base → this step */
  surgery: SurgeryOp[];
  measurement: Measurement;
  /** candidates measured at this step */
  candidates: number;
}

export interface GreedyResult {
  steps: GreedyStep[];
  surgery: SurgeryOp[];
  /** why the search ended */
  stopped: string;
}

/** Least harmful first; ties go to the earlier candidate. */
export function compareMeasurements(a: Measurement, ai: number, b: Measurement, bi: number): number {
  return a.kld - b.kld || a.dPpl - b.dPpl || ai - bi;
}

/** The candidates of one step: those that move toward the target layer count without passing it. */
export function stepCandidates(layers: number, opts: Pick<GreedyOptions, "ops" | "mergeCount" | "targetLayers">): Candidate[] {
  const all = enumerateAll(opts.ops, layers, opts);
  const target = opts.targetLayers;
  if (target === undefined) return all;
  return all.filter((c) => (target < layers ? c.layerDelta < 0 && layers + c.layerDelta >= target : c.layerDelta > 0 && layers + c.layerDelta <= target));
}

export async function greedySearch(opts: GreedyOptions): Promise<GreedyResult> {
  if (opts.maxSteps === undefined && opts.targetLayers === undefined) throw new UserError("a greedy search needs --greedy K or --target-layers N");
  if (opts.targetLayers !== undefined && opts.targetLayers === opts.nLayer) {
    throw new UserError(`--target-layers ${opts.targetLayers}: the model already has ${opts.nLayer} layers`);
  }
  const steps: GreedyStep[] = [];
  let surgery: SurgeryOp[] = [];
  let layers = opts.nLayer;
  for (;;) {
    if (opts.maxSteps !== undefined && steps.length >= opts.maxSteps) return { steps, surgery, stopped: `${opts.maxSteps} edit(s) made` };
    if (opts.targetLayers !== undefined && layers === opts.targetLayers) return { steps, surgery, stopped: `reached ${layers} layers` };
    const candidates = stepCandidates(layers, opts);
    if (candidates.length === 0) return { steps, surgery, stopped: `no edit of ${opts.ops.join("/")} fits a stack of ${layers} layers` };
    let best: { c: Candidate; m: Measurement; i: number } | undefined;
    for (const [i, c] of candidates.entries()) {
      opts.onCandidate?.(steps.length + 1, i, candidates.length, c);
      const m = await opts.measure([...surgery, c.op]);
      if (!best || compareMeasurements(m, i, best.m, best.i) < 0) best = { c, m, i };
    }
    if (opts.maxKld !== undefined && !(best!.m.kld < opts.maxKld)) {
      return { steps, surgery, stopped: `the best next edit (${best!.c.label}) costs KLD ${best!.m.kld.toFixed(6)} ≥ --max-kld ${opts.maxKld}` };
    }
    surgery = [...surgery, best!.c.op];
    layers = best!.m.layers;
    const step: GreedyStep = { step: steps.length + 1, edit: best!.c.op, label: best!.c.label, surgery, measurement: best!.m, candidates: candidates.length };
    steps.push(step);
    opts.onStep?.(step);
  }
}

/** The search's result as a schedule file (schemas/schedule.schema.json) for `hquant build --schedule`. */
export function surgerySchedule(surgery: SurgeryOp[], ftype: FileTypeName, name: string, description: string): ScheduleFile {
  return { name, description, ftype, surgery };
}

/** The path as a Markdown table: step, edit, layers, PPL, ΔPPL, KLD, same top %. */
export function greedyMarkdown(result: GreedyResult, base: { ppl: number; layers: number }): string {
  const lines = [
    "| step | edit | layers | PPL | ΔPPL | KLD | same top % |",
    "|---:|:---|---:|---:|---:|---:|---:|",
    `| 0 | (base) | ${base.layers} | ${base.ppl.toFixed(4)} | | | |`,
  ];
  for (const s of result.steps) {
    const m = s.measurement;
    const sign = m.dPpl < 0 ? "−" : "+";
    lines.push(`| ${s.step} | ${s.label} | ${m.layers} | ${m.ppl.toFixed(4)} ± ${m.pplErr.toFixed(4)} | ${sign}${Math.abs(m.dPpl).toFixed(4)} | ${m.kld.toFixed(6)} ± ${m.kldErr.toFixed(6)} | ${m.topTokenPct.toFixed(2)} |`);
  }
  lines.push("", `stopped: ${result.stopped}`);
  return `${lines.join("\n")}\n`;
}
