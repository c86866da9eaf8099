// `hquant plan MODEL (--preset NAME | --schedule FILE | --ftype NAME) [options]`: every tensor's
// type and the exact output size, from the header alone (MODEL may be an http(s) URL).
import type { Command } from "commander";
import { openModel } from "../../gguf/reader.js";
import { outputFileSize, outputHeaderSize } from "../../gguf/writer.js";
import type { GGUFModel } from "../../gguf/model.js";
import { mixtureHParams } from "../../plan/hparams.js";
import { outputMetadata, outputTensors } from "../../plan/metadata.js";
import { addScheduleOptions, scheduleFromOptions, type ScheduleCliOptions } from "../../plan/options.js";
import { OUTPUT_ALIGNMENT, planModel, type Plan } from "../../plan/planner.js";
import { formatPlan, planJson, type PlanSizes } from "../../plan/summary.js";

export const HQUANT_VERSION = "0.1.0";

/** Plan a model with the shared schedule options, and size the output exactly. */
export function planWithOptions(model: GGUFModel, opts: ScheduleCliOptions, source: string): { plan: Plan; sizes: PlanSizes } {
  const hp = mixtureHParams(model.kv, source);
  const schedule = scheduleFromOptions(opts, hp.nLayer);
  const plan = planModel(model, schedule, source);
  // the exact imatrix keys are only known once the imatrix is read (build); the plan sizes the
  // file without them
  const kv = outputMetadata(model.kv, plan, { hquant: { version: HQUANT_VERSION } });
  const tensors = outputTensors(plan);
  const sizes: PlanSizes = {
    headerBytes: outputHeaderSize(kv, tensors, OUTPUT_ALIGNMENT),
    fileBytes: outputFileSize(kv, tensors, OUTPUT_ALIGNMENT),
    inputTensorBytes: model.tensors.reduce((a, t) => a + t.bytes, 0),
  };
  return { plan, sizes };
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
      const { plan, sizes } = planWithOptions(model, opts, modelPath);
      const text = opts.json ? JSON.stringify(planJson(plan, sizes, modelPath), null, 2) : formatPlan(plan, sizes, modelPath);
      process.stdout.write(text + "\n");
    });
}
