// A vocabulary-math worker (vocab-math.ts): runs jobs' positions on its own kernels instance.
import { parentPort } from "node:worker_threads";
import { runJob, VocabKernels, type VocabJob } from "./vocab-math.js";

const kernels = new VocabKernels();
parentPort!.on("message", (job: VocabJob) => {
  try {
    runJob(kernels, job);
    parentPort!.postMessage({});
  } catch (err) {
    parentPort!.postMessage({ error: String(err instanceof Error ? err.message : err) });
  }
});
