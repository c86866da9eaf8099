// Which llama.cpp build the placement options pick (src/runtime/backends.ts), on every platform:
// the CPU build unless a GPU is asked for, CUDA before Vulkan for -ngl alone, and the one-line
// errors. The packages' presence and the driver checks are the arguments, so every platform's
// answer is checked here; test/gpu-vulkan.test.ts runs the real ones.
import { describe, expect, it } from "vitest";
import { resolveBackend, type BuildChoice, type OffloadOptions } from "../src/runtime/backends.js";

const V = "3.21.1";
const pick = (o: OffloadOptions, platform: string, installed: string[], drivers: Record<string, string | undefined> = {}) =>
  resolveBackend(o, platform, V, (p) => installed.includes(p), (b: BuildChoice) => (b.backend in drivers ? drivers[b.backend] : undefined));
const LINUX = ["@node-llama-cpp/linux-x64", "@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-vulkan"];

describe("resolveBackend", () => {
  it("the CPU build without -ngl / --device / --backend, and with -ngl 0", () => {
    expect(pick({}, "linux-x64", LINUX).packageName).toBe("@node-llama-cpp/linux-x64");
    expect(pick({ gpuLayers: 0 }, "linux-x64", LINUX).backend).toBe("cpu");
    expect(pick({}, "darwin-arm64", []).packageName).toBe("@node-llama-cpp/mac-arm64-metal");
  });

  it("-ngl alone: CUDA when its driver is there, else Vulkan, else why neither", () => {
    expect(pick({ gpuLayers: 99 }, "linux-x64", LINUX)).toMatchObject({ backend: "cuda", extPackage: "@node-llama-cpp/linux-x64-cuda-ext" });
    expect(pick({ gpuLayers: 99 }, "linux-x64", LINUX, { cuda: "no NVIDIA driver" }).backend).toBe("vulkan");
    expect(pick({ device: "Vulkan1" }, "win32-x64", ["@node-llama-cpp/win-x64-vulkan"]).packageName).toBe("@node-llama-cpp/win-x64-vulkan");
    expect(() => pick({ gpuLayers: 99 }, "linux-x64", LINUX, { cuda: "a", vulkan: "b" })).toThrow("-ngl 99: no GPU device found (CUDA: a; Vulkan: b)");
    expect(pick({ gpuLayers: 10 }, "darwin-arm64", ["@node-llama-cpp/mac-arm64-metal"]).backend).toBe("metal");
  });

  it("one-line errors naming what to install or what is missing", () => {
    expect(() => pick({ gpuLayers: 99 }, "linux-x64", ["@node-llama-cpp/linux-x64"])).toThrow(
      "-ngl 99: no GPU build of llama.cpp installed (npm install @node-llama-cpp/linux-x64-vulkan@3.21.1 or @node-llama-cpp/linux-x64-cuda@3.21.1)",
    );
    expect(() => pick({ backend: "cuda" }, "linux-x64", ["@node-llama-cpp/linux-x64"])).toThrow(
      "--backend cuda: llama.cpp's CUDA build is not installed (npm install @node-llama-cpp/linux-x64-cuda@3.21.1)",
    );
    expect(() => pick({ backend: "cuda" }, "darwin-x64", [])).toThrow("--backend cuda: no llama.cpp CUDA build for darwin-x64 (there: cpu)");
    expect(() => pick({ backend: "metal" }, "linux-x64", LINUX)).toThrow("--backend metal: no llama.cpp Metal build for linux-x64 (there: cpu, cuda, vulkan)");
    expect(() => pick({ gpuLayers: 99 }, "linux-arm64", [])).toThrow("-ngl 99: no GPU build of llama.cpp for linux-arm64");
    expect(() => pick({ backend: "vulkan" }, "linux-x64", LINUX, { vulkan: "the Vulkan loader lists no device" })).toThrow("--backend vulkan: no Vulkan device (the Vulkan loader lists no device)");
    expect(() => pick({ backend: "cpu", gpuLayers: 5 }, "linux-x64", LINUX)).toThrow("-ngl 5: the CPU build offloads nothing (drop --backend cpu)");
    expect(() => pick({ backend: "cpu", device: "CUDA0" }, "linux-x64", LINUX)).toThrow("--device CUDA0: the CPU build has no GPU device (drop --backend cpu)");
    expect(() => pick({ gpuLayers: -1 }, "linux-x64", LINUX)).toThrow("-ngl -1: must be a whole number of layers ≥ 0");
    expect(() => pick({}, "freebsd-x64", [])).toThrow("no prebuilt llama.cpp for freebsd-x64");
  });
});
