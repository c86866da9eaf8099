// `hquant plan MODEL [OUT] [TYPE] (--preset NAME | --schedule FILE | --ftype NAME) [build options]`:
// every tensor's type and the exact output size, from the header alone (MODEL may be an http(s)
// URL). Takes every build option and refuses what build would refuse, with the same message.
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { plan } from "../../index.js";
import { jsonTarget, writeJson } from "../args.js";
import { addBuildOptions, applyPositionals, applyRecipeOptions, buildOptionsFromCli, isTypeWord, type BuildCliOptions } from "../build-options.js";
import { commandSignal } from "../signals.js";
import { outputFileSize, outputHeaderSize } from "../../gguf/writer.js";
import type { GGUFModel } from "../../gguf/model.js";
import { mixtureHParams } from "../../plan/hparams.js";
import { outputMetadata, outputTensors, type ImatrixInfo } from "../../plan/metadata.js";
import { scheduleFromOptions, type ScheduleCliOptions } from "../../plan/options.js";
import { OUTPUT_ALIGNMENT, planModel, type Plan } from "../../plan/planner.js";
import { formatPlan, planJson, type PlanSizes } from "../../plan/summary.js";
import { HQUANT_VERSION } from "../../version.js";

/**
 * Plan a model with the shared schedule options, and size the output exactly. With an imatrix the
 * header also holds quantize.imatrix.*: pass what readImatrixInfo read (planSizes), or the sizes
 * are those of the file without those keys.
 */
export function planWithOptions(model: GGUFModel, opts: ScheduleCliOptions, source: string, imatrix?: ImatrixInfo): { plan: Plan; sizes: PlanSizes } {
  const hp = mixtureHParams(model.kv, source);
  const schedule = scheduleFromOptions(opts, hp.nLayer);
  const plan = planModel(model, schedule, source);
  try {
    return { plan, sizes: planSizes(model, plan, imatrix) };
  } catch (err) {
    // the header check (general.alignment) does not know the file
    if (err instanceof UserError) throw new UserError(`${source}: ${err.message}`);
    throw err;
  }
}

/** The output's exact header and file size, as `hquant build` writes it (one file). */
export function planSizes(model: GGUFModel, plan: Plan, imatrix?: ImatrixInfo): PlanSizes {
  const kv = outputMetadata(model.kv, plan, { imatrix, hquant: { version: HQUANT_VERSION } });
  const tensors = outputTensors(plan);
  return {
    headerBytes: outputHeaderSize(kv, tensors, OUTPUT_ALIGNMENT),
    fileBytes: outputFileSize(kv, tensors, OUTPUT_ALIGNMENT),
    inputTensorBytes: model.tensors.reduce((a, t) => a + t.bytes, 0),
  };
}

/** `plan MODEL [OUT] [TYPE] [NTHREADS]`: as llama-quantize, a word that is a file type is the type. */
function planPositionals(rest: string[]): { output?: string; type?: string; threads?: string } {
  if (rest.length > 3) throw new UserError(`too many arguments: ${rest.join(" ")}`);
  if (rest.length > 0 && isTypeWord(rest[0]!)) {
    if (rest.length > 2) throw new UserError(`too many arguments: ${rest.join(" ")}`);
    return { type: rest[0], threads: rest[1] };
  }
  return { output: rest[0], type: rest[1], threads: rest[2] };
}

export function registerPlan(program: Command): void {
  const cmd = program
    .command("plan")
    .description("show every tensor's type and the exact output size, from the header alone")
    .argument("<model>", "GGUF file (or first shard, or http(s) URL)")
    .argument("[out-type-nthreads...]", "OUT TYPE NTHREADS as for build (OUT: the output paths are checked; TYPE: a file type or preset)")
    .usage("<model> [out] [type] [nthreads] [options]");
  addBuildOptions(cmd).action(async (modelPath: string, rest: string[], opts: BuildCliOptions) => {
    const { output, type, threads } = planPositionals(rest);
    applyPositionals(opts, type, threads);
    const recipeWarnings = applyRecipeOptions(opts);
    if (!opts.quiet) for (const w of recipeWarnings) process.stderr.write(`hquant: warning: ${w}\n`);
    const options = buildOptionsFromCli(opts);
    const json = jsonTarget(opts.json);
    const planned = await plan({
      ...options,
      input: modelPath,
      output,
      schedule: opts,
      signal: commandSignal(),
      onWarning: (m) => {
        if (!opts.quiet) process.stderr.write(`hquant: warning: ${m}\n`);
      },
    });
    if (json !== undefined) writeJson(json, JSON.stringify(planJson(planned.plan, planned.sizes, modelPath), null, 2));
    if (json !== "-" && !opts.quiet) process.stdout.write(formatPlan(planned.plan, planned.sizes, modelPath) + "\n");
  });
}
