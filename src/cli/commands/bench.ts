// hquant bench BASE.gguf --text FILE: PPL / KL-divergence vs size with llama.cpp (src/runtime),
// for ready files (--files) and for files built here (--presets, --schedule), then a markdown
// table on stdout, and the chart, table and JSON in --out. Everything the run needs (files,
// presets, schedules, output paths) is checked before the first evaluation or build.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Option, type Command } from "commander";
import { UserError } from "../../errors.js";
import { bench, build } from "../../index.js";
import { checkOutputFolder, DEFAULT_CTX, jsonTarget, parseThreads, positiveInt, readText, textOption, writeJson } from "../args.js";
import { defaultCacheDir, writeReportFiles, type BenchTarget } from "../../eval/run.js";
import { markdownTable, reportJson, type QualityMetric } from "../../eval/report.js";
import { loadPreset, loadScheduleFile } from "../../plan/options.js";
import { resolveOutputTarget } from "../../gguf/output-path.js";
import { progressBar, type ProgressBar } from "../progress.js";
import { commandSignal } from "../signals.js";
import { sharedQuantizePool } from "../../pool/index.js";
import { addGpuOptions, gpuOptions, type GpuCliOptions } from "../gpu-options.js";
import { evaluationRuntime, runtimeLine } from "../../runtime/index.js";
import { loadTasks, parsePromptSuite, TASK_KINDS, type TaskKind } from "../../eval/tasks/index.js";
import { runTaskBench, taskTable, type TaskBenchOptions, type TaskRow } from "../../eval/tasks/run.js";

/** --task KIND FILE and --prompts FILE, checked (the files read and parsed) before any evaluation. */
function taskOptions(opts: BenchCliOptions, ctx: number): Pick<TaskBenchOptions, "task" | "prompts"> {
  const out: Pick<TaskBenchOptions, "task" | "prompts"> = {};
  if (opts.task) {
    const [kind, file, ...rest] = opts.task;
    if (!TASK_KINDS.includes(kind as TaskKind) || file === undefined || rest.length > 0) {
      throw new UserError(`--task takes a kind (${TASK_KINDS.join(", ")}) and a task file, e.g. --task hellaswag hellaswag_val_full.txt (got ${JSON.stringify(opts.task.join(" "))})`);
    }
    const tasks = positiveInt(opts.tasks, "--tasks");
    loadTasks(kind as TaskKind, file, tasks);
    out.task = { kind: kind as TaskKind, file, tasks, ctx };
  } else if (opts.tasks !== undefined) throw new UserError("--tasks needs --task");
  if (opts.prompts) out.prompts = { file: opts.prompts, cases: parsePromptSuite(readText(opts.prompts), opts.prompts) };
  return out;
}

interface BenchCliOptions extends GpuCliOptions {
  text?: string;
  task?: string[];
  tasks?: string;
  prompts?: string;
  ctx: string;
  chunks?: string;
  threads?: string;
  files?: string[];
  presets?: string;
  schedule?: string[];
  imatrix?: string;
  out?: string;
  json?: string | boolean;
  metric: string;
  cacheDir?: string;
  quiet?: boolean;
  progress: boolean;
}

interface BuildJob {
  name: string;
  opts: { preset?: string; schedule?: string };
  output: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];



function checkModelFile(file: string): void {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
}

/** The presets and schedules to build, each checked (name, file, output path) before any work. */
function buildJobs(base: string, opts: BenchCliOptions): BuildJob[] {
  const presets = (opts.presets ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const schedules = opts.schedule ?? [];
  for (const p of presets) loadPreset(p);
  for (const s of schedules) loadScheduleFile(s);
  const suffix = opts.imatrix ? "-imat" : "";
  const jobs = [
    ...presets.map((p) => ({ name: p, opts: { preset: p } })),
    ...schedules.map((s) => ({ name: path.basename(s, ".json"), opts: { schedule: s } })),
  ].map((j) => ({ ...j, output: path.join(opts.out ?? ".", `${path.basename(base, ".gguf")}-${j.name}${suffix}.gguf`) }));
  if (opts.out !== undefined && fs.existsSync(opts.out)) for (const j of jobs) resolveOutputTarget(j.output);
  return jobs;
}

/** Builds each preset / schedule into --out with the library's build and returns the targets. */
async function buildTargets(base: string, jobs: BuildJob[], opts: BenchCliOptions, threads: number, bar: ProgressBar): Promise<BenchTarget[]> {
  if (jobs.length === 0) return [];
  fs.mkdirSync(opts.out!, { recursive: true }); // --out may be new
  const targets: BenchTarget[] = [];
  // one pool (threads and compiled kernels) for every build
  const pool = sharedQuantizePool(threads);
  for (const [k, job] of jobs.entries()) {
    bar.log(`building ${path.basename(job.output)}`);
    const progress = progressBar({ label: `[${k + 1}/${jobs.length}] build ${job.name}`, unit: "bytes", enabled: !opts.quiet && opts.progress });
    try {
      await build({
        input: base,
        output: job.output,
        threads,
        pool,
        imatrix: opts.imatrix,
        // exactly llama.cpp's metadata, as before: the targets carry the preset name themselves
        hquant: false,
        signal: commandSignal(),
        schedule: { ...job.opts, imatrix: opts.imatrix },
        onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, p.tensorName),
      });
    } finally {
      progress.done();
    }
    const suffix = opts.imatrix ? "-imat" : "";
    targets.push({ file: job.output, label: `${job.name}${suffix}`, preset: job.name, producer: "hquant", imatrix: opts.imatrix !== undefined });
  }
  return targets;
}

export function registerBench(program: Command): void {
  const command = program
    .command("bench")
    .description("perplexity and KL-divergence vs size, measured with llama.cpp (as llama-perplexity)")
    .argument("[base]", "the unquantized base model (F32/F16/BF16 GGUF); optional with --task / --prompts and no --text")
    .addOption(textOption("evaluation text (UTF-8) for PPL and KLD", false))
    .option("--task <kind-and-file...>", "task accuracy as llama-perplexity scores it: hellaswag|winogrande|multiple-choice FILE")
    .option("--tasks <n>", "score N tasks (llama-perplexity's --hellaswag-tasks, default 400; winogrande and multiple-choice: all)")
    .option("--prompts <file>", "a JSON prompt suite, greedy-decoded: pass/fail per file")
    .option("-c, --ctx <n>", "context length per chunk (llama-perplexity -c)", DEFAULT_CTX)
    .option("--chunks <n>", "evaluate at most N chunks")
    .option("-t, --threads <n>", "llama.cpp and build threads (fixed for repeatable results)")
    .option("--files <files...>", "ready GGUF files to evaluate")
    .option("--presets <list>", "comma-separated presets to build and evaluate (Q4_K_M,Q4_K_H,…)")
    .option("--schedule <file>", "a JSON schedule to build and evaluate (repeatable)", collect)
    .option("--imatrix <file>", "importance matrix for the files built here")
    .option("--out <dir>", "where built files, bench.md, bench.svg and bench.json go")
    .option("--json [file]", "the rows as JSON, on stdout (instead of the table) or into FILE")
    .option("--metric <kld|ppl>", "what the chart and the Pareto front rank by", "kld")
    .option("--cache-dir <dir>", "where the base model's distributions are cached")
    .option("--quiet", "print nothing but the result and errors")
    .addOption(new Option("--no-progress", "the same as --quiet (older name)").hideHelp());
  addGpuOptions(command)
    .action(async (base: string | undefined, opts: BenchCliOptions) => {
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const taskOpts = taskOptions(opts, ctx);
      const scoresTasks = taskOpts.task !== undefined || taskOpts.prompts !== undefined;
      if (opts.text === undefined) {
        if (!scoresTasks) throw new UserError("bench needs --text FILE (PPL and KLD), --task KIND FILE or --prompts FILE");
        return benchTasksOnly(base, opts, taskOpts);
      }
      if (base === undefined) throw new UserError("--text needs the base model (the first argument)");
      const chunks = positiveInt(opts.chunks, "--chunks");
      const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
      if (opts.metric !== "kld" && opts.metric !== "ppl") throw new UserError(`--metric must be kld or ppl (got ${JSON.stringify(opts.metric)})`);
      const metric = opts.metric as QualityMetric;
      checkModelFile(base);
      for (const f of opts.files ?? []) checkModelFile(f);
      if (opts.imatrix !== undefined) checkModelFile(opts.imatrix);
      const text = readText(opts.text);
      const wantsBuild = Boolean(opts.presets) || (opts.schedule?.length ?? 0) > 0;
      if (wantsBuild && !opts.out) throw new UserError("--presets and --schedule need --out DIR for the files they build");
      if (!wantsBuild && !(opts.files?.length)) throw new UserError("nothing to evaluate: give --files, --presets or --schedule");
      if (opts.out !== undefined) checkOutputFolder(opts.out, "--out");
      const json = jsonTarget(opts.json);
      const jobs = buildJobs(base, opts);
      if (opts.out !== undefined && fs.existsSync(opts.out)) for (const f of ["bench.md", "bench.svg", "bench.json"]) resolveOutputTarget(path.join(opts.out, f));

      const gpu = gpuOptions(opts);
      const quiet = opts.quiet || !opts.progress;
      const log = progressBar({ enabled: !quiet });
      // the llama.cpp build is loaded (or refused in one line) before any build or evaluation
      log.log(runtimeLine(await evaluationRuntime(gpu)));
      let bar: ProgressBar | undefined;
      const report = await bench({
        ...gpu,
        base,
        text,
        textName: path.basename(opts.text),
        targets: (opts.files ?? []).map((file) => ({ file, producer: "given" })),
        // built after the base is evaluated: a text too short for --ctx fails before any build
        prepareTargets: () => buildTargets(base, jobs, opts, threads, log),
        ctx,
        chunks,
        threads,
        metric,
        signal: commandSignal(),
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        onFile: (file, k, n) => {
          bar?.done();
          bar = progressBar({ label: `[${k + 1}/${n}] ${k === 0 ? "base " : ""}${path.basename(file)}`, unit: "count", enabled: !quiet });
          log.log(`[${k + 1}/${n}] ${k === 0 ? "base " : ""}${file}`);
        },
        onProgress: (_file, done, total) => bar?.update(done, total, "chunks"),
      }).finally(() => bar?.done());
      if (scoresTasks) {
        // the same models scored on the task file / prompt suite: the table and JSON gain their columns
        const taskRows = await runTaskBench({ ...taskOpts, models: [{ file: base }, ...report.rows.map((r) => ({ file: r.file, label: r.label }))], threads, signal: commandSignal(), onFile: (file, k, n) => log.log(`[${k + 1}/${n}] tasks ${file}`) });
        if (report.base) Object.assign(report.base, taskFields(taskRows[0]));
        report.rows.forEach((r, k) => Object.assign(r, taskFields(taskRows[k + 1])));
      }
      if (json !== "-") process.stdout.write(markdownTable(report.rows, report.base, metric));
      if (opts.out) for (const f of writeReportFiles(opts.out, report, metric, `${path.basename(base)} · ${report.text} · ctx ${report.ctx}`)) log.log(`wrote ${f}`);
      if (json !== undefined) writeJson(json, reportJson(report));
    });
}

function taskFields(r: TaskRow): Pick<TaskRow, "task" | "prompts"> {
  return { ...(r.task ? { task: r.task } : {}), ...(r.prompts ? { prompts: r.prompts } : {}) };
}

/** --task / --prompts without --text: no base model, no KLD; the given model and --files scored. */
async function benchTasksOnly(base: string | undefined, opts: BenchCliOptions, taskOpts: Pick<TaskBenchOptions, "task" | "prompts">): Promise<void> {
  const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
  if (opts.presets || (opts.schedule?.length ?? 0) > 0) throw new UserError("--presets and --schedule need --text (build and compare against the base); give ready files with --files");
  const models = [...(base !== undefined ? [base] : []), ...(opts.files ?? [])];
  if (models.length === 0) throw new UserError("nothing to evaluate: give a model or --files");
  for (const f of models) checkModelFile(f);
  const json = jsonTarget(opts.json);
  const quiet = opts.quiet || !opts.progress;
  const log = progressBar({ enabled: !quiet });
  const rows = await runTaskBench({ ...taskOpts, models: models.map((file) => ({ file })), threads, signal: commandSignal(), onFile: (file, k, n) => log.log(`[${k + 1}/${n}] ${file}`) });
  if (json !== "-") process.stdout.write(taskTable(rows, taskOpts.task?.kind, taskOpts.prompts !== undefined));
  for (const r of rows) for (const f of r.prompts?.failed ?? []) log.log(`${r.label}: failed ${JSON.stringify(f.prompt)} → ${JSON.stringify(f.output)}`);
  if (json !== undefined) writeJson(json, JSON.stringify({ task: taskOpts.task && { kind: taskOpts.task.kind, file: taskOpts.task.file }, prompts: taskOpts.prompts?.file, rows }, null, 2) + "\n");
}
