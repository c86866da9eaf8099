// `hquant bench` without the CLI: evaluate the base model once (cached), then every file against
// it, and assemble the report (rows sorted by size, Pareto marked) and its outputs.
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { UserError } from "../errors.js";
import { resolveOutputTarget } from "../gguf/output-path.js";
import { tempPathFor } from "../gguf/writer.js";
import { renderChart } from "./chart.js";
import { evaluateAgainstBase, evaluateBase, type EvalOptions } from "./isolated.js";
import { readFileInfo } from "./file-info.js";
import { evaluationRuntime, offloadOf, runtimeCacheDir } from "../runtime/index.js";
import { markdownTable, markPareto, reportJson, type BenchReport, type BenchRow, type QualityMetric } from "./report.js";

export interface BenchTarget {
  file: string;
  label?: string;
  preset?: string;
  producer?: string;
  /** overrides what the file's metadata says */
  imatrix?: boolean;
}

export interface BenchOptions extends EvalOptions {
  base: string;
  text: string;
  textName: string;
  targets: BenchTarget[];
  metric?: QualityMetric;
  /** called before each file's evaluation */
  onFile?: (file: string, index: number, total: number) => void;
  /**
   * Makes more targets (e.g. builds presets) once the base is evaluated, so that a text too short
   * for the context, or a base that does not load, fails before any build starts.
   */
  prepareTargets?: () => Promise<BenchTarget[]>;
}

export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(xdg, "hquant", "bench");
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  // the build is loaded (or refused) before any work; GPU results are cached apart from CPU ones
  const runtime = await evaluationRuntime(offloadOf(opts));
  opts = { ...opts, cacheDir: runtimeCacheDir(opts.cacheDir, runtime) };
  opts.onFile?.(opts.base, 0, opts.targets.length + 1);
  // each file's header is parsed here while the evaluation process works on the file before it (a
  // 152 000-token vocabulary is a few tenths of a CPU second); its errors still come in file order
  const fileInfo = (file: string) => {
    const p = readFileInfo(file);
    p.catch(() => {});
    return p;
  };
  const baseInfoRead = fileInfo(opts.base);
  const first = opts.targets[0]?.file;
  let next = first !== undefined ? { file: first, info: fileInfo(first) } : undefined;
  const base = await evaluateBase(opts.base, opts.text, opts.textName, opts);
  const baseInfo = await baseInfoRead;
  const targets = [...opts.targets, ...((await opts.prepareTargets?.()) ?? [])];
  const rows: BenchRow[] = [];
  for (const [k, t] of targets.entries()) {
    opts.signal?.throwIfAborted();
    opts.onFile?.(t.file, k + 1, targets.length + 1);
    const info = await (next?.file === t.file ? next.info : readFileInfo(t.file));
    const after = targets[k + 1]?.file;
    next = after !== undefined ? { file: after, info: fileInfo(after) } : undefined;
    const r = await evaluateAgainstBase(base, t.file, opts);
    rows.push({
      label: t.label ?? path.basename(t.file, ".gguf"),
      file: t.file,
      bytes: info.bytes,
      bpw: info.bpw,
      ppl: r.ppl,
      pplErr: r.pplErr,
      kld: r.kld,
      kld99: r.kld99,
      kldMax: r.kldMax,
      topTokenPct: r.topTokenPct,
      ftype: info.ftype,
      preset: t.preset ?? info.preset,
      imatrix: t.imatrix ?? info.imatrix,
      producer: t.producer,
    });
  }
  return {
    base: { file: opts.base, bytes: baseInfo.bytes, bpw: baseInfo.bpw, ppl: base.ppl, pplErr: base.pplErr },
    text: opts.textName,
    ctx: base.plan.ctx,
    chunks: base.plan.nChunk,
    positions: base.positions,
    rows: markPareto(rows, opts.metric ?? "kld"),
    runtime,
  };
}

/**
 * Writes atomically: a hidden temp file next to the target renamed into place (the folder is made
 * when missing). Only a regular file is replaced (a symlink is written through), keeping its mode.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new UserError(`${file}: cannot create the folder ${dir} (${(err as NodeJS.ErrnoException).code})`);
  }
  const target = resolveOutputTarget(file);
  const tmp = tempPathFor(target.file);
  try {
    fs.writeFileSync(tmp, data, { flag: "wx" });
    if (target.mode !== undefined) fs.chmodSync(tmp, target.mode);
    fs.renameSync(tmp, target.file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new UserError(`${file}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Writes bench.md, bench.svg and bench.json into `dir`; returns their paths. */
export function writeReportFiles(dir: string, report: BenchReport, metric: QualityMetric = "kld", title?: string): string[] {
  const md = `# hquant bench\n\nbase ${path.basename(report.base?.file ?? "")}, text ${report.text}, ctx ${report.ctx}, ${report.chunks} chunks (${report.positions} scored tokens)\n\n${markdownTable(report.rows, report.base, metric)}`;
  const files: [string, string][] = [
    [path.join(dir, "bench.md"), md],
    [path.join(dir, "bench.svg"), renderChart(report.rows, { metric, title })],
    [path.join(dir, "bench.json"), reportJson(report)],
  ];
  for (const [f, data] of files) writeFileAtomic(f, data);
  return files.map(([f]) => f);
}
