// `hquant plan MODEL (--preset NAME | --schedule FILE | --ftype NAME) [options]`: every tensor's
// type and the exact output size, from the header alone (MODEL may be an http(s) URL).
import type { Command } from "commander";
import { openModel } from "../../gguf/reader.js";
import { outputFileSize, outputHeaderSize } from "../../gguf/writer.js";
import type { GGUFModel } from "../../gguf/model.js";
import { UserError } from "../../errors.js";
import { mixtureHParams } from "../../plan/hparams.js";
import { readImatrixInfo } from "../../imatrix/index.js";
import { outputMetadata, outputTensors, type ImatrixInfo } from "../../plan/metadata.js";
import { addScheduleOptions, scheduleFromOptions, type ScheduleCliOptions } from "../../plan/options.js";
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

export function registerPlan(program: Command): void {
  const cmd = program
    .command("plan")
    .description("show every tensor's type and the exact output size, from the header alone")
    .argument("<model>", "GGUF file (or first shard, or http(s) URL)");
  addScheduleOptions(cmd)
    .option("--json", "machine-readable output")
    .action(async (modelPath: string, opts: ScheduleCliOptions & { json?: boolean }) => {
      const model = await openModel(modelPath);
      const planned = planWithOptions(model, opts, modelPath);
      const { plan } = planned;
      // the quantize.imatrix.* keys the build writes: read from the imatrix's header (cheap)
      const imatrixFile = plan.schedule.imatrix;
      const sizes = imatrixFile !== undefined ? planSizes(model, plan, await readImatrixInfo(imatrixFile)) : planned.sizes;
      const text = opts.json ? JSON.stringify(planJson(plan, sizes, modelPath), null, 2) : formatPlan(plan, sizes, modelPath);
      process.stdout.write(text + "\n");
    });
}
