// `hquant scan`: the layer-importance scan model-card authors do by hand. For every layer, build
// the single-layer edit (delete layer i, or duplicate layer i after itself) into a temporary file,
// evaluate it against the base model with the bench evaluator (PPL, KL-divergence, same top
// token), and rank the layers by the harm the edit does (KLD; ΔPPL breaks ties).
import { llamaRuntime, offloadOf, runtimeCacheDir, type LlamaRuntimeReport } from "../runtime/index.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildModel } from "../build/index.js";
import { evaluateAgainstBase, evaluateBase, type EvalOptions } from "../eval/isolated.js";
import { openModel } from "../gguf/reader.js";
import { mixtureHParams } from "../plan/hparams.js";
import { resolveSchedule } from "../plan/schedule.js";
import { QuantizePool } from "../pool/index.js";
import type { SurgeryOp } from "../surgery/index.js";

export type ScanOp = "delete" | "duplicate";
export const SCAN_OPS: readonly ScanOp[] = ["delete", "duplicate"];

/** The single-layer edit a scan row measures. */
export function scanEdit(op: ScanOp, layer: number): SurgeryOp[] {
  return op === "delete" ? [{ op: "delete", layers: [layer] }] : [{ op: "duplicate", layer, after: layer }];
}

export interface ScanRow {
  /** the edited layer (input numbering) */
  layer: number;
  ppl: number;
  pplErr: number;
  /** ppl − the base's ppl */
  dPpl: number;
  kld: number;
  kldErr: number;
  /** % of positions where the edited model's top token is the base's */
  topTokenPct: number;
  /** bytes of the built file */
  bytes: number;
}

export interface ScanReport {
  /** where llama.cpp ran: build, -ngl, devices */
  runtime?: LlamaRuntimeReport;
  base: { file: string; ppl: number; pplErr: number; layers: number };
  op: ScanOp;
  /** file type the edits were built in */
  ftype: string;
  text: string;
  ctx: number;
  chunks: number;
  positions: number;
  /** least harmful first; all layers, or the best `top` */
  rows: ScanRow[];
  /** the un-edited model built in `ftype` (only when that is not the base's own precision) */
  reference?: Omit<ScanRow, "layer">;
}

export interface ScanOptions extends EvalOptions {
  base: string;
  text: string;
  textName: string;
  op: ScanOp;
  /** file type of the edited builds (default F16) */
  ftype?: string;
  /** keep the best K rows */
  top?: number;
  /** where the temporary builds go (default: a fresh folder under the OS temp dir, removed after) */
  workDir?: string;
  /** called before each layer's build */
  onLayer?: (layer: number, nLayer: number) => void;
  onWarning?: (message: string) => void;
}

/** Least harmful first: KLD, then ΔPPL, then the layer index. */
export function compareHarm(a: ScanRow, b: ScanRow): number {
  return a.kld - b.kld || a.dPpl - b.dPpl || a.layer - b.layer;
}

/** The rows least harmful first, the best `top` of them when given. */
export function rankRows(rows: readonly ScanRow[], top?: number): ScanRow[] {
  const ranked = [...rows].sort(compareHarm);
  return top !== undefined ? ranked.slice(0, top) : ranked;
}

export const SCAN_WORK_DIR_PREFIX = "hquant-scan-";

/** Scan folders (`hquant-scan-<pid>-XXXXXX` in the OS temp dir) whose process is gone: a SIGKILLed scan's. */
export function removeStaleScanFolders(tmpRoot = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(tmpRoot);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = new RegExp(`^${SCAN_WORK_DIR_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // still running
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EPERM") continue;
    }
    try {
      fs.rmSync(path.join(tmpRoot, name), { recursive: true, force: true });
      removed.push(path.join(tmpRoot, name));
    } catch {
      // someone else's: leave it
    }
  }
  return removed;
}

export async function runScan(opts: ScanOptions): Promise<ScanReport> {
  const runtime = llamaRuntime(offloadOf(opts));
  opts = { ...opts, cacheDir: runtimeCacheDir(opts.cacheDir, runtime) };
  const nLayer = mixtureHParams((await openModel(opts.base)).kv, opts.base).nLayer;
  const ftype = opts.ftype ?? "F16";
  // checked before the (slow) base evaluation: the schedule must resolve for layer 0's edit
  resolveSchedule({ ftype, surgery: scanEdit(opts.op, 0) }, nLayer, "--ftype");
  const base = await evaluateBase(opts.base, opts.text, opts.textName, opts);
  opts.signal?.throwIfAborted();
  if (opts.workDir === undefined) for (const d of removeStaleScanFolders()) opts.onWarning?.(`removed ${d}, left by an interrupted scan`);
  // the pid in the name lets a later scan remove the folder when this process is killed outright
  const workDir = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `${SCAN_WORK_DIR_PREFIX}${process.pid}-`));
  const ownWorkDir = opts.workDir === undefined;
  const pool = new QuantizePool(opts.threads);

  async function measure(surgery: SurgeryOp[], name: string): Promise<Omit<ScanRow, "layer">> {
    const file = path.join(workDir, `${path.basename(opts.base, ".gguf")}-${name}.gguf`);
    try {
      const built = await buildModel({
        input: opts.base,
        output: file,
        pool,
        hquant: false,
        signal: opts.signal,
        schedule: resolveSchedule({ ftype, surgery }, nLayer, "scan", name),
      });
      const r = await evaluateAgainstBase(base, file, opts);
      return { ppl: r.ppl, pplErr: r.pplErr, dPpl: r.ppl - base.ppl, kld: r.kld, kldErr: r.kldErr, topTokenPct: r.topTokenPct, bytes: built.fileSize };
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  try {
    const rows: ScanRow[] = [];
    for (let layer = 0; layer < nLayer; layer++) {
      opts.signal?.throwIfAborted();
      opts.onLayer?.(layer, nLayer);
      rows.push({ layer, ...(await measure(scanEdit(opts.op, layer), `${opts.op}-${layer}`)) });
    }
    // a quantized scan also measures the plain quantized model, so the edits' own cost shows
    const reference = ftype === "F16" || ftype === "F32" || ftype === "BF16" ? undefined : await measure([], "reference");
    return {
      base: { file: opts.base, ppl: base.ppl, pplErr: base.pplErr, layers: nLayer },
      op: opts.op,
      ftype,
      text: opts.textName,
      ctx: base.plan.ctx,
      chunks: base.plan.nChunk,
      positions: base.positions,
      rows: rankRows(rows, opts.top),
      ...(reference && { reference }),
      runtime,
    };
  } finally {
    await pool.destroy();
    if (ownWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
}
