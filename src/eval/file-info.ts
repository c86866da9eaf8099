// What the report says about a GGUF file without loading it: size, bits per weight (tensor data
// bits over parameter count, as llama-quantize's "quant size" line), file type and imatrix use.
import fs from "node:fs";
import { openModel } from "../gguf/reader.js";
import { kvValue } from "../gguf/model.js";

/** llama_ftype names (include/llama.h), by number. */
const FTYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
  12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
  19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
  26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
  36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
};

export interface FileInfo {
  bytes: number;
  tensorBytes: number;
  params: number;
  bpw: number;
  ftype: string;
  imatrix: boolean;
  /** hquant preset/schedule name when the file records one (hquant.schedule.name) */
  preset?: string;
}

export function ftypeName(ftype: number | undefined): string {
  if (ftype === undefined) return "?";
  return FTYPE_NAMES[ftype & ~1024] ?? `ftype ${ftype}`;
}

export async function readFileInfo(file: string): Promise<FileInfo> {
  const model = await openModel(file);
  const bytes = model.files.reduce((s, f) => s + (f.fileSize || fs.statSync(f.path).size), 0);
  let tensorBytes = 0;
  let params = 0;
  for (const t of model.tensors) {
    tensorBytes += t.bytes;
    params += t.shape.reduce((p, d) => p * d, 1);
  }
  const ft = kvValue(model.kv, "general.file_type");
  const preset = kvValue(model.kv, "hquant.schedule.name");
  return {
    bytes,
    tensorBytes,
    params,
    bpw: params ? (tensorBytes * 8) / params : NaN,
    ftype: ftypeName(typeof ft === "number" ? ft : typeof ft === "bigint" ? Number(ft) : undefined),
    imatrix: kvValue(model.kv, "quantize.imatrix.entries_count") !== undefined || kvValue(model.kv, "quantize.imatrix.file") !== undefined,
    preset: typeof preset === "string" ? preset : undefined,
  };
}
