// The models and runs of the low-bit mixture goldens (test/fixtures/mixtures/make_lowbit_goldens.ts
// → lowbit-llamacpp-v0.4.0.json) and of the tests that check hquant against them: the bundled
// model with its imatrix, a GQA-4 model with tied embeddings and 320-wide ffn_down rows (every
// 256-block type falls back there, q1_0 has no fallback), and an 8-expert MoE model.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { makeModel, syntheticImatrix, SMALL_LLAMA, type FactoryOptions } from "./factory.js";
import type { RunOptions } from "./arch-models.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BUNDLED_MODEL = path.resolve(HERE, "../models/tinyllama-16l-f16.gguf");
export const BUNDLED_IMATRIX = path.resolve(HERE, "fixtures/imatrix/imatrix.gguf");

/** The file types of the low-bit issue (NVFP4 is recorded as refused). */
export const LOWBIT_FILE_TYPES: FileTypeName[] = [
  "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M",
  "TQ1_0", "TQ2_0", "MXFP4_MOE", "Q1_0", "Q2_0",
];

export interface LowbitModel {
  label: string;
  /** factory options, or undefined for the bundled model */
  factory?: FactoryOptions;
  /** the imatrix's name in the golden (quantize.imatrix.file records it as given) */
  imatrixName: string;
}

export const LOWBIT_MODELS: LowbitModel[] = [
  { label: "bundled tinyllama-16l", imatrixName: "imatrix.gguf" },
  {
    label: "llama GQA 4, tied, ffn rows 320",
    factory: { ...SMALL_LLAMA, nLayer: 8, nEmbd: 256, nHead: 8, nHeadKv: 2, nFf: 320, nVocab: 64, tied: true, seed: 131 },
    imatrixName: "imatrix.dat",
  },
  {
    label: "qwen3moe 8 experts",
    factory: { ...SMALL_LLAMA, arch: "qwen3", nLayer: 4, nEmbd: 256, nHead: 4, nHeadKv: 4, nFf: 256, nVocab: 64, nExpert: 8, seed: 132 },
    imatrixName: "imatrix.dat",
  },
];

/** Option runs on top of the file types: the new types named by --tensor-type and the embedding/output options, and --pure. */
export const LOWBIT_OPTION_RUNS: { ftype: FileTypeName; imatrix: boolean; options: RunOptions }[] = [
  { ftype: "IQ2_XXS", imatrix: true, options: { pure: true } },
  { ftype: "Q4_K_M", imatrix: true, options: { tensorTypes: [["ffn_down", "iq2_xs"], ["attn_(q|k)", "iq3_xxs"], ["ffn_up", "tq2_0"], ["ffn_gate", "q2_0"]] } },
  { ftype: "Q4_K_M", imatrix: false, options: { tokenEmbeddingType: "iq3_s", outputTensorType: "q1_0" } },
  { ftype: "Q5_K_M", imatrix: false, options: { tensorTypes: [["ffn_", "mxfp4"], ["attn_v", "nvfp4"]] } },
];

export interface LowbitRun {
  ftype: string;
  imatrix: boolean;
  options: RunOptions;
}

export function lowbitRuns(): LowbitRun[] {
  return [
    ...LOWBIT_FILE_TYPES.flatMap((ftype) => [false, true].map((imatrix) => ({ ftype, imatrix, options: {} }))),
    { ftype: "NVFP4", imatrix: false, options: {} },
    ...LOWBIT_OPTION_RUNS,
  ];
}

/** The model's file and its imatrix file (synthetic ones written into `dir`). */
export async function lowbitModelFiles(m: LowbitModel, dir: string): Promise<{ model: string; imatrix: string }> {
  if (!m.factory) return { model: BUNDLED_MODEL, imatrix: BUNDLED_IMATRIX };
  const model = await makeModel({ ...m.factory, dir });
  return { model, imatrix: await syntheticImatrix(model, m.factory.seed, dir) };
}
