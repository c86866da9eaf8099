// makeImatrix in the evaluation process (src/runtime/isolation.ts): the decode with the graph
// callback, the sums and the saves all run there, so a llama.cpp abort is a one-line error naming
// the model instead of the end of hquant. The output is written atomically at the end (and each
// --save-frequency save the same way), so a dead child leaves no partial file. Merging --in-file
// imatrices without a text runs no llama.cpp and stays in this process, as does HQUANT_ISOLATION=0.
import { cloneableOptions, isolationEnabled, runIsolated } from "../runtime/isolation.js";
import * as direct from "./run.js";
import type { MakeImatrixOptions, MakeImatrixResult } from "./run.js";

export async function makeImatrix(opts: MakeImatrixOptions): Promise<MakeImatrixResult> {
  if (!isolationEnabled() || !opts.text || !opts.model) return direct.makeImatrix(opts);
  return runIsolated<MakeImatrixResult>(
    { module: "imatrix/run.js", fn: "makeImatrix", args: [cloneableOptions(opts)], hooksArg: 0 },
    { file: opts.model, onProgress: opts.onProgress, signal: opts.signal },
  );
}

export type { ImatrixFormat, MakeImatrixOptions, MakeImatrixResult } from "./run.js";
