// `hquant tune` as a library: the schedule with the least predicted KLD at a size budget.
// The flow, one file per step:
//   candidates.ts  what each tensor may become (row-width fallbacks applied)
//   proxy.ts       importance-weighted reconstruction error per tensor × type (hquant's kernels)
//   measure.ts     ΔKLD per group × type on the calibration text (bench evaluator, disk cache)
//   sensitivity.ts measured scales × proxy errors → predicted ΔKLD per tensor × type
//   fit.ts         multiple-choice knapsack (allocate.ts) within the budget, header growth counted
//   verify.ts      build the candidates, check the size to the byte, measure, keep the best
//   report.ts      markdown and SVG charts
import { llamaRuntime, offloadOf, runtimeCacheDir, type LlamaRuntimeReport, type OffloadOptions } from "../runtime/index.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { evaluateAgainstBase, evaluateBase, type BaseEvaluation, type EvalOptions } from "../eval/isolated.js";
import { sha256File, sha256Text } from "../eval/base-cache.js";
import type { KldSummary } from "../eval/kld-math.js";
import { UserError } from "../errors.js";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import type { GGUFModel } from "../gguf/model.js";
import { openModel } from "../gguf/reader.js";
import { outputFileSize } from "../gguf/writer.js";
import { loadImatrix, readImatrixInfo, type Imatrix } from "../imatrix/index.js";
import { mixtureHParams } from "../plan/hparams.js";
import { outputMetadata, outputTensors, type ImatrixInfo } from "../plan/metadata.js";
import { OUTPUT_ALIGNMENT, planModel } from "../plan/planner.js";
import { uniformSchedule } from "../plan/schedule.js";
import type { FileTypeName } from "../plan/ftypes.js";
import { QuantizePool } from "../pool/index.js";
import { DEFAULT_CANDIDATE_TYPES, tuneSpace, unitTensors as unitTensorsOf, type TuneSpace } from "./candidates.js";
import { BUDGET_FORMS, mib, type BudgetLimit, type BudgetSpec } from "./budget.js";
import { measureDir, writeJsonAtomic } from "./cache.js";
import { allocate, limitBytes, limitMax, smallestAssignment, type Allocation } from "./fit.js";
import { cachedMeasurement, measurePoints, type MeasurePoint, type Measurement, type MeasureProgress } from "./measure.js";
import { cachedProxyErrors } from "./proxy.js";
import { checkPlanMatches, scheduleFile, sizeSchedule, type Assignment, type SizedSchedule } from "./schedule.js";
import { costTable, noiseCheck, spearman, type CostTable, type NoiseCheck, type Objective } from "./sensitivity.js";
import { shapeFallback } from "../plan/tensors.js";
import { buildSchedule } from "./verify.js";
import type { ScheduleFile } from "../plan/schedule.js";

export type TuneMethod = "measure" | "proxy";

/** Types each group is measured at (measure mode; proxy mode calibrates with the first). */
export const DEFAULT_MEASURE_TYPES: readonly GGMLType[] = [GGMLType.Q3_K];

export interface TuneProgress {
  stage: "proxy" | "base" | "measure" | "verify" | "evaluate";
  done: number;
  total: number;
  etaSeconds?: number;
  detail: string;
}

export interface TuneOptions extends OffloadOptions {
  base: string;
  /** calibration text: sensitivity is measured on it */
  text: string;
  textName: string;
  /** held-out text the final files are evaluated on (default: the calibration text, with a warning) */
  evalText?: string;
  evalTextName?: string;
  budgets: BudgetSpec[];
  imatrix?: string;
  /** candidate types (default: everything hquant quantizes) */
  types?: readonly GGMLType[];
  method?: TuneMethod;
  /** what is minimised: mean KLD (default), KLD p99, or the share of changed top tokens */
  objective?: Objective;
  measureTypes?: readonly GGMLType[];
  /** schedules, report and the tuned files go here */
  outDir: string;
  ctx: number;
  /** calibration chunks measured (default 12) */
  chunks?: number;
  /** evaluation chunks (default: the whole text) */
  evalChunks?: number;
  threads: number;
  cacheDir: string;
  /** build and measure the candidates (default true); false: plan only */
  verify?: boolean;
  /** keep the tuned GGUF files in outDir (default false: removed after evaluation) */
  keepFiles?: boolean;
  onProgress?: (p: TuneProgress) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  /** where temporary builds go, in folders removed on every exit path (default: the OS temp dir) */
  workDir?: string;
  /**
   * at most this many measurement points (evaluations; cached ones count too, so the schedule does
   * not depend on the cache): the kind factors of the middle layer first, then the groups outside
   * the layers, then the groups the proxy predicts most costly (where an unmeasured group's error
   * costs most), then the other kind points. Unmeasured groups use the kind-scaled proxy.
   */
  maxEvals?: number;
  /** rows sampled per tensor for the proxy's errors (default: every row) */
  proxyRows?: number;
  /** one-line notes: the number of evaluations before measuring, the ETA after the first */
  onInfo?: (message: string) => void;
}

export interface TunedCandidate {
  variant: string;
  predictedKld: number;
  fileBytes: number;
  bpw: number;
  /** measured on the calibration chunks (when verified) */
  calib?: KldSummary;
}

export interface TunedBudget {
  budget: BudgetSpec;
  limit: BudgetLimit;
  /** the chosen candidate */
  chosen: TunedCandidate;
  candidates: TunedCandidate[];
  schedule: ScheduleFile;
  scheduleFile: string;
  /** tensor name → type name */
  types: Record<string, string>;
  /** the tuned file (when kept) */
  gguf?: string;
  /** evaluated on the evaluation text */
  eval?: KldSummary;
  heldOut: boolean;
  /** measure mode: how many of the allocation's decisions rest on differences within the measurements' ± */
  noise?: NoiseCheck;
}

export interface TuneResult {
  /** where llama.cpp ran: build, -ngl, devices */
  runtime?: LlamaRuntimeReport;
  base: { file: string; bytes: number; elements: number; nLayer: number };
  method: TuneMethod;
  objective: Objective;
  text: string;
  evalText: string;
  ctx: number;
  chunks: number;
  imatrix?: string;
  types: string[];
  groups: string[];
  measurements: Measurement[];
  /** measurements made in this run (the rest came from the cache) */
  measuredNow: number;
  /** proxy (kind-scaled) vs measured ΔKLD over the measured points; NaN with fewer than 3 */
  proxySpearman: number;
  budgets: TunedBudget[];
  /** group → type → predicted ΔKLD of the whole group at that type (the sensitivity heatmap) */
  sensitivity: Record<string, Record<string, number>>;
  baseEval?: { ppl: number };
  seconds: { proxy: number; measure: number; allocate: number; verify: number; evaluate: number; total: number };
}

/** The size of llama-quantize's file of `ftype` for this model (its exact metadata, with the imatrix keys when one is used). */
export function fileTypeBytes(model: GGUFModel, ftype: FileTypeName, nLayer: number, imatrix: ImatrixInfo | undefined): number {
  const plan = planModel(model, uniformSchedule(ftype, nLayer, { imatrix: imatrix?.file }), "budget");
  const kv = outputMetadata(model.kv, plan, { imatrix, hquant: false });
  return outputFileSize(kv, outputTensors(plan), OUTPUT_ALIGNMENT);
}

/** A budget against the model, with the one-line errors for budgets that cannot be met or need no tuning. */
export function resolveBudget(
  spec: BudgetSpec,
  model: GGUFModel,
  space: TuneSpace,
  nLayer: number,
  imatrix: ImatrixInfo | undefined,
  smallest: SizedSchedule,
  where = "--budget",
  /** what wider candidates would reach: the hint of the below-the-minimum error */
  wider?: { what: string; smallest: SizedSchedule },
): BudgetLimit {
  const f16Bytes = fileTypeBytes(model, "F16", nLayer, undefined);
  const f16Plan = planModel(model, uniformSchedule("F16", nLayer), "budget");
  let limit: BudgetLimit;
  if (spec.kind === "bpw") {
    limit = { kind: "bpw", bpw: spec.bpw, maxTensorBytes: Math.floor((spec.bpw * space.elements) / 8), label: `${spec.bpw} bpw` };
  } else {
    const bytes = spec.kind === "bytes" ? spec.bytes : fileTypeBytes(model, spec.ftype, nLayer, imatrix);
    limit = { kind: "file", maxFileBytes: bytes, label: spec.kind === "ftype" ? `${spec.ftype} (${bytes} bytes, ${mib(bytes)})` : `${bytes} bytes (${mib(bytes)})` };
  }
  const bpwOf = (tensorBytes: number) => ((tensorBytes * 8) / space.elements).toFixed(4);
  const min = limitBytes(limit, smallest);
  if (limitMax(limit) < min) {
    const sizeOf = (n: number) => (limit.kind === "file" ? `${n} bytes (${mib(n)})` : `${bpwOf(n)} bpw`);
    const lower = wider && limitBytes(limit, wider.smallest) < min ? `; ${wider.what} reach ${sizeOf(limitBytes(limit, wider.smallest))}` : "";
    throw new UserError(`${where} ${spec.text}: below the smallest file these types can make of this model, ${sizeOf(min)}${lower}`);
  }
  const f16 = limit.kind === "file" ? f16Bytes : f16Plan.tensorBytes;
  if (limitMax(limit) > f16) {
    const what = limit.kind === "file" ? `${f16} bytes (${mib(f16)})` : `${bpwOf(f16)} bpw`;
    throw new UserError(`${where} ${spec.text}: above the F16 file of this model, ${what}; nothing to tune`);
  }
  return limit;
}

/** The imatrix path a schedule in `dir` records (relative to itself) and the build then records in the file. */
function imatrixAsBuilt(dir: string, imatrix: string): { inSchedule: string; inFile: string } {
  const inSchedule = path.relative(dir, path.resolve(imatrix)) || path.basename(imatrix);
  return { inSchedule, inFile: path.join(dir, inSchedule) };
}

const safeLabel = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "_");

/**
 * The points measured first under --max-evals: the middle layer's kind points, the groups outside
 * the layers, then the edge layers' groups (proxyEdgeLayers: the kind-scaled proxy predicts the first
 * layers' ΔKLD 5–28× too low, so a cap that left them to it starved them — measured, README).
 */
function priorityPoints(points: readonly MeasurePoint[], space: TuneSpace, nLayer: number): MeasurePoint[] {
  const mid = `blk.${Math.floor(nLayer / 2)}.`;
  const isKind = (p: MeasurePoint) => !space.groups.includes(p.group);
  const inEdgeLayer = edgeLayerGroup(nLayer);
  return [
    ...points.filter((p) => isKind(p) && p.group.startsWith(mid)),
    ...points.filter((p) => !isKind(p) && !/^blk\.\d+\./.test(p.group)),
    ...points.filter((p) => !isKind(p) && inEdgeLayer(p.group)),
  ];
}

/**
 * The layers whose groups proxy mode measures as well: the first two and the last. A tensor's
 * reconstruction error does not see how the first layers shape the residual stream (on the bundled
 * model the kind-scaled proxy predicts blk.0's and blk.1's ΔKLD 5–28× too low, the other layers'
 * within ~2×), which is also why llama.cpp's own mixtures give the first and last layers more bits.
 */
export function proxyEdgeLayers(nLayer: number): number[] {
  return [...new Set([0, 1, nLayer - 1])].filter((l) => l >= 0 && l < nLayer);
}

/** Whether a group (or tensor) name lies in one of the edge layers. */
function edgeLayerGroup(nLayer: number): (group: string) => boolean {
  const prefixes = proxyEdgeLayers(nLayer).map((l) => `blk.${l}.`);
  return (group) => prefixes.some((e) => group.startsWith(e));
}

/**
 * The measurement points. Per tensor kind, each of the kind's tensors alone in a few layers (first,
 * middle, last): the kind factors. In measure mode also every group at every measured type; in
 * proxy mode the groups outside the layers and those of the edge layers (proxyEdgeLayers).
 */
export function measurementPlan(space: TuneSpace, method: TuneMethod, measureTypes: readonly GGMLType[], nLayer: number): MeasurePoint[] {
  const sampled = [...new Set(method === "measure" ? [0, Math.floor(nLayer / 2), nLayer - 1] : [Math.floor(nLayer / 2)])];
  const kindPoints = space.tensors
    .filter((t) => t.layer >= 0 && sampled.includes(t.layer))
    .map((t) => ({ group: t.name.replace(/\.weight$/, ""), type: measureTypes[0]! }));
  const outside = space.groups.filter((g) => !/^blk\.\d+\./.test(g));
  const edgeGroups = space.groups.filter(edgeLayerGroup(nLayer));
  const groups = method === "measure" ? space.groups : [...outside, ...edgeGroups];
  return [...groups.flatMap((group) => measureTypes.map((type) => ({ group, type }))), ...kindPoints].filter((p) => measurable(space, p));
}

/**
 * Calibration chunks a measurement evaluates when --chunks is not given, per method. Proxy mode's
 * one: on the bundled model one chunk per measurement tuned as well as 4 and 12 at three budgets
 * (README, "How tune scales"), and a measurement of a 70B on a CPU costs a minute per chunk.
 */
export const DEFAULT_TUNE_CHUNKS = { measure: 12, proxy: 1 } as const;

/**
 * Whether every tensor of the point's group can take its type (after the row-width fallback): a
 * type llama.cpp cannot make for a tensor (iq2_xxs for one the imatrix has no entry for) is not one of
 * its candidates, so measuring it there would fail and would tell the allocation nothing.
 */
function measurable(space: TuneSpace, p: MeasurePoint): boolean {
  return unitTensorsOf(space, p.group).every((t) => t.options.some((o) => o.type === shapeFallback(t.shape[0]!, p.type).type));
}

export async function tune(opts: TuneOptions): Promise<TuneResult> {
  // the build is loaded (or refused) before any work; GPU measurements are cached apart from CPU ones
  const runtime = llamaRuntime(offloadOf(opts));
  opts = { ...opts, cacheDir: runtimeCacheDir(opts.cacheDir, runtime) };
  const t0 = performance.now();
  const method = opts.method ?? "measure";
  const objective = opts.objective ?? "mean";
  const measureTypes = opts.measureTypes ?? DEFAULT_MEASURE_TYPES;
  const progress = opts.onProgress ?? (() => undefined);
  const warn = opts.onWarning ?? (() => undefined);
  const chunks = opts.chunks ?? DEFAULT_TUNE_CHUNKS[method];
  if (opts.budgets.length === 0) throw new UserError(`--budget: required; give ${BUDGET_FORMS}`);

  const model = await openModel(opts.base);
  const nLayer = mixtureHParams(model.kv, opts.base).nLayer;
  const imatrix: Imatrix | undefined = opts.imatrix !== undefined ? await loadImatrix(opts.imatrix) : undefined;
  const space = tuneSpace(model, opts.types ?? DEFAULT_CANDIDATE_TYPES, imatrix);
  const imatrixPaths = opts.imatrix !== undefined ? imatrixAsBuilt(opts.outDir, opts.imatrix) : undefined;
  const imatrixGiven = opts.imatrix !== undefined ? await readImatrixInfo(opts.imatrix) : undefined;
  // the tuned file records the imatrix path its schedule leads the build to; a file type budget is
  // the file llama-quantize writes with the path as given
  const imatrixInfo = imatrixGiven && { ...imatrixGiven, file: imatrixPaths!.inFile };

  const schedulePath = (label: string) => path.join(opts.outDir, `${label}.schedule.json`);
  const describe = (b: BudgetSpec) =>
    `hquant tune: budget ${b.text}, method ${method}${objective !== "mean" ? `, objective ${objective}` : ""}, calibration ${opts.textName} (${chunks} chunks of ${opts.ctx})` +
    `, evaluation ${opts.evalTextName ?? opts.textName}${opts.imatrix !== undefined ? `, imatrix ${path.basename(opts.imatrix)}` : ""}`;
  const sizer = (b: BudgetSpec) => (a: Assignment) => {
    const file = scheduleFile(space, a, { name: `tune-${b.text}`, description: describe(b), imatrix: imatrixPaths?.inSchedule });
    return sizeSchedule(model, file, imatrixInfo, schedulePath(safeLabel(`tune-${b.text}`)));
  };
  // every budget is checked before any slow work
  // the hint for a budget below the minimum: what the default types (with an imatrix) would reach
  const types = opts.types ?? DEFAULT_CANDIDATE_TYPES;
  const widerTypes = [...new Set([...types, ...DEFAULT_CANDIDATE_TYPES])];
  const wider = tuneSpace(model, widerTypes, imatrix ?? "every tensor");
  const widerWhat = imatrix ? "the default --types" : opts.types ? "the default --types with an --imatrix" : "the low-bit --types (iq1_s … iq3_xxs) with an --imatrix";
  const limits = opts.budgets.map((b) =>
    resolveBudget(b, model, space, nLayer, imatrixGiven, sizer(b)(smallestAssignment(space)), opts.budgets.length > 1 ? "--budgets" : "--budget", {
      what: widerWhat,
      smallest: sizer(b)(smallestAssignment(wider)),
    }),
  );
  fs.mkdirSync(opts.outDir, { recursive: true });

  // proxy errors (cached per model × imatrix × candidates)
  const tProxy = performance.now();
  const proxyPool = new QuantizePool(opts.threads);
  const modelSha256 = await sha256File(opts.base);
  const imatrixSha256 = opts.imatrix !== undefined ? await sha256File(opts.imatrix) : "none";
  const typesKey = space.tensors[0]!.options.map((o) => typeName(o.type)).join(",") + `:${(opts.types ?? DEFAULT_CANDIDATE_TYPES).map(typeName).join(",")}`;
  // sampled rows are another proxy (the key of every-row errors is as before)
  const rowsKey = opts.proxyRows !== undefined ? `\nrows ${opts.proxyRows}` : "";
  const proxyFile = path.join(opts.cacheDir, `tune-proxy-${sha256Text(`${modelSha256}\n${imatrixSha256}\n${typesKey}${rowsKey}`).slice(0, 32)}.json`);
  const { errors } = await cachedProxyErrors(proxyFile, model, space, imatrix, (done, total, name) => progress({ stage: "proxy", done, total, detail: name }), {
    rows: opts.proxyRows,
    pool: proxyPool,
  }).finally(() => proxyPool.destroy());
  const proxySeconds = (performance.now() - tProxy) / 1000;

  // base distributions on the calibration text, then the measurements
  const tMeasure = performance.now();
  const evalOpts: EvalOptions = { ctx: opts.ctx, chunks, threads: opts.threads, cacheDir: opts.cacheDir, ...offloadOf(opts) };
  progress({ stage: "base", done: 0, total: 1, detail: opts.textName });
  const baseEval = await evaluateBase(opts.base, opts.text, opts.textName, evalOpts);
  const restType = model.tensors.find((t) => space.tensors.some((s) => s.name === t.name))!.type;
  const allPoints = measurementPlan(space, method, measureTypes, nLayer);
  const dir = measureDir(opts.cacheDir, { modelSha256, textSha256: sha256Text(opts.text), ctx: opts.ctx, chunks: baseEval.plan.nChunk, imatrixSha256 });
  const cap = opts.maxEvals ?? Infinity;
  const keyOf = (p: MeasurePoint) => `${p.group}@${p.type}`;
  const first = allPoints.length > cap ? priorityPoints(allPoints, space, nLayer).slice(0, cap) : allPoints;
  const info = opts.onInfo ?? (() => undefined);
  const uncached = (ps: readonly MeasurePoint[]) => ps.filter((p) => !cachedMeasurement(dir, p)).length;
  info(
    `${Math.min(cap, allPoints.length)} measurement points${allPoints.length > cap ? ` of ${allPoints.length} (--max-evals ${cap})` : ""}: ` +
      `${allPoints.length > cap ? `at most ${Math.min(cap, allPoints.length)}` : uncached(allPoints)} evaluations of ${chunks} chunks of ${opts.ctx} to make, the rest cached`,
  );
  let etaShown = false;
  const measureOpts = {
    ...evalOpts,
    base: opts.base,
    baseEval,
    dir,
    imatrix: opts.imatrix,
    nLayer,
    restType,
    signal: opts.signal,
    workDir: opts.workDir,
    onMeasure: (p: MeasureProgress) => {
      if (!etaShown && Number.isFinite(p.etaSeconds) && p.etaSeconds > 0) {
        etaShown = true;
        info(`first evaluation done: about ${formatSeconds(p.etaSeconds)} left for the ${p.total - p.done} measurements to go`);
      }
      progress({ stage: "measure", done: p.done, total: p.total, etaSeconds: p.etaSeconds, detail: `${p.point.group} ${typeName(p.point.type)}` });
    },
  };
  const { measurements, measured } = await measurePoints(space, first, {
    ...measureOpts,
    then: (ms) => {
      if (first === allPoints) return [];
      // the rest of the cap: groups by the kind-scaled proxy's predicted ΔKLD, largest first, then the other kind points
      const kinds = costTable(space, errors, ms, "kind");
      const predicted = (p: MeasurePoint) =>
        unitTensorsOf(space, p.group).reduce((a, t) => a + (kinds.get(t.name)!.get(shapeFallback(t.shape[0]!, p.type).type) ?? 0), 0);
      const taken = new Set(first.map(keyOf));
      const rest = allPoints.filter((p) => !taken.has(keyOf(p)));
      const groups = rest.filter((p) => space.groups.includes(p.group)).sort((a, b) => predicted(b) - predicted(a));
      return [...groups, ...rest.filter((p) => !space.groups.includes(p.group))].slice(0, cap - first.length);
    },
  });
  const measureSeconds = (performance.now() - tMeasure) / 1000;

  // sensitivity models: the candidates verification chooses among
  const tAlloc = performance.now();
  const variants: [string, CostTable][] =
    method === "measure"
      ? [
          ["measured", costTable(space, errors, measurements, "group", objective)],
          ["proxy × kind", costTable(space, errors, measurements, "kind", objective)],
        ]
      : [
          // the measured groups (edge layers, outside the layers) at their measurements, the rest kind-scaled
          ["proxy × measured edges", costTable(space, errors, measurements, "group", objective)],
          ["proxy × kind", costTable(space, errors, measurements, "kind", objective)],
        ];
  const kindTable = costTable(space, errors, measurements, "kind");
  const proxySpearman = proxyCorrelation(space, kindTable, measurements);

  const allocations = opts.budgets.map((b, k) => {
    const seen = new Map<string, { variant: string; alloc: Allocation }>();
    for (const [variant, costs] of variants) {
      const alloc = allocate(space, costs, limits[k]!, sizer(b));
      if (!alloc) throw new UserError(`--budget ${b.text}: no schedule fits (the header alone needs more)`);
      checkPlanMatches(space, alloc.assignment, alloc.sized.plan);
      const key = [...alloc.assignment.values()].join(",");
      if (!seen.has(key)) seen.set(key, { variant, alloc });
    }
    return [...seen.values()];
  });
  const allocateSeconds = (performance.now() - tAlloc) / 1000;

  // verification: build every candidate from its written schedule, size checked, measured on calibration
  const tVerify = performance.now();
  const verify = opts.verify ?? true;
  const pool = verify ? new QuantizePool(opts.threads) : undefined;
  const budgets: TunedBudget[] = [];
  const toEvaluate: { index: number; gguf: string }[] = [];
  const tmpDir = fs.mkdtempSync(path.join(opts.workDir ?? os.tmpdir(), "hquant-tune-verify-"));
  try {
    for (const [k, b] of opts.budgets.entries()) {
      const label = safeLabel(`tune-${b.text}`);
      const candidates: (TunedCandidate & { alloc: Allocation; gguf?: string })[] = allocations[k]!.map(({ variant, alloc }) => ({
        variant,
        alloc,
        predictedKld: alloc.predictedKld,
        fileBytes: alloc.sized.fileBytes,
        bpw: (alloc.sized.plan.tensorBytes * 8) / alloc.sized.plan.elements,
      }));
      if (verify) {
        for (const [c, cand] of candidates.entries()) {
          if (opts.signal?.aborted) throw new UserError("interrupted");
          progress({ stage: "verify", done: c, total: candidates.length, detail: `${b.text}: ${cand.variant}` });
          // the schedule is built from where it will be written, so its imatrix path (and size) is the final one
          const built = await buildSchedule(opts.base, cand.alloc.sized.file, schedulePath(label), path.join(tmpDir, `${label}.${c}.gguf`), nLayer, pool!, cand.fileBytes);
          cand.gguf = built.gguf;
          cand.calib = await evaluateAgainstBase(baseEval, built.gguf, evalOpts);
        }
      }
      const score = (c: (typeof candidates)[number]) => (objective === "p99" ? c.calib!.kld99 : objective === "top" ? -c.calib!.topTokenPct : c.calib!.kld);
      const chosen = verify ? [...candidates].sort((x, y) => score(x) - score(y))[0]! : candidates[0]!;
      const noise = method === "measure" ? noiseCheck(space, measurements, chosen.alloc.assignment) : undefined;
      if (noise && noise.decisive > 0 && noise.withinNoise * 3 > noise.decisive) {
        warn(
          `--budget ${b.text}: ${noise.withinNoise} of the allocation's ${noise.decisive} group comparisons rest on ΔKLD differences smaller than the measurements' ± (median ±${(100 * noise.medianRelativeErr).toFixed(0)} %); more --chunks make them firmer`,
        );
      }
      // the chosen schedule is the one left on disk
      writeJsonAtomic(schedulePath(label), chosen.alloc.sized.file);
      let gguf: string | undefined;
      if (chosen.gguf) {
        gguf = path.join(opts.outDir, `${label}.gguf`);
        fs.renameSync(chosen.gguf, gguf);
        toEvaluate.push({ index: k, gguf });
      }
      for (const c of candidates) if (c.gguf && c !== chosen) fs.rmSync(c.gguf, { force: true });
      const strip = ({ alloc: _a, gguf: _g, ...rest }: (typeof candidates)[number]): TunedCandidate => rest;
      budgets.push({
        budget: b,
        limit: limits[k]!,
        chosen: strip(chosen),
        candidates: candidates.map(strip),
        schedule: chosen.alloc.sized.file,
        scheduleFile: schedulePath(label),
        types: Object.fromEntries([...chosen.alloc.assignment].map(([n, t]) => [n, typeName(t)])),
        gguf,
        heldOut: opts.evalText !== undefined,
        noise,
      });
    }
  } finally {
    await pool?.destroy();
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
  const verifySeconds = (performance.now() - tVerify) / 1000;

  // evaluation on the held-out text (or the calibration text, said so)
  const tEval = performance.now();
  let evalBase: BaseEvaluation | undefined;
  if (toEvaluate.length > 0) {
    if (opts.evalText === undefined) warn(`no --eval-text: the tuned files are evaluated on the calibration text ${opts.textName}, which is not held out`);
    const text = opts.evalText ?? opts.text;
    const name = opts.evalTextName ?? opts.textName;
    const eOpts: EvalOptions = { ctx: opts.ctx, chunks: opts.evalChunks, threads: opts.threads, cacheDir: opts.cacheDir, ...offloadOf(opts) };
    progress({ stage: "evaluate", done: 0, total: toEvaluate.length, detail: `${name} (base)` });
    evalBase = await evaluateBase(opts.base, text, name, eOpts);
    for (const [n, e] of toEvaluate.entries()) {
      progress({ stage: "evaluate", done: n, total: toEvaluate.length, detail: path.basename(e.gguf) });
      budgets[e.index]!.eval = await evaluateAgainstBase(evalBase, e.gguf, eOpts);
      if (!opts.keepFiles) {
        fs.rmSync(e.gguf, { force: true });
        budgets[e.index]!.gguf = undefined;
      }
    }
  }
  const evaluateSeconds = (performance.now() - tEval) / 1000;

  const sensitivity: Record<string, Record<string, number>> = {};
  const table = variants[0]![1];
  for (const g of space.groups) {
    const row: Record<string, number> = {};
    for (const type of opts.types ?? DEFAULT_CANDIDATE_TYPES) {
      let sum = 0;
      for (const t of space.tensors) if (t.group === g) sum += table.get(t.name)!.get(shapeFallback(t.shape[0]!, type).type) ?? 0;
      row[typeName(type)] = sum;
    }
    sensitivity[g] = row;
  }
  return {
    base: { file: opts.base, bytes: fs.statSync(opts.base).size, elements: space.elements, nLayer },
    method,
    objective,
    text: opts.textName,
    evalText: opts.evalTextName ?? opts.textName,
    ctx: opts.ctx,
    chunks: baseEval.plan.nChunk,
    imatrix: opts.imatrix,
    types: (opts.types ?? DEFAULT_CANDIDATE_TYPES).map(typeName),
    groups: space.groups,
    measurements,
    measuredNow: measured,
    proxySpearman,
    budgets,
    sensitivity,
    baseEval: evalBase ? { ppl: evalBase.ppl } : undefined,
    seconds: {
      proxy: proxySeconds,
      measure: measureSeconds,
      allocate: allocateSeconds,
      verify: verifySeconds,
      evaluate: evaluateSeconds,
      total: (performance.now() - t0) / 1000,
    },
    runtime,
  };
}

/** 45 s, 12 min, 3.4 h */
function formatSeconds(s: number): string {
  return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

/** Spearman correlation of the kind-scaled proxy's group ΔKLD with the measured ΔKLD. */
function proxyCorrelation(space: TuneSpace, kindTable: CostTable, ms: Measurement[]): number {
  ms = ms.filter((m) => space.groups.includes(m.group));
  if (ms.length < 3) return NaN;
  const predicted = ms.map((m) => {
    let sum = 0;
    for (const t of space.tensors) if (t.group === m.group) {
      sum += kindTable.get(t.name)!.get(shapeFallback(t.shape[0]!, m.type).type) ?? 0;
    }
    return sum;
  });
  return spearman(predicted, ms.map((m) => m.kld));
}
