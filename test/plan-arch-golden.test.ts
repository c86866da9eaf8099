// The planner against llama-quantize's recorded choices on every architecture family of
// test/arch-models.ts (test/fixtures/mixtures/arch-families-llamacpp-v0.4.0.json, made by
// make_arch_goldens.ts with the live oracle): for every file type × {no imatrix, imatrix} and the
// option runs, the same type for every tensor in the same order and the exact output file size —
// or hquant refuses where llama.cpp refused (or wrote a file its own header contradicts). Header
// only, so the whole sweep runs in the default suite.
import { archFamilies, refusedInputs } from "./arch-models.js";
import { checkPlanGoldens } from "./arch-suite.js";

checkPlanGoldens(
  "planner == llama-quantize v0.4.0 on every architecture family (golden mixtures)",
  new URL("./fixtures/mixtures/arch-families-llamacpp-v0.4.0.json", import.meta.url),
  archFamilies(),
  refusedInputs(),
);
