// A kernel thread: piscina's task handler (dist/pool/worker.js, compiled JS). The kernels are
// instantiated from the WebAssembly.Module the main thread compiled (in workerData), so no worker
// compiles them and the compiled code (tier-ups included) is one copy shared by every thread.
import { workerData } from "node:worker_threads";
import { move } from "piscina";
import { useKernelModule } from "../quant/kernels.js";
import { proxyChunk, quantizeChunk } from "./chunk.js";
import type { ProxyTaskResult, QuantizeTask, QuantizeTaskResult } from "./task.js";

useKernelModule((workerData as { kernels: WebAssembly.Module }).kernels);

/** One chunk; the quantized rows' buffer is moved back (never cloned). A proxy chunk: its errors. */
export default function quantize(task: QuantizeTask): QuantizeTaskResult | ProxyTaskResult {
  if (task.errorTypes) return proxyChunk(task);
  const result = quantizeChunk(task);
  return result instanceof ArrayBuffer ? (move(result) as unknown as ArrayBuffer) : result;
}
