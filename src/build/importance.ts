// Which importance vector each tensor gets, exactly as llama_model_quantize_impl picks it: the entry
// of the same name; its length must be ne0 × n_expert (except token_embd, which llama.cpp then
// quantizes without one); a missing entry is only an error for types that need an imatrix
// (tensor_requires_imatrix). Expert tensors get one slice per expert.
import { UserError } from "../errors.js";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import type { Imatrix } from "../imatrix/index.js";
import type { PlannedTensor } from "../plan/planner.js";

const TOKEN_EMBD_NAMES = new Set(["token_embd.weight", "per_layer_token_embd.weight"]);

/**
 * Types ggml cannot quantize without importance weights at all (ggml_quantize_requires_imatrix):
 * llama.cpp aborts the process when such a tensor gets none (an --tensor-type / --pure / embedding
 * choice that tensor_requires_imatrix does not cover); hquant refuses before writing anything.
 */
export const GGML_REQUIRES_IMATRIX: ReadonlySet<GGMLType> = new Set<GGMLType>([GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ1_S]);

/** One vector per expert (each in its own small buffer, cheap to send to a worker), or null. */
export function importanceFor(t: PlannedTensor, imatrix: Imatrix | undefined): Float32Array[] | null {
  const slices = importanceSlices(t, imatrix);
  if (slices === null && GGML_REQUIRES_IMATRIX.has(t.dstType)) {
    const why = imatrix ? `${imatrix.file} has no usable entry for it` : "there is no --imatrix";
    throw new UserError(`${t.name}: type ${typeName(t.dstType)} cannot be made without importance weights, and ${why} (llama.cpp aborts)`);
  }
  return slices;
}

function importanceSlices(t: PlannedTensor, imatrix: Imatrix | undefined): Float32Array[] | null {
  const needed = t.requiresImatrix;
  const what = `type ${typeName(t.dstType)} (file type ${t.ftype})`;
  if (!imatrix) {
    if (needed) throw new UserError(`${t.name}: ${what} needs an importance matrix (--imatrix)`);
    return null;
  }
  const v = imatrix.vectors.get(t.name);
  if (!v) {
    if (needed) throw new UserError(`${imatrix.file}: no entry for tensor ${t.name}, which ${what} needs`);
    return null;
  }
  const ncols = t.shape[0]!;
  const nExperts = t.shape[2] ?? 1;
  if (v.length !== ncols * nExperts) {
    if (TOKEN_EMBD_NAMES.has(t.name) && !needed) return null;
    const expect = nExperts > 1 ? `${ncols * nExperts} (${ncols} × ${nExperts} experts)` : String(ncols);
    throw new UserError(`${imatrix.file}: entry ${t.name} has ${v.length} values, the tensor needs ${expect}`);
  }
  const slices: Float32Array[] = [];
  for (let e = 0; e < nExperts; e++) slices.push(v.slice(e * ncols, (e + 1) * ncols));
  return slices;
}
