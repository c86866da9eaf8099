// llama.cpp's Vulkan build, run for real: with a GPU, or on a machine without one on Mesa's software
// device (llvmpipe; .ci/run installs it). bench and imatrix with -ngl 99 against the CPU build on the
// bundled model, and the one-line errors when there is no GPU build or no device. llvmpipe is ~60×
// slower than the CPU build, so the texts are short: ctx 128, two chunks (one llama_decode).
//
// The tolerance is derived, not chosen: the two builds round differently (the Vulkan shaders take
// the activations to f16 or q8_1 where the CPU takes them to f16 or q8_K, and they sum in another
// order), so the same model gives slightly different distributions. δ, the mean KL divergence
// between the CPU and the Vulkan distributions of the same F16 model, is measured here, and
//  - PPL: ln PPL is the mean NLL of the targets; a logit perturbation e moves a target's log-prob by
//    e_t − E_p[e], whose mean square over targets drawn from p is Var_p(e) ≈ 2δ (second-order
//    expansion of the KL divergence); so |Δ ln PPL| ≤ RMS ≈ √(2δ).
//  - KLD: to second order KLD ≈ ½‖Δz‖² in the Fisher metric; each build adds its own perturbation
//    to the quantized model's and to the base's logits, whose difference is at most (√δ + √δ)² = 4δ
//    in KLD terms, so |KLD_vk − KLD_cpu| ≤ 2√(KLD·4δ) + 4δ (Cauchy–Schwarz on the cross term).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import koffi from "koffi";
import { readHeaderAt } from "../src/gguf/reader.js";
import { vulkanDevices } from "../src/runtime/backends.js";
import { LLAMA_PACKAGE_VERSION } from "../src/runtime/index.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");
const MODEL = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const FIXTURES = path.join(ROOT, "test/fixtures");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-vulkan-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const LINUX_X64 = process.platform === "linux" && process.arch === "x64";
const VULKAN_PACKAGE = "@node-llama-cpp/linux-x64-vulkan";

/** Why the Vulkan tests cannot run here, or undefined when they can. */
function vulkanSkipReason(): string | undefined {
  if (!LINUX_X64) return `the Vulkan package tested is ${VULKAN_PACKAGE}, not for ${process.platform}-${process.arch}`;
  if (!fs.existsSync(path.join(ROOT, "node_modules", VULKAN_PACKAGE))) return `${VULKAN_PACKAGE} is not installed (npm ci installs it)`;
  const devices = vulkanDevices(koffi);
  if (typeof devices === "string") return `${devices} (apt-get install mesa-vulkan-drivers)`;
  if (devices.length === 0) return "the Vulkan loader lists no device (apt-get install mesa-vulkan-drivers)";
  return undefined;
}
const skip = vulkanSkipReason();
const VK = ["-ngl", "99", "--backend", "vulkan"];

describe.skipIf(skip !== undefined)(`llama.cpp's Vulkan build agrees with the CPU build${skip ? ` (skipped: ${skip})` : ""}`, () => {
  const text = path.join(tmp, "text.txt");
  const q4 = path.join(tmp, "q4_k_m.gguf");
  const bench = ["-c", "128", "--chunks", "2", "--json", "--quiet"];

  it("bench -ngl 99: PPL and KLD within the backends' own difference, the device reported", async () => {
    fs.writeFileSync(text, fs.readFileSync(path.join(FIXTURES, "eval-test.txt"), "utf8").slice(0, 8000));
    expect((await run(["build", MODEL, q4, "Q4_K_M", "--quiet"])).code).toBe(0);
    const cpuCache = path.join(tmp, "cache-cpu");
    const cpu = await run(["bench", MODEL, "--text", text, "--files", q4, "--cache-dir", cpuCache, ...bench]);
    expect(cpu.stderr).toBe("");
    const vk = await run(["bench", MODEL, "--text", text, "--files", q4, "--cache-dir", path.join(tmp, "cache-vk"), ...bench, ...VK]);
    expect(vk.stderr).toBe("");
    const c = JSON.parse(cpu.stdout);
    const v = JSON.parse(vk.stdout);
    expect(c.runtime).toMatchObject({ backend: "cpu", gpuLayers: 0, devices: [{ name: "CPU" }] });
    expect(v.runtime).toMatchObject({ backend: "vulkan", package: VULKAN_PACKAGE, gpuLayers: 99 });
    expect(v.runtime.devices.map((d: { name: string }) => d.name)).toEqual(["Vulkan0"]);
    expect(v.positions).toBe(c.positions);

    // δ: the Vulkan build's F16 distributions against the CPU build's (its base cache, given to
    // the Vulkan run as if it were its own: the folder is per placement, the file per model and text)
    const deltaCache = path.join(tmp, "cache-delta");
    const placement = path.join(deltaCache, "vulkan-ngl99-Vulkan0");
    fs.mkdirSync(placement, { recursive: true });
    for (const f of fs.readdirSync(cpuCache)) fs.copyFileSync(path.join(cpuCache, f), path.join(placement, f));
    const d = await run(["bench", MODEL, "--text", text, "--files", MODEL, "--cache-dir", deltaCache, ...bench, ...VK]);
    expect(d.stderr).toBe("");
    const delta = JSON.parse(d.stdout).rows[0].kld as number;
    // the builds do differ (else this test would compare nothing), and by rounding only
    expect(delta).toBeGreaterThan(0);
    expect(delta).toBeLessThan(1e-3);

    const pplTol = Math.sqrt(2 * delta);
    expect(Math.abs(Math.log(v.base.ppl / c.base.ppl))).toBeLessThanOrEqual(pplTol);
    expect(Math.abs(Math.log(v.rows[0].ppl / c.rows[0].ppl))).toBeLessThanOrEqual(pplTol);
    const k = c.rows[0].kld as number;
    expect(Math.abs(v.rows[0].kld - k)).toBeLessThanOrEqual(2 * Math.sqrt(k * 4 * delta) + 4 * delta);
  }, 1_200_000);

  // Within 1 % as the issue asks. The activations differ in the last bits between the builds, the
  // imatrix weights with them, and a few Q4_K_M block scales flip; how much that moves the KLD
  // depends on how many tokens the imatrix averages: a two-chunk imatrix gave 2.1–2.9 %, four
  // chunks 0.22 % (this test's evaluation) and 0.62 % (64 chunks of 256), eight 0.01–0.77 %, sixteen
  // 0.19–0.45 %. Four chunks of 128 tokens cost llvmpipe about 20 s.
  it("imatrix -ngl 99: its Q4_K_M has the CPU imatrix's tensor types and a KLD within 1 % (four-chunk imatrix)", async () => {
    const calib = path.join(tmp, "calib.txt");
    fs.writeFileSync(calib, fs.readFileSync(path.join(FIXTURES, "calib.txt"), "utf8").slice(0, 8000));
    const files: string[] = [];
    for (const [name, extra] of [["cpu", []], ["vk", VK]] as const) {
      const imatrix = path.join(tmp, `imatrix-${name}.gguf`);
      const r = await run(["imatrix", MODEL, "--text", calib, "-c", "128", "--chunks", "4", "-o", imatrix, "--quiet", ...extra]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const out = path.join(tmp, `q4-imat-${name}.gguf`);
      expect((await run(["build", MODEL, out, "Q4_K_M", "--imatrix", imatrix, "--quiet"])).code).toBe(0);
      files.push(out);
    }
    const [a, b] = await Promise.all(files.map((f) => readHeaderAt(f)));
    expect(b!.tensors.map((t) => [t.name, t.type])).toEqual(a!.tensors.map((t) => [t.name, t.type]));
    // both evaluated on the CPU build against the same base, over 16 chunks (cheap there)
    const evalText = path.join(tmp, "eval-imatrix.txt");
    fs.writeFileSync(evalText, fs.readFileSync(path.join(FIXTURES, "eval-test.txt"), "utf8").slice(0, 40000));
    const r = await run(["bench", MODEL, "--text", evalText, "--files", ...files, "--cache-dir", path.join(tmp, "cache-imatrix"), "-c", "128", "--chunks", "16", "--json", "--quiet"]);
    const rows = JSON.parse(r.stdout).rows as { file: string; kld: number }[];
    const kld = (f: string) => rows.find((row) => row.file === f)!.kld;
    expect(Math.abs(kld(files[1]!) / kld(files[0]!) - 1)).toBeLessThanOrEqual(0.01);
  }, 1_200_000);

  it("--device names a device of the build, or the error lists them", async () => {
    const r = await run(["bench", MODEL, "--text", path.join(FIXTURES, "eval-test.txt"), "--files", MODEL, ...bench, ...VK, "--device", "Vulkan7"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("hquant: --device Vulkan7: no such Vulkan device (there: Vulkan0)\n");
  }, 120_000);
});

describe.skipIf(!LINUX_X64)("a GPU asked for and none there: one line naming what to install or what is missing", () => {
  const args = ["bench", MODEL, "--text", path.join(FIXTURES, "eval-test.txt"), "--files", MODEL];

  it("no GPU build installed", async () => {
    // a node_modules with the CPU build alone, as `npm install hquant` leaves it
    const modules = path.join(tmp, "cpu-only");
    fs.mkdirSync(path.join(modules, "node_modules", "@node-llama-cpp"), { recursive: true });
    fs.symlinkSync(path.join(ROOT, "node_modules/@node-llama-cpp/linux-x64"), path.join(modules, "node_modules/@node-llama-cpp/linux-x64"));
    const r = await run([...args, "-ngl", "99"], { HQUANT_LLAMA_MODULES: modules });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `hquant: -ngl 99: no GPU build of llama.cpp installed (npm install @node-llama-cpp/linux-x64-vulkan@${LLAMA_PACKAGE_VERSION} or @node-llama-cpp/linux-x64-cuda@${LLAMA_PACKAGE_VERSION})\n`,
    );
    const v = await run([...args, "--backend", "vulkan"], { HQUANT_LLAMA_MODULES: modules });
    expect(v.stderr).toBe(`hquant: --backend vulkan: llama.cpp's Vulkan build is not installed (npm install ${VULKAN_PACKAGE}@${LLAMA_PACKAGE_VERSION})\n`);
  }, 120_000);

  it.skipIf(typeof vulkanDevices(koffi) === "string")("the Vulkan build with no Vulkan driver", async () => {
    // the Vulkan loader with no driver (ICD) to load: what a machine without a GPU driver has
    const r = await run([...args, "--backend", "vulkan"], { VK_ICD_FILENAMES: path.join(tmp, "no-such-icd.json"), VK_DRIVER_FILES: path.join(tmp, "no-such-icd.json") });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hquant: --backend vulkan: no Vulkan device \((no Vulkan driver \(vkCreateInstance: -?\d+\)|the Vulkan loader lists no device)\)\n$/);
  }, 120_000);

  it.skipIf(cudaDriverLoads())("the CUDA build without an NVIDIA driver", async () => {
    const r = await run([...args, "--backend", "cuda"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("hquant: --backend cuda: no CUDA device (no NVIDIA driver: libcuda.so.1 does not load)\n");
  }, 120_000);

  it("-ngl alone never picks a CPU-type Vulkan device; the CPU build refuses -ngl", async () => {
    const r = await run([...args, "-ngl", "99", "--backend", "cpu"]);
    expect(r.stderr).toBe("hquant: -ngl 99: the CPU build offloads nothing (drop --backend cpu)\n");
    const devices = vulkanDevices(koffi);
    if (typeof devices !== "string" && devices.length > 0 && devices.every((d) => d.cpu) && cudaDriverLoads() === false) {
      const auto = await run([...args, "-ngl", "99"]);
      expect(auto.code).toBe(1);
      expect(auto.stderr).toBe(
        `hquant: -ngl 99: no GPU device found (CUDA: no NVIDIA driver: libcuda.so.1 does not load; Vulkan: only a CPU-type Vulkan device, ${devices[0]!.name}, which --backend vulkan uses)\n`,
      );
    }
  }, 120_000);
});

function cudaDriverLoads(): boolean {
  try {
    koffi.load("libcuda.so.1");
    return true;
  } catch {
    return false;
  }
}
