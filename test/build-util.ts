// Shared by the build tests: a uniform (plain llama.cpp file type) build of a model, and the
// llama_model_quantize oracle build of the same, compared byte for byte.
import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { buildModel } from "../src/build/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import type { QuantizePool } from "../src/pool/index.js";
import { llamaQuantize, oracleReadHeader } from "./oracle/llama.js";

export const MODEL = path.resolve(__dirname, "../models/tinyllama-16l-f16.gguf");
export const IMATRIX_GGUF = path.resolve(__dirname, "fixtures/imatrix/imatrix.gguf");
export const IMATRIX_DAT = path.resolve(__dirname, "fixtures/imatrix/imatrix.dat");

/** Every plain file type of the planner issue. */
export const PLAIN_FILE_TYPES: FileTypeName[] = [
  "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
  "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "IQ4_XS", "F16", "BF16", "F32",
];

/** The first tensor whose info or data differs, to make a failure readable. */
export function firstDifference(refPath: string, oursPath: string): string {
  const a = oracleReadHeader(refPath);
  const b = oracleReadHeader(oursPath);
  if (a.tensors.length !== b.tensors.length) return `tensor count ${a.tensors.length} vs ${b.tensors.length}`;
  const fa = fs.readFileSync(refPath);
  const fb = fs.readFileSync(oursPath);
  for (let i = 0; i < a.tensors.length; i++) {
    const x = a.tensors[i]!;
    const y = b.tensors[i]!;
    if (JSON.stringify(x) !== JSON.stringify(y)) return `tensor info ${i}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`;
    const dx = fa.subarray(a.dataOffset + x.offset, a.dataOffset + x.offset + x.size);
    const dy = fb.subarray(b.dataOffset + y.offset, b.dataOffset + y.offset + y.size);
    if (!dx.equals(dy)) return `tensor ${x.name} (type ${x.type}): data differs`;
  }
  if (a.dataOffset !== b.dataOffset || a.kvCount !== b.kvCount) return `metadata: ${a.kvCount} keys, data at ${a.dataOffset} vs ${b.kvCount} keys, data at ${b.dataOffset}`;
  return "metadata bytes differ";
}

/**
 * Builds `ftype` with hquant (no hquant.* keys, so the metadata must be llama.cpp's exactly) and
 * with llama_model_quantize, and expects identical files.
 */
export async function expectSameAsLlama(tmp: string, ftype: FileTypeName, pool: QuantizePool, imatrix?: string): Promise<void> {
  const tag = `${ftype}${imatrix ? "-imat" : ""}`;
  const ref = path.join(tmp, `${tag}.llama.gguf`);
  const ours = path.join(tmp, `${tag}.hquant.gguf`);
  try {
    llamaQuantize(MODEL, ref, { ftype, threads: 2, imatrixFile: imatrix });
    await buildModel({
      input: MODEL,
      output: ours,
      pool,
      imatrix,
      schedule: (m) => uniformSchedule(ftype, mixtureHParams(m.kv).nLayer),
    });
    const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
    expect(same, same ? "" : `${tag}: ${firstDifference(ref, ours)}`).toBe(true);
  } finally {
    fs.rmSync(ref, { force: true });
    fs.rmSync(ours, { force: true });
  }
}
