// llama_model_quantize in child processes: llama.cpp aborts the whole process (GGML_ASSERT,
// GGML_ABORT) on some inputs, which must not take the test runner down. A batch of jobs runs in
// one child; a job that kills its child is reported as an abort and the rest go on in a new one.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { LlamaQuantizeOptions } from "./llama.js";

export interface IsolatedJob {
  input: string;
  output: string;
  opts: LlamaQuantizeOptions;
}

export type IsolatedResult =
  | { status: "ok" }
  /** llama_model_quantize returned non-zero: the reason llama.cpp logged */
  | { status: "failed"; error: string }
  /** the process died (abort): the last lines it wrote to stderr */
  | { status: "aborted"; error: string };

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(HERE, "llama-child.ts");
const TSX = path.join(HERE, "../../node_modules/tsx/dist/loader.mjs");

/** One child's run: its exit and output (asynchronous, so the test worker keeps answering its runner). */
function runChild(jobFile: string): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", TSX, CHILD, jobFile], { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
  });
}

/** Runs every job, in order, in as few child processes as the aborts allow. */
export async function llamaQuantizeIsolated(jobs: readonly IsolatedJob[]): Promise<IsolatedResult[]> {
  const results: IsolatedResult[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-oracle-jobs-"));
  try {
    while (results.length < jobs.length) {
      const start = results.length;
      const jobFile = path.join(dir, `jobs-${start}.json`);
      fs.writeFileSync(jobFile, JSON.stringify(jobs.slice(start)));
      const r = await runChild(jobFile);
      for (const line of r.stdout.split("\n")) {
        if (line.startsWith("{")) results.push(JSON.parse(line) as IsolatedResult);
      }
      if (results.length < jobs.length && (r.status !== 0 || r.signal !== null)) {
        const tail = r.stderr.split("\n").filter((l) => l.trim() !== "").slice(-3).join(" | ");
        results.push({ status: "aborted", error: tail || `signal ${r.signal ?? r.status}` });
      } else if (results.length < jobs.length) {
        throw new Error(`llama oracle child stopped after ${results.length} of ${jobs.length} jobs: ${r.stderr}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
