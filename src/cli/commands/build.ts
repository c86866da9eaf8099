// `hquant build IN OUT (--preset NAME | --schedule FILE | --ftype NAME) [options]`: plan, print a
// one-screen summary, quantize in the worker pool, stream the GGUF out (temp file + rename).
import { unlinkSync } from "node:fs";
import type { Command } from "commander";
import type { BuildProgress, BuildResult } from "../../build/index.js";
import { UserError } from "../../errors.js";
import { typeName } from "../../gguf/ggml-types.js";
import { mixtureHParams } from "../../plan/hparams.js";
import { addScheduleOptions, scheduleFromOptions, type ScheduleCliOptions } from "../../plan/options.js";
import type { Plan } from "../../plan/planner.js";
import { bitsPerWeight, typeTable } from "../../plan/summary.js";
import { describeSurgery, formatSurgeryTable } from "../../surgery/index.js";
import { openTempFiles } from "../../gguf/writer.js";
import { defaultThreads, sharedQuantizePool } from "../../pool/index.js";
import { HQUANT_VERSION } from "../../version.js";

interface BuildCliOptions extends ScheduleCliOptions {
  threads?: string;
  allowRequantize?: boolean;
  splitMaxSize?: string;
  quiet?: boolean;
  json?: boolean;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function parseThreads(s: string | undefined): number {
  if (s === undefined) return defaultThreads();
  if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 1024) throw new UserError(`--threads: ${JSON.stringify(s)} is not a thread count (1–1024)`);
  return Number(s);
}

/** gguf-split's size syntax: a number of bytes with an optional K, M or G suffix (powers of 1000). */
export function parseSplitSize(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m || Number(m[1]) === 0) throw new UserError(`--split-max-size: ${JSON.stringify(s)} is not a size (e.g. 4G, 500M)`);
  const unit = { "": 1, K: 1e3, M: 1e6, G: 1e9 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Number(m[1]) * unit;
}

function planSummary(plan: Plan, input: string, output: string, threads: number): string {
  const s = plan.schedule;
  const lines = [`hquant build: ${input} → ${output}`];
  lines.push(`schedule ${s.name} (file type ${s.ftype}), ${plan.hparams.arch}, ${s.layerFtypes.length} layers, ${plan.tensors.length} tensors, ${threads} thread(s)`);
  // surgery changes the layer stack: show which source layers each final layer comes from
  if (plan.surgery) lines.push(...formatSurgeryTable(describeSurgery(plan.surgery.recipes), plan.surgery.inputLayers));
  const rows = typeTable(plan).map((r) => `  ${r.type.padEnd(7)} ${String(r.tensors).padStart(5)} tensors  ${mb(r.bytes).padStart(10)}`);
  lines.push(...rows);
  lines.push(`output tensor data ${mb(plan.tensorBytes)}, ${bitsPerWeight(plan).toFixed(2)} bits per weight`);
  return lines.join("\n");
}

/** A one-line progress display, redrawn in place at most every 100 ms (TTY only). */
function progressLine(stream: NodeJS.WriteStream): { update(p: BuildProgress): void; done(): void } {
  const start = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = performance.now();
      if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
      last = now;
      const seconds = (now - start) / 1000;
      const rate = seconds > 0 ? p.bytesDone / seconds : 0;
      const eta = rate > 0 ? (p.bytesTotal - p.bytesDone) / rate : 0;
      const line = `[${String(p.tensorIndex + 1).padStart(String(p.tensorCount).length)}/${p.tensorCount}] ${p.tensorName}  ${mb(p.bytesDone)}/${mb(p.bytesTotal)}  ${(rate / 1e6).toFixed(1)} MB/s  ETA ${eta.toFixed(0)}s`;
      const width = stream.columns ? stream.columns - 1 : 100;
      stream.write(`\r${line.slice(0, width).padEnd(width)}`);
      shown = true;
    },
    done() {
      if (shown) stream.write("\r\x1b[K");
    },
  };
}

/**
 * Ctrl-C: one line, the partial output removed, exit code 130. Runs before the writer's own
 * handler (registered later), and does not depend on it.
 */
function onInterrupt(): void {
  process.stderr.write("\nhquant: interrupted, no output written\n");
  for (const p of openTempFiles()) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
  process.exit(130);
}

function resultJson(r: BuildResult): object {
  return {
    input: r.input,
    output: r.output,
    files: r.outputs,
    schedule: r.plan.schedule.name,
    fileType: r.plan.fileType.name,
    layerFtypes: r.plan.schedule.layerFtypes,
    tensors: r.plan.tensors.length,
    fileBytes: r.fileSize,
    inputTensorBytes: r.inputBytes,
    outputTensorBytes: r.plan.tensorBytes,
    bitsPerWeight: bitsPerWeight(r.plan),
    threads: r.threads,
    seconds: r.seconds,
    inputMBPerSecond: r.inputBytes / 1e6 / r.seconds,
    imatrix: r.imatrix ?? null,
    types: typeTable(r.plan).map((t) => ({ type: t.type, tensors: t.tensors, bytes: t.bytes })),
    fallbacks: r.plan.fallbacks.map((f) => ({ name: f.name, from: typeName(f.from), to: typeName(f.to) })),
  };
}

export function registerBuild(program: Command): void {
  const cmd = program
    .command("build")
    .description("quantize a GGUF model with a per-layer schedule (byte-identical with llama-quantize)")
    .argument("<input>", "F32/F16/BF16 GGUF (or the first shard of a split model)")
    .argument("<output>", "output GGUF");
  addScheduleOptions(cmd)
    .option("-t, --threads <n>", "kernel threads (default: one per core)")
    .option("--allow-requantize", "allow quantized inputs (Q8_0 …) to be quantized again (quality loss)")
    .option("--split-max-size <size>", "split the output into shards of at most this size (e.g. 4G)")
    .option("--quiet", "print nothing but errors")
    .option("--json", "print a machine-readable summary at the end")
    .action(async (input: string, output: string, opts: BuildCliOptions) => {
      const threads = parseThreads(opts.threads);
      const splitMaxSize = parseSplitSize(opts.splitMaxSize);
      // the kernel threads start first, while the rest of the build code loads and the header is
      // read; the process ends without tearing them down (an idle pool does not hold it)
      const pool = sharedQuantizePool(threads);
      const { buildModel } = await import("../../build/index.js");
      const talk = !opts.quiet && !opts.json;
      const stderr = process.stderr;
      const progress = talk && stderr.isTTY ? progressLine(stderr) : undefined;
      let result: BuildResult;
      process.on("SIGINT", onInterrupt);
      process.on("SIGTERM", onInterrupt);
      try {
        result = await buildModel({
          input,
          output,
          schedule: (model) => scheduleFromOptions(opts, mixtureHParams(model.kv, input).nLayer),
          pool,
          startTime: 0, // the process's start: start-up is part of the run
          allowRequantize: opts.allowRequantize,
          splitMaxSize,
          hquant: { version: HQUANT_VERSION },
          onPlan: (plan) => {
            if (talk) stderr.write(planSummary(plan, input, output, threads) + "\n");
          },
          onWarning: (m) => {
            if (!opts.quiet) stderr.write(`hquant: warning: ${m}\n`);
          },
          onProgress: progress?.update,
        });
      } finally {
        process.off("SIGINT", onInterrupt);
        process.off("SIGTERM", onInterrupt);
        progress?.done();
      }
      if (opts.json) process.stdout.write(JSON.stringify(resultJson(result), null, 2) + "\n");
      else if (talk) {
        stderr.write(
          `wrote ${result.outputs.length > 1 ? `${result.outputs.length} shards ${result.outputs[0]} …` : output}: ${result.fileSize} bytes (${mb(result.fileSize)}), ${bitsPerWeight(result.plan).toFixed(2)} bpw, ` +
            `in ${result.seconds.toFixed(2)} s (${(result.inputBytes / 1e6 / result.seconds).toFixed(1)} MB/s of input)\n`,
        );
      }
    });
}
