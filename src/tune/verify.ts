// Verification: write the schedule, build it with `hquant build --schedule`'s own path (the schedule
// file read back, planned, built), check the file is the predicted size to the byte, and measure it.
// The additive model is not exact (tensors interact), so several candidate allocations are built
// and measured on the calibration chunks, and the measured best is the answer.
import fs from "node:fs";
import path from "node:path";
import { buildModel } from "../build/index.js";
import { evaluateAgainstBase, type BaseEvaluation, type EvalOptions } from "../eval/isolated.js";
import type { KldSummary } from "../eval/kld-math.js";
import { scheduleFromOptions } from "../plan/options.js";
import type { QuantizePool } from "../pool/index.js";
import { HQUANT_VERSION } from "../version.js";
import { writeJsonAtomic } from "./cache.js";
import type { ScheduleFile } from "../plan/schedule.js";

export interface BuiltSchedule {
  scheduleFile: string;
  gguf: string;
  fileBytes: number;
}

/** Writes `schedule` to `scheduleFile` and builds it into `gguf` exactly as `hquant build --schedule` does. */
export async function buildSchedule(base: string, schedule: ScheduleFile, scheduleFile: string, gguf: string, nLayer: number, pool: QuantizePool, expectedBytes: number): Promise<BuiltSchedule> {
  writeJsonAtomic(scheduleFile, schedule);
  const built = await buildModel({
    input: base,
    output: gguf,
    pool,
    hquant: { version: HQUANT_VERSION },
    schedule: scheduleFromOptions({ schedule: scheduleFile }, nLayer),
  });
  if (built.fileSize !== expectedBytes) {
    fs.rmSync(gguf, { force: true });
    throw new Error(`tuned schedule ${path.basename(scheduleFile)}: built ${built.fileSize} bytes, planned ${expectedBytes}`);
  }
  return { scheduleFile, gguf, fileBytes: built.fileSize };
}

export async function measureFile(base: BaseEvaluation, gguf: string, opts: EvalOptions): Promise<KldSummary> {
  return evaluateAgainstBase(base, gguf, opts);
}
