// The architecture families of test/arch-rule-models.ts (loaders that say LLM_TYPE_70B other than
// llama's, 8 experts outside llama, n_gqa 4 outside llama, sliding-window and MLA-lite models) and
// the inputs whose required keys depend on other keys or whose keys have the wrong GGUF type:
// every file type × {no imatrix, imatrix} and the option runs against llama-quantize's recorded
// choices (test/fixtures/mixtures/arch-rules-llamacpp-v0.4.0.json, `make_arch_goldens.ts rules`),
// a few runs per family byte for byte against llama_model_quantize (HQUANT_ARCH_SWEEP=1: all of
// them), and each refused input refused by both.
import { checkAgainstLlamaQuantize, checkPlanGoldens } from "./arch-suite.js";
import { ruleFamilies, ruleRefusedInputs } from "./arch-rule-models.js";

checkPlanGoldens(
  "planner == llama-quantize v0.4.0 on the rule-changing families (golden mixtures)",
  new URL("./fixtures/mixtures/arch-rules-llamacpp-v0.4.0.json", import.meta.url),
  ruleFamilies(),
  ruleRefusedInputs(),
);

checkAgainstLlamaQuantize(ruleFamilies(), ruleRefusedInputs(), 300);
