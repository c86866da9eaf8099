// `hquant build IN OUT [TYPE [NTHREADS]] [options]`: plan, print a one-screen summary, quantize in
// the worker pool, stream the GGUF out (temp file + rename). A thin layer over the library's build().
import type { Command } from "commander";
import type { BuildResult } from "../../build/index.js";
import { typeName } from "../../gguf/ggml-types.js";
import { build } from "../../index.js";
import type { Plan } from "../../plan/planner.js";
import { bitsPerWeight, fileTypeNote, typeTable, usedMixtures } from "../../plan/summary.js";
import { describeMixture } from "../../plan/schedule.js";
import { describeSurgery, formatSurgeryTable } from "../../surgery/index.js";
import { defaultThreads, sharedQuantizePool } from "../../pool/index.js";
import { jsonTarget, writeJson } from "../args.js";
import { addBuildOptions, applyPositionals, applyRecipeOptions, buildOptionsFromCli, type BuildCliOptions } from "../build-options.js";
import { progressBar } from "../progress.js";
import { commandSignal } from "../signals.js";
import { verifyOutput } from "../../release/verify.js";
import fs from "node:fs";

export { parseSplitSize } from "../build-options.js";

// MiB, as plan and inspect print sizes
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

function planSummary(plan: Plan, input: string, output: string, threads: number, imatrix: BuildResult["imatrix"], imatrixFromSchedule: boolean): string {
  const s = plan.schedule;
  const lines = [`hquant build: ${input} → ${output}`];
  lines.push(`schedule ${s.name} (${fileTypeNote(s)}), ${plan.hparams.arch}, ${s.layerFtypes.length} layers, ${plan.tensors.length} tensors, ${threads} thread(s)`);
  for (const m of usedMixtures(s)) lines.push(`mixture ${describeMixture(m)}`);
  if (imatrix) {
    const from = imatrixFromSchedule ? " (named by the schedule's \"imatrix\")" : "";
    lines.push(`imatrix ${imatrix.file}${from}: ${imatrix.entries} entries, ${imatrix.used} used, ${imatrix.unused} unused`);
  }
  // surgery changes the layer stack: show which source layers each final layer comes from
  if (plan.surgery) lines.push(...formatSurgeryTable(describeSurgery(plan.surgery.recipes), plan.surgery.inputLayers));
  const rows = typeTable(plan).map((r) => `  ${r.type.padEnd(7)} ${String(r.tensors).padStart(5)} tensors  ${mib(r.bytes).padStart(11)}`);
  lines.push(...rows);
  lines.push(`output tensor data ${mib(plan.tensorBytes)}, ${bitsPerWeight(plan).toFixed(2)} bits per weight`);
  return lines.join("\n");
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
    .argument("<input>", "F32/F16/BF16 GGUF (or the first shard of a split model, or an http(s) URL)")
    .argument("<output>", "output GGUF (the shards' prefix for a split output)")
    .argument("[type]", "file type as llama-quantize takes it (Q4_K_M, Q4_K, 15, COPY…) or a preset name")
    .argument("[nthreads]", "worker threads (as -t)");
  cmd.option("--verify", "load the output in llama.cpp, check it against the plan and decode a prompt; a file that fails is removed (exit 1)");
  addBuildOptions(cmd).action(async (input: string, output: string, type: string | undefined, nthreads: string | undefined, opts: BuildCliOptions & { verify?: boolean }) => {
    applyPositionals(opts, type, nthreads);
    const recipeWarnings = applyRecipeOptions(opts);
    if (!opts.quiet) for (const w of recipeWarnings) process.stderr.write(`hquant: warning: ${w}\n`);
    const options = buildOptionsFromCli(opts);
    const json = jsonTarget(opts.json);
    const threads = options.threads ?? defaultThreads();
    // the kernel threads start now, while the header is read; the process ends without tearing
    // them down (an idle pool does not hold it)
    const pool = sharedQuantizePool(threads);
    const talk = !opts.quiet && json !== "-";
    const stderr = process.stderr;
    const bar = progressBar({ label: "quantizing", unit: "bytes", enabled: talk });
    let result: BuildResult;
    try {
      result = await build({
        ...options,
        input,
        output,
        threads,
        pool,
        startTime: 0, // the process's start: start-up is part of the run
        schedule: opts,
        signal: commandSignal(),
        onPlan: (plan, imatrix) => {
          if (talk) stderr.write(planSummary(plan, input, output, threads, imatrix, opts.imatrix === undefined) + "\n");
        },
        onWarning: (m) => {
          if (!opts.quiet) bar.log(`hquant: warning: ${m}`);
        },
        onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, p.tensorName),
      });
    } finally {
      bar.done();
    }
    if (opts.verify) {
      // a file llama.cpp refuses is not left looking finished
      try {
        const v = await verifyOutput(result.outputs[0]!, { plan: result.plan }, { threads });
        if (talk) stderr.write(`verified ${result.outputs[0]}: ${v.tensors} tensors as planned, loaded in llama.cpp, ${v.tokens} prompt tokens decoded, every logit finite\n`);
      } catch (err) {
        for (const f of result.outputs) fs.rmSync(f, { force: true });
        throw err;
      }
    }
    if (json !== undefined) writeJson(json, JSON.stringify(resultJson(result), null, 2));
    if (talk) {
      stderr.write(
        `wrote ${result.outputs.length > 1 ? `${result.outputs.length} shards ${result.outputs[0]} …` : output}: ${result.fileSize} bytes (${mib(result.fileSize)}), ${bitsPerWeight(result.plan).toFixed(2)} bpw, ` +
          `in ${result.seconds.toFixed(2)} s (${(result.inputBytes / 1048576 / result.seconds).toFixed(1)} MiB/s of input)\n`,
      );
    }
  });
}
