// Which llama.cpp build and devices a run uses, for the terminal and for --json: a GPU result is
// not a CPU result (the backends round differently), so every report says where it was measured.
import path from "node:path";
import { BACKEND_NAMES, type LlamaBackend, type OffloadOptions } from "./backends.js";
import { llamaApi } from "./library.js";
import { placement } from "./params.js";
import { isolationEnabled, runIsolated } from "./isolation.js";

export interface LlamaRuntimeReport {
  /** cpu, cuda, vulkan or metal */
  backend: LlamaBackend;
  /** the package (or HQUANT_LLAMA_DIR folder) the libraries came from */
  package: string;
  /** layers on the GPU (llama.cpp -ngl): 0 on the CPU build, "all" for a GPU build without -ngl */
  gpuLayers: number | "all";
  /** the devices the layers go to, by llama.cpp's names */
  devices: { name: string; description: string }[];
}

/** Loads the build `offload` asks for (or checks the loaded one answers it) and says where models will run. */
export function llamaRuntime(offload: OffloadOptions = {}): LlamaRuntimeReport {
  const api = llamaApi(offload);
  const where = placement(api, offload);
  return {
    backend: api.location.backend,
    package: api.location.packageName,
    gpuLayers: where.gpuLayers < 0 ? "all" : where.gpuLayers,
    devices: where.devices.map((d) => ({ name: d.name, description: d.description })),
  };
}

/**
 * llamaRuntime in the evaluation process (src/runtime/isolation.ts), where the models will run: the
 * library is loaded there once instead of in both processes. In this process with HQUANT_ISOLATION=0.
 */
export async function evaluationRuntime(offload: OffloadOptions = {}): Promise<LlamaRuntimeReport> {
  if (!isolationEnabled()) return llamaRuntime(offload);
  return runIsolated<LlamaRuntimeReport>({ module: "runtime/report.js", fn: "llamaRuntime", args: [offload] }, { file: "llama.cpp's library" });
}

/** One line for the terminal: `llama.cpp: Vulkan build (@node-llama-cpp/linux-x64-vulkan), -ngl all on Vulkan0 (llvmpipe …)`. */
export function runtimeLine(r: LlamaRuntimeReport): string {
  const on = r.devices.map((d) => `${d.name} (${d.description})`).join(", ") || "no device";
  const layers = r.backend === "cpu" ? "" : `-ngl ${r.gpuLayers} on `;
  return `llama.cpp: ${BACKEND_NAMES[r.backend]} build (${r.package}), ${layers}${on}`;
}

/** The placement options of a larger options object (bench's, tune's, …), the unset ones left out. */
export function offloadOf(o: OffloadOptions): OffloadOptions {
  const out: OffloadOptions = {};
  if (o.gpuLayers !== undefined) out.gpuLayers = o.gpuLayers;
  if (o.device !== undefined) out.device = o.device;
  if (o.backend !== undefined) out.backend = o.backend;
  return out;
}

/**
 * Where a run on this placement caches base distributions and measurements: `cacheDir` itself on
 * the CPU build (as before), a subfolder per GPU placement otherwise, so that a GPU measurement is
 * never compared with a CPU one.
 */
export function runtimeCacheDir(cacheDir: string, r: LlamaRuntimeReport): string {
  if (r.backend === "cpu") return cacheDir;
  return path.join(cacheDir, `${r.backend}-ngl${r.gpuLayers}-${r.devices.map((d) => d.name).join("+")}`.replace(/[^A-Za-z0-9+._-]/g, "_"));
}
