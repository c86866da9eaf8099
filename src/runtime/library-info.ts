// Which llama.cpp hquant evaluates with (`hquant runtime`): the library folder and where it came
// from, the CPU backend file ggml loaded (the npm prebuilt ships one libggml-cpu-<variant> per
// instruction set and picks one at run time), its features as ggml reports them, and the compiler
// that built it. The compiler matters: the prebuilt's GCC 11 keeps llamafile's F16 tile
// accumulators on the stack, so its F16 matrix products take about twice the CPU of the same source
// built with GCC 12 (README, "Evaluation speed"); runtimeRecipe() is the way round it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { llamaApi, LLAMA_PACKAGE_VERSION } from "./library.js";

export interface RuntimeReport {
  /** "HQUANT_LLAMA_DIR" when a build of one's own is used, else the npm platform package */
  source: string;
  /** folder holding libllama and libggml */
  libraryDir: string;
  /** the libggml-cpu file ggml loaded (undefined where the process's mappings cannot be read) */
  cpuBackend?: string;
  /** the CPU backend's features (ggml_backend_get_features): AVX2 = 1, OPENMP = 1, … */
  features: { name: string; value: string }[];
  /** the compiler that built the CPU backend (its ELF .comment), when readable */
  compiler?: string;
}

/** The first string of an ELF file's .comment section ("GCC: (…) 12.2.0"): who compiled it. */
export function elfComment(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const read = (at: number, bytes: number) => {
      const b = Buffer.alloc(bytes);
      fs.readSync(fd!, b, 0, bytes, at);
      return b;
    };
    const h = read(0, 64);
    // 64-bit little-endian ELF only (x86-64, arm64 Linux)
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return undefined;
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    const shstrndx = h.readUInt16LE(0x3e);
    const sections = read(shoff, shentsize * shnum);
    const section = (i: number) => ({
      name: sections.readUInt32LE(i * shentsize),
      offset: Number(sections.readBigUInt64LE(i * shentsize + 0x18)),
      size: Number(sections.readBigUInt64LE(i * shentsize + 0x20)),
    });
    const names = section(shstrndx);
    const strtab = read(names.offset, names.size);
    for (let i = 0; i < shnum; i++) {
      const s = section(i);
      if (strtab.toString("latin1", s.name, strtab.indexOf(0, s.name)) !== ".comment") continue;
      return read(s.offset, Math.min(s.size, 4096)).toString("latin1").split("\0").find((c) => c.trim())?.trim();
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The libggml-cpu file mapped into this process (Linux: /proc/self/maps). */
function loadedCpuBackend(): string | undefined {
  try {
    const maps = fs.readFileSync("/proc/self/maps", "utf8");
    return /\s(\/\S*\/libggml-cpu[^/\s]*\.so[^/\s]*)\n/.exec(maps)?.[1];
  } catch {
    return undefined;
  }
}

let featuresProto: ReturnType<ReturnType<typeof llamaApi>["koffi"]["proto"]> | undefined;

/** Loads the runtime (as bench does) and says which library and CPU backend it is. */
export function runtimeReport(): RuntimeReport {
  const api = llamaApi();
  const { koffi, location } = api;
  const base = koffi.load(location.ggmlBase);
  const ggml = koffi.load(location.ggml);
  const regCount = ggml.func("size_t ggml_backend_reg_count()") as unknown as () => number | bigint;
  const regGet = ggml.func("void *ggml_backend_reg_get(size_t i)") as unknown as (i: number) => bigint;
  const regName = base.func("const char *ggml_backend_reg_name(void *reg)") as unknown as (reg: bigint) => string;
  const procAddress = base.func("void *ggml_backend_reg_get_proc_address(void *reg, const char *name)") as unknown as (reg: bigint, name: string) => bigint | null;
  const features: { name: string; value: string }[] = [];
  for (let i = 0; i < Number(regCount()); i++) {
    const reg = regGet(i);
    if (regName(reg) !== "CPU") continue;
    const getFeatures = procAddress(reg, "ggml_backend_get_features");
    if (!getFeatures) break;
    const proto = (featuresProto ??= koffi.proto("void *hq_ggml_backend_get_features(void *reg)"));
    const list = (koffi.decode(getFeatures, proto) as unknown as (reg: bigint) => bigint)(reg);
    // struct ggml_backend_feature { const char *name; const char *value; }, ended by a NULL name
    for (let k = 0; k < 64; k++) {
      const [name, value] = koffi.decode(list, 16 * k, "const char *", 2) as (string | null)[];
      if (!name) break;
      features.push({ name, value: value ?? "" });
    }
    break;
  }
  const cpuBackend = loadedCpuBackend();
  return {
    source: process.env.HQUANT_LLAMA_DIR ? "HQUANT_LLAMA_DIR" : `${location.packageName}@${LLAMA_PACKAGE_VERSION} (npm prebuilt)`,
    libraryDir: location.binsDir,
    cpuBackend,
    features,
    compiler: cpuBackend ? elfComment(cpuBackend) : undefined,
  };
}

/** The release of llama.cpp node-llama-cpp@3.21.1 bundles (llama/llama.cpp.info.json): the source of the prebuilt. */
export const LLAMA_CPP_RELEASE = { repo: "ggml-org/llama.cpp", tag: "v0.4.0", commit: "80fb11a" } as const;

/**
 * cmake's configuration for the fast path: llama.cpp's shared libraries (libllama, libggml,
 * libggml-base, libggml-cpu) for this CPU (GGML_NATIVE), with llama.cpp's own CMake defaults
 * otherwise (OpenMP, llamafile), and -ffp-contract=off as bench/llama-tools.ts builds the
 * llama.cpp tools hquant is checked against, so both compute the same bits.
 */
export const FAST_PATH_CMAKE_OPTIONS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=ON",
  "-DGGML_NATIVE=ON",
  "-DCMAKE_C_FLAGS=-ffp-contract=off",
  "-DCMAKE_CXX_FLAGS=-ffp-contract=off",
  "-DLLAMA_BUILD_COMMON=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_TOOLS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_BUILD_SERVER=OFF",
  "-DLLAMA_BUILD_APP=OFF",
] as const;

export interface RuntimeRecipe {
  /** where the source comes from: node-llama-cpp's bundle when installed, else llama.cpp's git tag */
  source: string;
  /** shell commands, in order */
  commands: string[];
  /** the folder to set HQUANT_LLAMA_DIR to */
  libraryDir: string;
}

const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** node-llama-cpp's git bundle of the llama.cpp source, when node-llama-cpp is installed. */
function sourceBundle(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    let dir = path.dirname(require.resolve("node-llama-cpp"));
    while (!fs.existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    const bundle = path.join(dir, "llama", "gitRelease.bundle");
    return fs.existsSync(bundle) ? bundle : undefined;
  } catch {
    return undefined;
  }
}

/** The commands that build the fast path's libraries under `dir` from the source of the prebuilt. */
export function runtimeRecipe(dir: string, jobs = Math.max(1, os.availableParallelism())): RuntimeRecipe {
  const root = path.resolve(dir);
  const src = path.join(root, "llama.cpp");
  const build = path.join(root, "build");
  const bundle = sourceBundle();
  // the bundle's HEAD is a detached commit: without the advice off, -q still prints git's page on it
  const clone = bundle
    ? ["git", "-c", "advice.detachedHead=false", "clone", "-q", bundle, src]
    : ["git", "-c", "advice.detachedHead=false", "clone", "-q", "--depth", "1", "--branch", LLAMA_CPP_RELEASE.tag, `https://github.com/${LLAMA_CPP_RELEASE.repo}`, src];
  const commands = [
    clone,
    ["cmake", "-S", src, "-B", build, ...FAST_PATH_CMAKE_OPTIONS],
    ["cmake", "--build", build, "--config", "Release", `-j${jobs}`, "--target", "llama"],
  ].map((c) => c.map(quote).join(" "));
  const libraryDir = path.join(build, "bin");
  return { source: bundle ?? `${LLAMA_CPP_RELEASE.repo} ${LLAMA_CPP_RELEASE.tag}`, commands: [...commands, `export HQUANT_LLAMA_DIR=${quote(libraryDir)}`], libraryDir };
}
