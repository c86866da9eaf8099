// llama.cpp file types (llama_ftype in include/llama.h) that hquant can produce, with the default
// tensor type of each (llama_ftype_get_default_type). The id is what `general.file_type` stores.
import { GGMLType } from "../gguf/ggml-types.js";

export type FileTypeName =
  | "F32" | "F16" | "BF16"
  | "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1" | "Q8_0"
  | "Q2_K" | "Q2_K_S" | "Q3_K_S" | "Q3_K_M" | "Q3_K_L"
  | "Q4_K_S" | "Q4_K_M" | "Q5_K_S" | "Q5_K_M" | "Q6_K"
  | "IQ4_NL" | "IQ4_XS"
  | "IQ1_S" | "IQ1_M" | "IQ2_XXS" | "IQ2_XS" | "IQ2_S" | "IQ2_M"
  | "IQ3_XXS" | "IQ3_XS" | "IQ3_S" | "IQ3_M"
  | "TQ1_0" | "TQ2_0" | "MXFP4_MOE" | "Q1_0" | "Q2_0";

export interface FileType {
  readonly name: FileTypeName;
  /** llama_ftype value */
  readonly id: number;
  /** llama_ftype_get_default_type */
  readonly defaultType: GGMLType;
}

function ft(name: FileTypeName, id: number, defaultType: GGMLType): FileType {
  return { name, id, defaultType };
}

/**
 * Roughly by size (the low-bit types first), which is also the order error messages list them.
 * NVFP4 (llama_ftype 39) is absent: llama.cpp v0.4.0 has no default type for it and refuses it.
 */
export const FILE_TYPES: readonly FileType[] = [
  ft("Q1_0", 40, GGMLType.Q1_0),
  ft("IQ1_S", 24, GGMLType.IQ1_S),
  ft("TQ1_0", 36, GGMLType.TQ1_0),
  ft("IQ1_M", 31, GGMLType.IQ1_M),
  ft("IQ2_XXS", 19, GGMLType.IQ2_XXS),
  ft("TQ2_0", 37, GGMLType.TQ2_0),
  ft("Q2_0", 41, GGMLType.Q2_0),
  ft("IQ2_XS", 20, GGMLType.IQ2_XS),
  // IQ2_S files are mostly iq2_xs, IQ2_M files mostly iq2_s (llama_ftype_get_default_type)
  ft("IQ2_S", 28, GGMLType.IQ2_XS),
  ft("IQ2_M", 29, GGMLType.IQ2_S),
  ft("Q2_K", 10, GGMLType.Q2_K),
  ft("Q2_K_S", 21, GGMLType.Q2_K),
  ft("IQ3_XXS", 23, GGMLType.IQ3_XXS),
  ft("IQ3_XS", 22, GGMLType.IQ3_S),
  ft("IQ3_S", 26, GGMLType.IQ3_S),
  ft("IQ3_M", 27, GGMLType.IQ3_S),
  ft("Q3_K_S", 11, GGMLType.Q3_K),
  ft("Q3_K_M", 12, GGMLType.Q3_K),
  ft("Q3_K_L", 13, GGMLType.Q3_K),
  ft("IQ4_NL", 25, GGMLType.IQ4_NL),
  ft("IQ4_XS", 30, GGMLType.IQ4_XS),
  ft("Q4_0", 2, GGMLType.Q4_0),
  ft("Q4_1", 3, GGMLType.Q4_1),
  // experts mxfp4, everything else q8_0 (the MXFP4 rule of llama_tensor_get_type_impl)
  ft("MXFP4_MOE", 38, GGMLType.MXFP4),
  ft("Q4_K_S", 14, GGMLType.Q4_K),
  ft("Q4_K_M", 15, GGMLType.Q4_K),
  ft("Q5_0", 8, GGMLType.Q5_0),
  ft("Q5_1", 9, GGMLType.Q5_1),
  ft("Q5_K_S", 16, GGMLType.Q5_K),
  ft("Q5_K_M", 17, GGMLType.Q5_K),
  ft("Q6_K", 18, GGMLType.Q6_K),
  ft("Q8_0", 7, GGMLType.Q8_0),
  ft("F16", 1, GGMLType.F16),
  ft("BF16", 32, GGMLType.BF16),
  ft("F32", 0, GGMLType.F32),
];

export const FILE_TYPE_NAMES: readonly FileTypeName[] = FILE_TYPES.map((f) => f.name);

const BY_NAME = new Map<string, FileType>(FILE_TYPES.map((f) => [f.name, f]));

/** llama-quantize's aliases (QUANT_OPTIONS in tools/quantize/quantize.cpp): the _M mixtures. */
export const FILE_TYPE_ALIASES: Readonly<Record<string, FileTypeName>> = { Q3_K: "Q3_K_M", Q4_K: "Q4_K_M", Q5_K: "Q5_K_M" };

/**
 * Case-insensitive, as llama-quantize's try_parse_ftype: a name, an alias (Q4_K → Q4_K_M) or the
 * numeric llama_ftype (15 → Q4_K_M).
 */
export function fileTypeByName(name: string): FileType | undefined {
  const upper = name.trim().toUpperCase();
  const direct = BY_NAME.get(upper) ?? BY_NAME.get(FILE_TYPE_ALIASES[upper] ?? "");
  if (direct) return direct;
  if (/^\d+$/.test(upper)) return FILE_TYPES.find((f) => f.id === Number(upper));
  return undefined;
}

/** llama-quantize's COPY: every tensor copied as it is, only the metadata rewritten. */
export function isCopyFileType(name: string): boolean {
  return name.trim().toUpperCase() === "COPY";
}

/**
 * llama_ftype values llama.cpp names but refuses to write (llama_ftype_get_default_type has no
 * case for them: "invalid output file type"), with why, for a clearer error than "unknown".
 */
export const REFUSED_FILE_TYPES: Readonly<Record<string, { id: number; why: string }>> = {
  NVFP4: { id: 39, why: "llama.cpp v0.4.0 has no default tensor type for it and refuses it; name nvfp4 tensors with --tensor-type instead" },
};

/** The refused file type a name (or number) stands for, if any. */
export function refusedFileType(name: string): string | undefined {
  const upper = name.trim().toUpperCase();
  for (const [n, r] of Object.entries(REFUSED_FILE_TYPES)) if (upper === n || upper === String(r.id)) return `file type ${n} (llama_ftype ${r.id}): ${r.why}`;
  return undefined;
}

export function mustFileType(name: string): FileType {
  const f = fileTypeByName(name);
  if (!f) throw new Error(`unknown file type ${name}`);
  return f;
}

/**
 * The ggml types hquant's kernels can write (and so the only types a user may ask for by name:
 * --tensor-type, --token-embedding-type, --output-tensor-type). Every type the mixture rules of
 * FILE_TYPES can produce is among them.
 */
export const TARGET_TYPES: readonly GGMLType[] = [
  GGMLType.F32, GGMLType.F16, GGMLType.BF16,
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
  GGMLType.IQ4_NL, GGMLType.IQ4_XS,
  GGMLType.IQ1_S, GGMLType.IQ1_M, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S,
  GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.TQ1_0, GGMLType.TQ2_0,
  GGMLType.MXFP4, GGMLType.NVFP4, GGMLType.Q1_0, GGMLType.Q2_0,
];
