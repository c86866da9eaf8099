// hquant tune BASE.gguf --budget B --text CALIB.txt [--eval-text HELDOUT.txt] [--imatrix F]
// [--types LIST] [--method measure|proxy] [--out DIR] [-t N]: the schedule with the least predicted
// KLD within a size budget. Thin: parses options, calls the library (src/tune), prints the summary.
import { addGpuOptions, gpuOptions, type GpuCliOptions } from "../gpu-options.js";
import { llamaRuntime, runtimeLine } from "../../runtime/index.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { DEFAULT_CTX, parseThreads, positiveInt, readText, textOption } from "../args.js";
import { defaultCacheDir } from "../../eval/run.js";
import { parseTypeList } from "../../tune/candidates.js";
import { OBJECTIVES, type Objective } from "../../tune/sensitivity.js";
import { parseBudget, parseBudgets } from "../../tune/budget.js";
import { tune, type TuneMethod } from "../../tune/index.js";
import { writeTuneReport } from "../../tune/report.js";
import { progressBar } from "../progress.js";
import { commandSignal } from "../signals.js";

interface TuneCliOptions extends GpuCliOptions {
  budget?: string;
  budgets?: string;
  text: string;
  evalText?: string;
  imatrix?: string;
  types?: string;
  method: string;
  objective: string;
  measureTypes?: string;
  out: string;
  ctx: string;
  chunks?: string;
  evalChunks?: string;
  threads?: string;
  cacheDir?: string;
  keepFiles?: boolean;
  verify: boolean;
  quiet?: boolean;
  maxEvals?: string;
  proxyRows?: string;
}

const METHODS: readonly TuneMethod[] = ["measure", "proxy"];

export function registerTune(program: Command): void {
  const command = program
    .command("tune")
    .description("find the schedule with the least KLD within a size budget (writes a schedule and a report)")
    .argument("<base>", "the unquantized base model (F32/F16/BF16 GGUF)")
    .option("--budget <b>", "bits per weight (4.5, 4.5bpw), a size (8.2MiB, 4.1GB, bytes) or a file type name (IQ4_XS)")
    .option("--budgets <list>", "several budgets from one set of measurements (3.7,4.5,IQ4_XS)")
    .addOption(textOption("calibration text (sensitivity is measured on it)"))
    .option("--eval-text <file>", "held-out text the tuned files are evaluated on")
    .option("--imatrix <file>", "importance matrix (.dat or .gguf)")
    .option("--types <list>", "candidate types (default: every type hquant quantizes)")
    .option("--method <m>", `sensitivity: ${METHODS.join(" or ")}`, "measure")
    .option("--objective <o>", "what is minimised: mean (KLD), p99 (KLD's 99th percentile) or top (changed top tokens)", "mean")
    .option("--measure-types <list>", "types each group is measured at (default q3_K)")
    .option("--out <dir>", "schedules, report and charts go here", "hquant-tune")
    .option("-c, --ctx <n>", "context length per chunk (llama-perplexity -c)", DEFAULT_CTX)
    .option("--chunks <n>", "calibration chunks measured (default 12; proxy 1)")
    .option("--eval-chunks <n>", "evaluation chunks (default: the whole text)")
    .option("-t, --threads <n>", "llama.cpp and build threads")
    .option("--cache-dir <dir>", "where measurements and base distributions are cached")
    .option("--keep-files", "keep the tuned GGUF files in --out")
    .option("--no-verify", "plan only: no build, no measurement of the result")
    .option("--max-evals <n>", "measure at most this many points (evaluations); unmeasured groups use the kind-scaled proxy")
    .option("--proxy-rows <n>", "rows sampled per tensor for the proxy's errors (default: every row)")
    .option("--quiet", "no progress on stderr");
  addGpuOptions(command)
    .action(async (base: string, opts: TuneCliOptions) => {
      if (!METHODS.includes(opts.method as TuneMethod)) throw new UserError(`--method must be ${METHODS.join(" or ")} (got ${JSON.stringify(opts.method)})`);
      if (!OBJECTIVES.includes(opts.objective as Objective)) throw new UserError(`--objective must be ${OBJECTIVES.join(", ")} (got ${JSON.stringify(opts.objective)})`);
      const measureTypes = opts.measureTypes !== undefined ? parseTypeList(opts.measureTypes, "--measure-types") : undefined;
      if ((opts.budget === undefined) === (opts.budgets === undefined)) throw new UserError("give one of --budget or --budgets");
      const budgets = opts.budget !== undefined ? [parseBudget(opts.budget)] : parseBudgets(opts.budgets!);
      const types = opts.types !== undefined ? parseTypeList(opts.types) : undefined;
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const evalChunks = positiveInt(opts.evalChunks, "--eval-chunks");
      const maxEvals = positiveInt(opts.maxEvals, "--max-evals");
      const proxyRows = positiveInt(opts.proxyRows, "--proxy-rows");
      const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
      if (!fs.existsSync(base)) throw new UserError(`${base}: no such file`);
      const text = readText(opts.text);
      const evalText = opts.evalText !== undefined ? readText(opts.evalText) : undefined;
      // the cache holds only complete entries (each written to a temporary name, then renamed), so
      // an interrupted tune resumes from it; the temporary builds go with this folder
      const gpu = gpuOptions(opts);
      const runtime = llamaRuntime(gpu);
      // said with tune's first progress, once its own checks (budgets, imatrix, text) have passed
      let runtimeShown = false;
      const showRuntime = () => {
        if (!runtimeShown) bar.log(runtimeLine(runtime));
        runtimeShown = true;
      };
      const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-"));
      const bar = progressBar({ enabled: !opts.quiet, unit: "count" });
      const result = await tune({
        ...gpu,
        workDir,
        base,
        text,
        textName: path.basename(opts.text),
        evalText,
        evalTextName: opts.evalText !== undefined ? path.basename(opts.evalText) : undefined,
        budgets,
        imatrix: opts.imatrix,
        types,
        method: opts.method as TuneMethod,
        objective: opts.objective as Objective,
        measureTypes,
        outDir: opts.out,
        ctx,
        chunks,
        evalChunks,
        threads,
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        keepFiles: opts.keepFiles,
        verify: opts.verify,
        signal: commandSignal(),
        onProgress: (p) => {
          showRuntime();
          bar.update(p.done, p.total, `${p.stage} ${p.detail}`);
        },
        onWarning: (m) => {
          showRuntime();
          bar.log(`hquant: warning: ${m}`);
        },
        onInfo: (m) => {
          showRuntime();
          bar.log(`hquant tune: ${m}`);
        },
        maxEvals,
        proxyRows,
      }).finally(() => {
        bar.done();
        fs.rmSync(workDir, { recursive: true, force: true });
      });
      const md = writeTuneReport(opts.out, result);
      process.stdout.write(md);
      for (const b of result.budgets) process.stdout.write(`wrote ${b.scheduleFile}${b.gguf ? ` and ${b.gguf}` : ""}\n`);
      process.stdout.write(`wrote ${path.join(opts.out, "tune.md")} and its charts\n`);
    });
}
