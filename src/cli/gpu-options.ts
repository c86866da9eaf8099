// llama.cpp's placement options, the same on bench, scan, tune and imatrix: -ngl/--gpu-layers N,
// --device NAME and --backend cpu|cuda|vulkan|metal (src/runtime/backends.ts picks the build).
import { Option, type Command } from "commander";
import { UserError } from "../errors.js";
import { LLAMA_BACKENDS, type LlamaBackend, type OffloadOptions } from "../runtime/index.js";

export interface GpuCliOptions {
  gpuLayers?: string;
  device?: string;
  backend?: string;
}

/** Adds -ngl/--gpu-layers, --device and --backend to a command. */
export function addGpuOptions(cmd: Command): Command {
  return cmd
    .option("--gpu-layers <n>", "layers on the GPU (llama.cpp -ngl; also -ngl N): uses llama.cpp's GPU build")
    .option("--device <name>", "the GPU device by llama.cpp's name (Vulkan0, CUDA1, MTL0); default: every GPU")
    .addOption(new Option("--backend <name>", "llama.cpp build: cpu (default without -ngl), cuda, vulkan or metal").choices([...LLAMA_BACKENDS]));
}

/** The library's placement options from the command line's. */
export function gpuOptions(opts: GpuCliOptions): OffloadOptions {
  const out: OffloadOptions = {};
  if (opts.gpuLayers !== undefined) {
    if (!/^\d+$/.test(opts.gpuLayers)) throw new UserError(`-ngl: ${JSON.stringify(opts.gpuLayers)} is not a number of layers (0 or more)`);
    out.gpuLayers = Number(opts.gpuLayers);
  }
  if (opts.device !== undefined) out.device = opts.device;
  if (opts.backend !== undefined) out.backend = opts.backend as LlamaBackend;
  return out;
}

/** llama.cpp spells it -ngl, a short option of three letters that commander cannot take: it becomes --gpu-layers. */
export function normalizeGpuFlags(argv: string[]): string[] {
  return argv.map((a) => (a === "-ngl" || a === "--n-gpu-layers" ? "--gpu-layers" : a.startsWith("-ngl=") ? `--gpu-layers=${a.slice(5)}` : a));
}
