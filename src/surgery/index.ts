// Layer surgery: delete, swap, duplicate, interpolate, merge (LaCo) before quantizing.
// schema.ts validates the schedule's `surgery` list, ops.ts turns it into one recipe per final
// layer, tensors.ts / metadata.ts map the header (tensor list, block_count, per-layer arrays,
// imatrix), arith.ts / chunk.ts compute the data of interpolated and merged tensors in f32.
export { validateSurgery, surgerySchema, SURGERY_SCHEMA_URL, SURGERY_OPS } from "./schema.js";
export {
  applySurgery,
  identityRecipes,
  isIdentity,
  formatRecipe,
  recipeSources,
  primarySource,
  normRecipe,
  mapRecipe,
  MAX_LAYERS,
  type SurgeryOp,
  type Recipe,
  type LayerRecipe,
} from "./ops.js";
export { surgeryTensors, describeSurgery, formatSurgeryTable, isNormTensor, type SurgeryTensor, type SurgeryRow, type SurgeryInputTensor } from "./tensors.js";
export { surgeryMetadata, remapImatrix, type SurgeryMetadata } from "./metadata.js";
export { combineRows, interpolationWeights } from "./arith.js";
export { surgeryChunkF32, inputRowsF32, type SurgeryChunkInput } from "./chunk.js";
