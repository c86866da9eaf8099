// A kernel thread: receives chunks from the pool (pool/index.ts), quantizes them and moves the
// result back. Runs as compiled JS (dist/pool/worker.js). The kernels are instantiated from the
// WebAssembly.Module the main thread compiled (in workerData), so no worker compiles the kernels
// and the compiled code (tier-ups included) is one copy shared by every thread.
import { parentPort, workerData } from "node:worker_threads";
import { useKernelModule } from "../quant/kernels.js";
import { quantizeChunk } from "./chunk.js";
import type { WorkerReply, WorkerRequest } from "./task.js";

const port = parentPort!;
useKernelModule((workerData as { kernels: WebAssembly.Module }).kernels);

port.on("message", ({ id, task }: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { id, result: quantizeChunk(task) };
  } catch (err) {
    reply = { id, error: err instanceof Error ? err : new Error(String(err)) };
  }
  port.postMessage(reply, reply.result instanceof ArrayBuffer ? [reply.result] : []);
});
