// hquant bench BASE.gguf --text FILE: PPL / KL-divergence vs size with llama.cpp (node-llama-cpp),
// for ready files (--files) and for files built here (--presets, --schedule), then a markdown
// table on stdout, and the chart, table and JSON in --out.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { positiveInt, readText } from "../args.js";
import { defaultCacheDir, runBench, writeFileAtomic, writeReportFiles, type BenchTarget } from "../../bench/run.js";
import { markdownTable, reportJson, type QualityMetric } from "../../bench/report.js";

interface BenchCliOptions {
  text: string;
  ctx: string;
  chunks?: string;
  threads?: string;
  files?: string[];
  presets?: string;
  schedule?: string[];
  imatrix?: string;
  out?: string;
  json?: string;
  metric: string;
  cacheDir?: string;
  progress: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];



function checkModelFile(file: string): void {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such file`);
}

/** Builds each preset / schedule into `outDir` with hquant build and returns the targets. */
async function buildTargets(base: string, opts: BenchCliOptions, outDir: string, threads: number, log: (s: string) => void): Promise<BenchTarget[]> {
  const presets = (opts.presets ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const schedules = opts.schedule ?? [];
  if (presets.length === 0 && schedules.length === 0) return [];
  const [{ buildModel }, { scheduleFromOptions }, { archNumber }, { QuantizePool }] = await Promise.all([
    import("../../build/index.js"),
    import("../../plan/options.js"),
    import("../../gguf/model.js"),
    import("../../pool/index.js"),
  ]);
  const jobs = [
    ...presets.map((p) => ({ name: p, opts: { preset: p } })),
    ...schedules.map((s) => ({ name: path.basename(s, ".json"), opts: { schedule: s } })),
  ];
  fs.mkdirSync(outDir, { recursive: true }); // hquant build wants an existing folder; --out may be new
  const targets: BenchTarget[] = [];
  // one pool (threads and compiled kernels) for every build
  const pool = new QuantizePool(threads);
  try {
    for (const job of jobs) {
      const suffix = opts.imatrix ? "-imat" : "";
      const output = path.join(outDir, `${path.basename(base, ".gguf")}-${job.name}${suffix}.gguf`);
      log(`building ${path.basename(output)}`);
      await buildModel({
        input: base,
        output,
        pool,
        imatrix: opts.imatrix,
        schedule: (model) => scheduleFromOptions({ ...job.opts, imatrix: opts.imatrix }, archNumber(model.kv, "block_count") ?? 0),
      });
      targets.push({ file: output, label: `${job.name}${suffix}`, preset: job.name, producer: "hquant", imatrix: opts.imatrix !== undefined });
    }
  } finally {
    await pool.destroy();
  }
  return targets;
}

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("perplexity and KL-divergence vs size, measured with llama.cpp (as llama-perplexity)")
    .argument("<base>", "the unquantized base model (F32/F16/BF16 GGUF)")
    .requiredOption("--text <file>", "evaluation text (UTF-8)")
    .option("--ctx <n>", "context length per chunk (llama-perplexity -c)", "512")
    .option("--chunks <n>", "evaluate at most N chunks")
    .option("--threads <n>", "llama.cpp threads (fixed for repeatable results)")
    .option("--files <files...>", "ready GGUF files to evaluate")
    .option("--presets <list>", "comma-separated presets to build and evaluate (Q4_K_M,Q4_K_H,…)")
    .option("--schedule <file>", "a JSON schedule to build and evaluate (repeatable)", collect)
    .option("--imatrix <file>", "importance matrix for the files built here")
    .option("--out <dir>", "where built files, bench.md, bench.svg and bench.json go")
    .option("--json <file>", "write the rows as JSON")
    .option("--metric <kld|ppl>", "what the chart and the Pareto front rank by", "kld")
    .option("--cache-dir <dir>", "where the base model's distributions are cached")
    .option("--no-progress", "no progress display on stderr")
    .action(async (base: string, opts: BenchCliOptions) => {
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const threads = positiveInt(opts.threads, "--threads") ?? Math.max(1, os.availableParallelism());
      if (opts.metric !== "kld" && opts.metric !== "ppl") throw new UserError(`--metric must be kld or ppl (got ${JSON.stringify(opts.metric)})`);
      const metric = opts.metric as QualityMetric;
      checkModelFile(base);
      for (const f of opts.files ?? []) checkModelFile(f);
      if (opts.imatrix !== undefined) checkModelFile(opts.imatrix);
      const text = readText(opts.text);
      const wantsBuild = Boolean(opts.presets) || (opts.schedule?.length ?? 0) > 0;
      if (wantsBuild && !opts.out) throw new UserError("--presets and --schedule need --out DIR for the files they build");
      if (!wantsBuild && !(opts.files?.length)) throw new UserError("nothing to evaluate: give --files, --presets or --schedule");

      const tty = opts.progress && process.stderr.isTTY;
      const log = (s: string) => opts.progress && process.stderr.write(`${s}\n`);
      const built = opts.out ? await buildTargets(base, opts, opts.out, threads, log) : [];
      const targets: BenchTarget[] = [...(opts.files ?? []).map((file) => ({ file, producer: "given" })), ...built];

      const report = await runBench({
        base,
        text,
        textName: path.basename(opts.text),
        targets,
        ctx,
        chunks,
        threads,
        metric,
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        onFile: (file, k, n) => log(`[${k + 1}/${n}] ${k === 0 ? "base " : ""}${file}`),
        onProgress: (_file, done, total) => {
          if (tty) process.stderr.write(`\r  chunk ${done}/${total}${done === total ? "\n" : ""}`);
        },
      });
      process.stdout.write(markdownTable(report.rows, report.base, metric));
      if (opts.out) for (const f of writeReportFiles(opts.out, report, metric, `${path.basename(base)} · ${report.text} · ctx ${report.ctx}`)) log(`wrote ${f}`);
      if (opts.json) writeFileAtomic(opts.json, reportJson(report));
    });
}
