// hquant scan BASE.gguf --text FILE --op delete|duplicate: builds every single-layer edit, evaluates
// it against the base with the bench evaluator, prints a table (least harmful first) and writes
// the table, an SVG chart and JSON to --out.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Option, type Command } from "commander";
import { UserError } from "../../errors.js";
import { checkOutputFolder, DEFAULT_CTX, jsonTarget, parseThreads, positiveInt, readText, textOption, writeJson } from "../args.js";
import { defaultCacheDir, writeFileAtomic } from "../../eval/run.js";
import { resolveOutputTarget } from "../../gguf/output-path.js";
import { scan } from "../../index.js";
import { parseFileType } from "../../plan/schedule.js";
import { SCAN_OPS, type ScanOp } from "../../scan/index.js";
import { SEARCH_OPS } from "../../scan/candidates.js";
import { progressBar, type ProgressBar } from "../progress.js";
import { commandSignal } from "../signals.js";
import { scanChart, scanJson, scanMarkdown } from "../../scan/report.js";
import { addGpuOptions, gpuOptions, type GpuCliOptions } from "../gpu-options.js";
import { llamaRuntime, runtimeLine } from "../../runtime/index.js";
import { addSearchOptions, isSearch, runSearchCommand, type ScanCliOptions, type ScanSearchCliOptions } from "./scan-search.js";


export function registerScan(program: Command): void {
  const command = program
    .command("scan")
    .description("layer-importance scan: PPL / KL-divergence after deleting (or duplicating) each layer")
    .argument("<base>", "the unquantized base model (F32/F16/BF16 GGUF)")
    .addOption(textOption("evaluation text (UTF-8)"))
    .option("--op <op>", `the single edit: ${SEARCH_OPS.join(", ")} or all`)
    .option("-c, --ctx <n>", "context length per chunk (llama-perplexity -c)", DEFAULT_CTX)
    .option("--chunks <n>", "evaluate at most N chunks")
    .option("--top <k>", "keep the K least harmful edits")
    .option("--ftype <name>", "build the edits in this file type (default F16)")
    .option("-t, --threads <n>", "llama.cpp and build threads")
    .option("--json [file]", "the report as JSON, on stdout (instead of the table) or into FILE")
    .option("--out <dir>", "write scan.md, scan.svg and scan.json here")
    .option("--cache-dir <dir>", "where the base model's distributions are cached")
    .option("--quiet", "print nothing but the result and errors")
    .addOption(new Option("--no-progress", "the same as --quiet (older name)").hideHelp());
  addSearchOptions(addGpuOptions(command))
    .action(async (base: string, opts: ScanCliOptions & ScanSearchCliOptions) => {
      if (isSearch(opts, SCAN_OPS)) return runSearchCommand(base, { ...opts, progress: opts.progress && !opts.quiet });
      if (opts.op === undefined) throw new UserError("--op is required (or --laco)");
      if (!SCAN_OPS.includes(opts.op as ScanOp)) throw new UserError(`--op must be ${SCAN_OPS.join(" or ")} (got ${JSON.stringify(opts.op)})`);
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const top = positiveInt(opts.top, "--top");
      const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
      const ftype = opts.ftype !== undefined ? parseFileType(opts.ftype, "--ftype") : undefined;
      if (!fs.existsSync(base)) throw new UserError(`${base}: no such file`);
      const text = readText(opts.text);
      // every output path is checked now, not after the scan
      const json = jsonTarget(opts.json);
      const outFiles = opts.out === undefined ? [] : ["scan.md", "scan.svg", "scan.json"].map((f) => path.join(opts.out!, f));
      if (opts.out !== undefined) {
        checkOutputFolder(opts.out, "--out");
        if (fs.existsSync(opts.out)) for (const f of outFiles) resolveOutputTarget(f);
      }
      const gpu = gpuOptions(opts);
      const quiet = opts.quiet || !opts.progress;
      const log = progressBar({ enabled: !quiet });
      log.log(runtimeLine(llamaRuntime(gpu)));
      let bar: ProgressBar | undefined;

      const report = await scan({
        ...gpu,
        base,
        text,
        textName: path.basename(opts.text),
        op: opts.op as ScanOp,
        ftype,
        top,
        ctx,
        chunks,
        threads,
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        signal: commandSignal(),
        onWarning: (m) => log.log(`hquant: warning: ${m}`),
        onLayer: (layer, n) => {
          bar?.done();
          bar = progressBar({ label: `[${layer + 1}/${n}] ${opts.op} layer ${layer}`, enabled: !quiet });
          log.log(`[${layer + 1}/${n}] ${opts.op} layer ${layer}`);
        },
        onProgress: (_file, done, total) => bar?.update(done, total, "chunks"),
      }).finally(() => bar?.done());
      if (json !== "-") process.stdout.write(scanMarkdown(report));
      if (opts.out) {
        const data = [scanMarkdown(report), scanChart(report), scanJson(report)];
        outFiles.forEach((f, i) => {
          writeFileAtomic(f, data[i]!);
          log.log(`wrote ${f}`);
        });
      }
      if (json !== undefined) writeJson(json, scanJson(report));
    });
}
