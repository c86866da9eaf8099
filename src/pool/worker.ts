// A kernel thread: piscina's task handler (dist/pool/worker.js, compiled JS). The kernels are
// instantiated from the WebAssembly.Module the main thread compiled (in workerData), so no worker
// compiles them and the compiled code (tier-ups included) is one copy shared by every thread.
import { workerData } from "node:worker_threads";
import { move, transferableSymbol, valueSymbol } from "piscina";
import { useKernelModule } from "../quant/kernels.js";
import { proxyChunk, quantizeChunk, quantizeChunkMulti } from "./chunk.js";
import type { MultiQuantizeTask, MultiQuantizeTaskResult, ProxyTaskResult, QuantizeTask, QuantizeTaskResult } from "./task.js";

useKernelModule((workerData as { kernels: WebAssembly.Module }).kernels);

/** Several buffers moved back with one result object (piscina's Transferable protocol); each listed once. */
function moveAll<T extends object>(value: T, buffers: ArrayBuffer[]): T {
  return move({ [transferableSymbol]: [...new Set(buffers)], [valueSymbol]: value } as never) as unknown as T;
}

/**
 * One chunk; the quantized rows' buffer is moved back (never cloned). A proxy chunk: its errors.
 * A multi-output chunk: the source and every output's buffer, all moved back.
 */
export default function quantize(task: QuantizeTask | MultiQuantizeTask): QuantizeTaskResult | ProxyTaskResult | MultiQuantizeTaskResult {
  if ("outputs" in task) {
    const result = quantizeChunkMulti(task);
    return "source" in result ? moveAll(result, [result.source, ...result.outputs]) : result;
  }
  if (task.errorTypes) return proxyChunk(task);
  const result = quantizeChunk(task);
  return result instanceof ArrayBuffer ? (move(result) as unknown as ArrayBuffer) : result;
}
