// llama-quantize's COPY file type (params.only_copy): every tensor keeps its input type and bytes,
// only the metadata is rewritten; general.file_type then records the input's file type (the
// loader's ftype: general.file_type when present, else guessed from the most common tensor type).
import { GGMLType, tensorBytes, typeName } from "../gguf/ggml-types.js";
import { kvValue, type GGUFKV } from "../gguf/model.js";
import { FILE_TYPES, type FileType } from "./ftypes.js";
import { OUTPUT_ALIGNMENT, type Plan } from "./planner.js";

/** llama_model_loader's file type for its most common tensor type (its switch; others: ALL_F32). */
const LOADER_FTYPE_OF_TYPE: ReadonlyMap<GGMLType, number> = new Map([
  [GGMLType.F32, 0], [GGMLType.F16, 1], [GGMLType.BF16, 32],
  [GGMLType.Q4_0, 2], [GGMLType.Q4_1, 3], [GGMLType.Q5_0, 8], [GGMLType.Q5_1, 9], [GGMLType.Q8_0, 7],
  [GGMLType.Q2_K, 10], [GGMLType.Q3_K, 12], [GGMLType.Q4_K, 15], [GGMLType.Q5_K, 17], [GGMLType.Q6_K, 18],
  [GGMLType.TQ1_0, 36], [GGMLType.TQ2_0, 37],
  [GGMLType.IQ2_XXS, 19], [GGMLType.IQ2_XS, 20], [GGMLType.IQ2_S, 28], [GGMLType.IQ3_XXS, 23],
  [GGMLType.IQ1_S, 24], [GGMLType.IQ1_M, 31], [GGMLType.IQ4_NL, 25], [GGMLType.IQ4_XS, 30], [GGMLType.IQ3_S, 26],
  [GGMLType.NVFP4, 39], [GGMLType.Q1_0, 40], [GGMLType.Q2_0, 41],
]);

/** LLAMA_FTYPE_GUESSED: the loader marks a file type it guessed, and COPY writes it so marked. */
const LLAMA_FTYPE_GUESSED = 1024;

/**
 * llama_model_loader's guess, marked as guessed: the file type of the most common tensor type,
 * counted over its weights map in name order (a tie goes to the type that reached the count first).
 */
function guessedFileType(plan: Plan): number {
  const byName = [...plan.tensors].sort((a, b) => Buffer.compare(Buffer.from(a.name, "utf8"), Buffer.from(b.name, "utf8")));
  const counts = new Map<GGMLType, number>();
  let best: GGMLType = GGMLType.F32;
  let most = 0;
  for (const t of byName) {
    const n = (counts.get(t.srcType) ?? 0) + 1;
    counts.set(t.srcType, n);
    if (n > most) [best, most] = [t.srcType, n];
  }
  return (LOADER_FTYPE_OF_TYPE.get(best) ?? 0) | LLAMA_FTYPE_GUESSED;
}

export function copyPlan(plan: Plan, inputKv: readonly GGUFKV[], _source: string): Plan {
  const declared = kvValue(inputKv, "general.file_type");
  const id = typeof declared === "number" ? declared : guessedFileType(plan);
  const known = FILE_TYPES.find((f) => f.id === id);
  // a file type hquant cannot make (or a guessed one) is still recorded as it was
  const fileType: FileType = known ?? { name: plan.fileType.name, id, defaultType: plan.fileType.defaultType };
  let offset = 0;
  let tensorBytesTotal = 0;
  const tensors = plan.tensors.map((t) => {
    const bytes = tensorBytes(t.srcType, t.shape);
    const copied = { ...t, dstType: t.srcType, reason: `COPY (${typeName(t.srcType)})`, bytes, offset, requiresImatrix: false };
    offset += Math.ceil(bytes / OUTPUT_ALIGNMENT) * OUTPUT_ALIGNMENT;
    tensorBytesTotal += bytes;
    return copied;
  });
  return { ...plan, fileType, tensors, tensorBytes: tensorBytesTotal, dataBytes: offset, fallbacks: [] };
}
