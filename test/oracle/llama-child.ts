// Child process of llama-isolated.ts: runs the jobs of a JSON file, one result line per job on stdout.
import fs from "node:fs";
import { llamaQuantize } from "./llama.js";
import type { IsolatedJob } from "./llama-isolated.js";

const jobs = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as IsolatedJob[];
for (const job of jobs) {
  let line: string;
  try {
    llamaQuantize(job.input, job.output, job.opts);
    line = JSON.stringify({ status: "ok" });
  } catch (err) {
    line = JSON.stringify({ status: "failed", error: (err as Error).message });
  }
  fs.writeSync(1, line + "\n");
}
