// hquant imatrix MODEL --text FILE -o OUT: llama-imatrix on the bundled llama.cpp (the importance
// matrix of a calibration text), or --show-statistics FILE for an existing one.
import { addGpuOptions, gpuOptions, type GpuCliOptions } from "../gpu-options.js";
import { evaluationRuntime, runtimeLine } from "../../runtime/index.js";
import os from "node:os";
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { DEFAULT_CTX, parseThreads, positiveInt, readText, textOption } from "../args.js";
import { loadRawImatrix } from "../../imatrix/index.js";
import { makeImatrix, type ImatrixFormat } from "../../imatrix/isolated.js";
import { statisticsTable, tensorStatistics } from "../../imatrix/stats.js";
import { progressBar } from "../progress.js";
import { commandSignal } from "../signals.js";

interface ImatrixCliOptions extends GpuCliOptions {
  text?: string;
  output: string;
  outputFormat?: string;
  ctx: string;
  chunks?: string;
  processOutput?: boolean;
  inFile: string[];
  threads?: string;
  ppl: boolean;
  saveFrequency?: string;
  showStatistics?: string;
  quiet?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerImatrix(program: Command): void {
  const command = program
    .command("imatrix")
    .description("importance matrix of a calibration text, computed with llama.cpp (as llama-imatrix)")
    .argument("[model]", "the model to run (F32/F16/BF16 or quantized GGUF)")
    .addOption(textOption("calibration text (UTF-8)", false))
    .option("-o, --output <file>", "output imatrix", "imatrix.gguf")
    .option("--output-format <fmt>", "gguf or dat (the legacy format)")
    .option("-c, --ctx <n>", "tokens per chunk", DEFAULT_CTX)
    .option("--chunks <n>", "use at most N chunks")
    .option("--process-output", "also collect output.weight")
    .option("--in-file <file>", "start from this imatrix (repeatable: they are summed)", collect, [])
    .option("-t, --threads <n>", "llama.cpp threads")
    .option("--no-ppl", "do not compute the perplexity")
    .option("--save-frequency <n>", "also save OUTPUT.at_<chunks> every N chunks")
    .option("--show-statistics <file>", "print the statistics of an imatrix file and exit")
    .option("--quiet", "no progress on stderr");
  addGpuOptions(command)
    .action(async (model: string | undefined, opts: ImatrixCliOptions) => {
      if (opts.showStatistics) {
        const raw = await loadRawImatrix(opts.showStatistics);
        process.stdout.write(`${opts.showStatistics}: ${raw.entries.length} tensors, ${raw.chunkCount} chunks\n\n${statisticsTable(tensorStatistics(raw.entries))}`);
        return;
      }
      const format = opts.outputFormat;
      if (format !== undefined && format !== "gguf" && format !== "dat") throw new UserError(`--output-format must be gguf or dat (got ${JSON.stringify(format)})`);
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const threads = parseThreads(opts.threads) ?? os.availableParallelism();
      const saveFrequency = positiveInt(opts.saveFrequency, "--save-frequency");
      if (opts.text !== undefined && model === undefined) throw new UserError("--text needs a model: hquant imatrix MODEL --text FILE");
      const text = opts.text !== undefined ? { content: readText(opts.text), name: opts.text } : undefined;
      if (format === undefined && !opts.output.endsWith(".gguf")) {
        process.stderr.write(`hquant: warning: ${opts.output}: saving a GGUF imatrix under a name without .gguf (--output-format dat for the legacy format)\n`);
      }
      const gpu = gpuOptions(opts);
      // the build is loaded (or refused in one line) now; where it runs is said once the inputs have
      // passed makeImatrix's checks (at the first chunk), so a bad input stays a one-line error
      let runtime = model !== undefined && text !== undefined && !opts.quiet ? runtimeLine(await evaluationRuntime(gpu)) : undefined;
      const bar = progressBar({ label: "imatrix", unit: "count", enabled: !opts.quiet });
      const r = await makeImatrix({
        ...gpu,
        model,
        text,
        output: opts.output,
        format: format as ImatrixFormat | undefined,
        ctx,
        chunks,
        processOutput: opts.processOutput,
        computePpl: opts.ppl,
        threads,
        inFiles: opts.inFile,
        saveFrequency,
        signal: commandSignal(),
        onProgress: (done, total, ppl) => {
          if (runtime !== undefined) bar.log(runtime);
          runtime = undefined;
          bar.update(done, total, Number.isNaN(ppl) ? undefined : `PPL ${ppl.toFixed(4)}`);
        },
      });
      bar.done();
      const c = r.compute;
      if (c && !Number.isNaN(c.ppl)) process.stdout.write(`Final estimate: PPL = ${c.ppl.toFixed(4)} +/- ${c.pplErr.toFixed(5)}\n`);
      process.stdout.write(`${r.output}: ${r.entries} entries, ${r.chunks} chunks of ${ctx} tokens (${r.format})\n`);
    });
}
