// Which llama.cpp build runs a model, and on which device: llama.cpp's -ngl / --device, and the
// GPU builds node-llama-cpp publishes (@node-llama-cpp/<platform>-cuda and -vulkan on Linux and
// Windows x64, Metal in the macOS arm64 package). The CPU build stays the default: results must not
// depend on a GPU unless one was asked for (a GPU build offloads work even at -ngl 0). Before a GPU
// build is loaded its driver is checked here (libcuda, or libvulkan's device list), so that "no
// device" is a one-line error rather than a silent fallback to the CPU.
import { UserError } from "../errors.js";

type Koffi = typeof import("koffi");
type Fn = (...args: unknown[]) => unknown;

export const LLAMA_BACKENDS = ["cpu", "cuda", "vulkan", "metal"] as const;
export type LlamaBackend = (typeof LLAMA_BACKENDS)[number];

/** Where a model's layers run: llama.cpp's -ngl and --device, and which of its builds. */
export interface OffloadOptions {
  /** layers stored on the GPU (llama.cpp -ngl N); with a GPU build and no -ngl: all of them */
  gpuLayers?: number;
  /** a device by llama.cpp's name (Vulkan0, CUDA1, MTL0): that device alone; default: every GPU of the build */
  device?: string;
  /** the build: cpu (the default without -ngl/--device), cuda, vulkan or metal; unset with -ngl: the first GPU build that finds a GPU */
  backend?: LlamaBackend;
}

export interface BuildChoice {
  backend: LlamaBackend;
  packageName: string;
  /** a second package with a fallback backend library (CUDA 12 beside the CUDA 13 build) */
  extPackage?: string;
}

const NAMES: Record<LlamaBackend, string> = { cpu: "CPU", cuda: "CUDA", vulkan: "Vulkan", metal: "Metal" };

/** The CPU build per platform (`${process.platform}-${process.arch}`). */
export const CPU_PACKAGES: Record<string, string> = {
  "linux-x64": "@node-llama-cpp/linux-x64",
  "linux-arm64": "@node-llama-cpp/linux-arm64",
  "darwin-arm64": "@node-llama-cpp/mac-arm64-metal",
  "darwin-x64": "@node-llama-cpp/mac-x64",
  "win32-x64": "@node-llama-cpp/win-x64",
  "win32-arm64": "@node-llama-cpp/win-arm64",
};

/** The GPU builds per platform, in the order -ngl alone tries them (node-llama-cpp's order). */
export const GPU_BUILDS: Record<string, BuildChoice[]> = {
  "linux-x64": [
    { backend: "cuda", packageName: "@node-llama-cpp/linux-x64-cuda", extPackage: "@node-llama-cpp/linux-x64-cuda-ext" },
    { backend: "vulkan", packageName: "@node-llama-cpp/linux-x64-vulkan" },
  ],
  "win32-x64": [
    { backend: "cuda", packageName: "@node-llama-cpp/win-x64-cuda", extPackage: "@node-llama-cpp/win-x64-cuda-ext" },
    { backend: "vulkan", packageName: "@node-llama-cpp/win-x64-vulkan" },
  ],
  // the macOS arm64 package is the CPU and the Metal build at once
  "darwin-arm64": [{ backend: "metal", packageName: "@node-llama-cpp/mac-arm64-metal" }],
};

/** The option the user typed that asked for this placement, for errors. */
export function offloadLabel(o: OffloadOptions): string {
  if (o.backend !== undefined) return `--backend ${o.backend}`;
  if (o.gpuLayers !== undefined) return `-ngl ${o.gpuLayers}`;
  if (o.device !== undefined) return `--device ${o.device}`;
  return "llama.cpp";
}

/** True when the options ask for a GPU build (an explicit GPU backend, -ngl N > 0 or --device). */
export function wantsGpu(o: OffloadOptions): boolean {
  if (o.backend !== undefined) return o.backend !== "cpu";
  return (o.gpuLayers ?? 0) > 0 || o.device !== undefined;
}

function installHint(builds: BuildChoice[], version: string): string {
  return builds.map((b) => `${b.packageName}@${version}`).join(" or ");
}

/**
 * The build the options ask for. `installed(pkg)` says whether a package resolves; `probe` checks a
 * GPU build's driver before anything is loaded (undefined: usable, else why not).
 */
export function resolveBackend(
  o: OffloadOptions,
  platform: string,
  version: string,
  installed: (packageName: string) => boolean,
  probe: (b: BuildChoice, explicit: boolean) => string | undefined,
): BuildChoice {
  const label = offloadLabel(o);
  if (o.gpuLayers !== undefined && (!Number.isInteger(o.gpuLayers) || o.gpuLayers < 0)) throw new UserError(`-ngl ${o.gpuLayers}: must be a whole number of layers ≥ 0`);
  if (o.backend !== undefined && !LLAMA_BACKENDS.includes(o.backend)) throw new UserError(`--backend ${o.backend}: must be one of ${LLAMA_BACKENDS.join(", ")}`);
  if (!wantsGpu(o)) {
    if (o.backend === "cpu" && (o.gpuLayers ?? 0) > 0) throw new UserError(`-ngl ${o.gpuLayers}: the CPU build offloads nothing (drop --backend cpu)`);
    if (o.backend === "cpu" && o.device !== undefined) throw new UserError(`--device ${o.device}: the CPU build has no GPU device (drop --backend cpu)`);
    const packageName = CPU_PACKAGES[platform];
    if (!packageName) throw new UserError(`no prebuilt llama.cpp for ${platform}: hquant's evaluator supports ${Object.keys(CPU_PACKAGES).join(", ")}`);
    return { backend: "cpu", packageName };
  }
  const builds = GPU_BUILDS[platform] ?? [];
  if (o.backend !== undefined) {
    const build = builds.find((b) => b.backend === o.backend);
    if (!build) {
      const have = ["cpu", ...builds.map((b) => b.backend)].join(", ");
      throw new UserError(`${label}: no llama.cpp ${NAMES[o.backend]} build for ${platform} (there: ${have})`);
    }
    if (!installed(build.packageName)) throw new UserError(`${label}: llama.cpp's ${NAMES[o.backend]} build is not installed (npm install ${build.packageName}@${version})`);
    const why = probe(build, true);
    if (why !== undefined) throw new UserError(`${label}: no ${NAMES[o.backend]} device (${why})`);
    return build;
  }
  if (builds.length === 0) throw new UserError(`${label}: no GPU build of llama.cpp for ${platform}`);
  const present = builds.filter((b) => installed(b.packageName));
  if (present.length === 0) {
    // the Vulkan build first: it runs on any vendor's GPU
    const hint = [...builds].sort((a, b) => Number(b.backend === "vulkan") - Number(a.backend === "vulkan"));
    throw new UserError(`${label}: no GPU build of llama.cpp installed (npm install ${installHint(hint, version)})`);
  }
  const reasons: string[] = [];
  for (const b of present) {
    const why = probe(b, false);
    if (why === undefined) return b;
    reasons.push(`${NAMES[b.backend]}: ${why}`);
  }
  throw new UserError(`${label}: no GPU device found (${reasons.join("; ")})`);
}

/** The NVIDIA driver library the CUDA backend links against. */
function cudaDriver(): string {
  return process.platform === "win32" ? "nvcuda.dll" : "libcuda.so.1";
}

function vulkanLoader(): string {
  return process.platform === "win32" ? "vulkan-1.dll" : process.platform === "darwin" ? "libvulkan.1.dylib" : "libvulkan.so.1";
}

/** VkPhysicalDeviceType (vulkan_core.h) */
const VK_PHYSICAL_DEVICE_TYPE_CPU = 4;
/** VkStructureType VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO */
const VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1;
/** sizeof(VkInstanceCreateInfo), sizeof(VkPhysicalDeviceProperties) on LP64 / LLP64 */
const INSTANCE_CREATE_INFO_BYTES = 64;
const PHYSICAL_DEVICE_PROPERTIES_BYTES = 824;
/** VkPhysicalDeviceProperties: deviceType at 16, deviceName[256] at 20 */
const PROPS_DEVICE_TYPE = 16;
const PROPS_DEVICE_NAME = 20;

export interface VulkanDevice {
  index: number;
  name: string;
  cpu: boolean;
}

/** The Vulkan loader's physical devices, in the order ggml-vulkan enumerates them (its GGML_VK_VISIBLE_DEVICES indices). */
export function vulkanDevices(koffi: Koffi): VulkanDevice[] | string {
  let vk: ReturnType<Koffi["load"]>;
  try {
    vk = koffi.load(vulkanLoader());
  } catch {
    return `no Vulkan loader: ${vulkanLoader()} does not load`;
  }
  const f = (decl: string) => vk.func(decl) as unknown as Fn;
  const createInstance = f("int32_t vkCreateInstance(const uint8_t *info, void *alloc, _Out_ void **instance)");
  const destroyInstance = f("void vkDestroyInstance(void *instance, void *alloc)");
  const enumerate = f("int32_t vkEnumeratePhysicalDevices(void *instance, _Inout_ uint32_t *count, _Out_ uint64_t *devices)");
  const properties = f("void vkGetPhysicalDeviceProperties(uint64_t device, _Out_ uint8_t *props)");
  const info = Buffer.alloc(INSTANCE_CREATE_INFO_BYTES);
  info.writeUInt32LE(VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, 0);
  const instance: unknown[] = [null];
  const rc = createInstance(info, null, instance) as number;
  if (rc !== 0 || !instance[0]) return `no Vulkan driver (vkCreateInstance: ${rc})`;
  try {
    const count = new Uint32Array(1);
    enumerate(instance[0], count, null);
    const handles = new BigUint64Array(count[0]!);
    if (count[0]! > 0) enumerate(instance[0], count, handles);
    return Array.from(handles.subarray(0, count[0]!), (h, index) => {
      const props = Buffer.alloc(PHYSICAL_DEVICE_PROPERTIES_BYTES);
      properties(h, props);
      const name = props.subarray(PROPS_DEVICE_NAME, PROPS_DEVICE_NAME + 256);
      const end = name.indexOf(0);
      return { index, name: name.subarray(0, end < 0 ? 256 : end).toString("utf8"), cpu: props.readInt32LE(PROPS_DEVICE_TYPE) === VK_PHYSICAL_DEVICE_TYPE_CPU };
    });
  } finally {
    destroyInstance(instance[0], null);
  }
}

/**
 * Checks a GPU build's driver before loading it: undefined when it can run, else why not.
 * Vulkan: ggml-vulkan skips CPU-type devices (Mesa's llvmpipe, "No devices found") unless
 * GGML_VK_VISIBLE_DEVICES names one. Asked for explicitly (--backend vulkan) with nothing but such
 * a device, hquant names it there, so the software device runs (tests, CI, checks without a GPU);
 * -ngl alone never picks it (it is far slower than the CPU build).
 */
export function probeGpuBuild(koffi: Koffi, build: BuildChoice, explicit: boolean, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (build.backend === "cuda") {
    try {
      koffi.load(cudaDriver());
      return undefined;
    } catch {
      return `no NVIDIA driver: ${cudaDriver()} does not load`;
    }
  }
  if (build.backend === "vulkan") {
    if (env.GGML_VK_VISIBLE_DEVICES !== undefined) return undefined; // the user's choice
    const devices = vulkanDevices(koffi);
    if (typeof devices === "string") return devices;
    if (devices.length === 0) return "the Vulkan loader lists no device";
    if (devices.some((d) => !d.cpu)) return undefined;
    const cpu = devices[0]!;
    if (!explicit) return `only a CPU-type Vulkan device, ${cpu.name}, which --backend vulkan uses`;
    env.GGML_VK_VISIBLE_DEVICES = String(cpu.index);
    return undefined;
  }
  return undefined;
}

/** enum ggml_backend_dev_type */
const DEVICE_TYPES = ["CPU", "GPU", "IGPU", "ACCEL", "META"] as const;

export interface LlamaDevice {
  /** llama.cpp's name for it (--device): CPU, Vulkan0, CUDA0, MTL0 */
  name: string;
  description: string;
  type: (typeof DEVICE_TYPES)[number];
  /** its ggml backend: CPU, Vulkan, CUDA, Metal */
  backend: string;
  /** ggml_backend_dev_t */
  handle: bigint;
}

export interface DeviceApi {
  count: Fn;
  get: Fn;
  name: Fn;
  description: Fn;
  type: Fn;
  reg: Fn;
  regName: Fn;
}

export function bindDeviceApi(ggml: ReturnType<Koffi["load"]>, ggmlBase: ReturnType<Koffi["load"]>): DeviceApi {
  const g = (decl: string) => ggml.func(decl) as unknown as Fn;
  const b = (decl: string) => ggmlBase.func(decl) as unknown as Fn;
  return {
    count: g("size_t ggml_backend_dev_count()"),
    get: g("void *ggml_backend_dev_get(size_t i)"),
    name: b("const char *ggml_backend_dev_name(void *dev)"),
    description: b("const char *ggml_backend_dev_description(void *dev)"),
    type: b("int ggml_backend_dev_type(void *dev)"),
    reg: b("void *ggml_backend_dev_backend_reg(void *dev)"),
    regName: b("const char *ggml_backend_reg_name(void *reg)"),
  };
}

/** Every device the loaded ggml backends registered. */
export function listDevices(d: DeviceApi): LlamaDevice[] {
  const n = Number(d.count() as number | bigint);
  return Array.from({ length: n }, (_, i) => {
    const handle = d.get(i) as bigint;
    return {
      name: d.name(handle) as string,
      description: d.description(handle) as string,
      type: DEVICE_TYPES[d.type(handle) as number] ?? "GPU",
      backend: d.regName(d.reg(handle)) as string,
      handle,
    };
  });
}

/** The devices llama.cpp offloads to by default (llama_model_load without params.devices): the GPUs, else the integrated GPUs. */
export function gpuDevices(all: LlamaDevice[]): LlamaDevice[] {
  const gpus = all.filter((d) => d.type === "GPU");
  return gpus.length > 0 ? gpus : all.filter((d) => d.type === "IGPU");
}

export { NAMES as BACKEND_NAMES };
