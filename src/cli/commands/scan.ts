// hquant scan BASE.gguf --text FILE --op delete|duplicate: builds every single-layer edit, evaluates
// it against the base with the bench evaluator, prints a table (least harmful first) and writes
// the table, an SVG chart and JSON to --out.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { positiveInt, readText } from "../args.js";
import { defaultCacheDir, writeFileAtomic } from "../../bench/run.js";
import { parseFileType } from "../../plan/schedule.js";
import { runScan, SCAN_OPS, type ScanOp } from "../../scan/index.js";
import { SEARCH_OPS } from "../../scan/candidates.js";
import { scanChart, scanJson, scanMarkdown } from "../../scan/report.js";
import { addSearchOptions, isSearch, runSearchCommand, type ScanSearchCliOptions } from "./scan-search.js";

interface ScanCliOptions {
  text: string;
  op: string;
  ctx: string;
  chunks?: string;
  top?: string;
  ftype?: string;
  threads?: string;
  json?: string;
  out?: string;
  cacheDir?: string;
  progress: boolean;
}



export function registerScan(program: Command): void {
  const command = program
    .command("scan")
    .description("layer-importance scan: PPL / KL-divergence after deleting (or duplicating) each layer")
    .argument("<base>", "the unquantized base model (F32/F16/BF16 GGUF)")
    .requiredOption("--text <file>", "evaluation text (UTF-8)")
    .option("--op <op>", `the single edit: ${SEARCH_OPS.join(", ")} or all`)
    .option("--ctx <n>", "context length per chunk (llama-perplexity -c)", "256")
    .option("--chunks <n>", "evaluate at most N chunks")
    .option("--top <k>", "keep the K least harmful edits")
    .option("--ftype <name>", "build the edits in this file type (default F16)")
    .option("--threads <n>", "llama.cpp and build threads")
    .option("--json <file>", "write the report as JSON")
    .option("--out <dir>", "write scan.md, scan.svg and scan.json here")
    .option("--cache-dir <dir>", "where the base model's distributions are cached")
    .option("--no-progress", "no progress display on stderr");
  addSearchOptions(command)
    .action(async (base: string, opts: ScanCliOptions & ScanSearchCliOptions) => {
      if (isSearch(opts, SCAN_OPS)) return runSearchCommand(base, opts);
      if (opts.op === undefined) throw new UserError("--op is required (or --laco)");
      if (!SCAN_OPS.includes(opts.op as ScanOp)) throw new UserError(`--op must be ${SCAN_OPS.join(" or ")} (got ${JSON.stringify(opts.op)})`);
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const top = positiveInt(opts.top, "--top");
      const threads = positiveInt(opts.threads, "--threads") ?? Math.max(1, os.availableParallelism());
      const ftype = opts.ftype !== undefined ? parseFileType(opts.ftype, "--ftype") : undefined;
      if (!fs.existsSync(base)) throw new UserError(`${base}: no such file`);
      const text = readText(opts.text);
      const tty = opts.progress && process.stderr.isTTY;
      const log = (s: string) => opts.progress && process.stderr.write(`${s}\n`);

      const report = await runScan({
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
        onLayer: (layer, n) => log(`[${layer + 1}/${n}] ${opts.op} layer ${layer}`),
        onProgress: (_file, done, total) => {
          if (tty) process.stderr.write(`\r  chunk ${done}/${total}${done === total ? "\n" : ""}`);
        },
      });
      process.stdout.write(scanMarkdown(report));
      if (opts.out) {
        const files: [string, string][] = [
          [path.join(opts.out, "scan.md"), scanMarkdown(report)],
          [path.join(opts.out, "scan.svg"), scanChart(report)],
          [path.join(opts.out, "scan.json"), scanJson(report)],
        ];
        for (const [f, data] of files) {
          writeFileAtomic(f, data);
          log(`wrote ${f}`);
        }
      }
      if (opts.json) writeFileAtomic(opts.json, scanJson(report));
    });
}
