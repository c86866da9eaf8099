// llama-quantize's COPY file type (params.only_copy): every tensor keeps its input type and bytes,
// only the metadata is rewritten; general.file_type then records the input's file type (the
// loader's ftype: general.file_type when present, else guessed from the most common tensor type).
import { UserError } from "../errors.js";
import { GGMLType, tensorBytes, typeName } from "../gguf/ggml-types.js";
import { kvValue, type GGUFKV } from "../gguf/model.js";
import { FILE_TYPES, type FileType } from "./ftypes.js";
import { OUTPUT_ALIGNMENT, type Plan } from "./planner.js";

/** llama_model_loader's guess: the file type whose default type is the most common tensor type. */
function guessedFileType(plan: Plan): number {
  const counts = new Map<GGMLType, number>();
  for (const t of plan.tensors) counts.set(t.srcType, (counts.get(t.srcType) ?? 0) + 1);
  let best: GGMLType = GGMLType.F32;
  let most = -1;
  for (const [type, n] of counts) if (n > most) [best, most] = [type, n];
  // the _M mixture for k-quants, as the loader's switch does
  const preferred = FILE_TYPES.find((f) => f.defaultType === best && (f.name.endsWith("_M") || !/_K/.test(f.name)));
  return (preferred ?? FILE_TYPES.find((f) => f.defaultType === best))?.id ?? 0;
}

export function copyPlan(plan: Plan, inputKv: readonly GGUFKV[], source: string): Plan {
  const declared = kvValue(inputKv, "general.file_type");
  const id = typeof declared === "number" ? declared : guessedFileType(plan);
  const known = FILE_TYPES.find((f) => f.id === id);
  // a file type hquant cannot make is still recorded as it was
  const fileType: FileType = known ?? { name: plan.fileType.name, id, defaultType: plan.fileType.defaultType };
  if (!known && typeof declared !== "number") throw new UserError(`${source}: COPY: cannot tell the input's file type`);
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
