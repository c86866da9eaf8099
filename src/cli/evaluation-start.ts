// Commands that evaluate with llama.cpp start their evaluation process (src/runtime/isolation.ts)
// first thing, so that its Node start and imports overlap this process's own (README, "Fixed cost
// per run"). bin/hquant.js calls this before it imports the CLI, hence a module of its own that
// imports nothing else.
import { startIsolation } from "../runtime/isolation.js";

/** Command → the modules its evaluation process will import. */
const EVALUATION_MODULES: Readonly<Record<string, readonly string[]>> = {
  bench: ["eval/evaluate.js"],
  scan: ["eval/evaluate.js"],
  tune: ["eval/evaluate.js"],
  imatrix: ["imatrix/run.js"],
  release: ["release/verify.js"],
};

/** Forks the evaluation process when `argv` (process.argv) names a command that evaluates (a running one is kept). */
export function startEvaluationProcess(argv: readonly string[]): void {
  const command = argv[2];
  if (command !== undefined && Object.hasOwn(EVALUATION_MODULES, command)) startIsolation(EVALUATION_MODULES[command]);
  // build verifies in the evaluation process only when asked
  else if (command === "build" && argv.includes("--verify")) startIsolation(["release/verify.js"]);
}
