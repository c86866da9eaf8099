// llama.cpp's own command-line tools (llama-perplexity, llama-quantize, llama-imatrix), built from
// the source bundle that node-llama-cpp@3.21.1 ships, for side-by-side benchmarks only — never for
// tests. The build is cached under build/: the first call clones the bundle and runs cmake (about
// 15 minutes on 2 cores), later calls return at once.
//
// Build flags: a CPU release build with GGML_NATIVE (what a user building llama.cpp by hand gets)
// and -ffp-contract=off, so the quantizers' scalar code is not contracted into fused multiply-adds
// and llama-quantize writes the same bytes as the npm prebuilt libraries (and as hquant). The
// matrix-multiplication kernels use explicit SIMD intrinsics, so evaluation speed is unaffected.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(REPO, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
const SOURCE = path.join(REPO, "build/llama.cpp");
const BUILD = path.join(REPO, "build/llama-build");

export type LlamaTool = "llama-perplexity" | "llama-quantize" | "llama-imatrix";
const TOOLS: readonly LlamaTool[] = ["llama-perplexity", "llama-quantize", "llama-imatrix"];

/** Path of a llama.cpp tool built from the bundled source; builds (once) what is missing. */
export function llamaTool(name: LlamaTool): string {
  const bin = path.join(BUILD, "bin", name);
  if (fs.existsSync(bin)) return bin;
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"] });
  if (!fs.existsSync(path.join(SOURCE, "CMakeLists.txt"))) {
    fs.rmSync(SOURCE, { recursive: true, force: true });
    run("git", ["clone", "-q", BUNDLE, SOURCE]);
  }
  process.stderr.write(`building llama.cpp tools under ${path.relative(REPO, BUILD)} (cached; first time only)…\n`);
  const flags = "-ffp-contract=off";
  run("cmake", [
    "-S", SOURCE, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON", `-DCMAKE_C_FLAGS=${flags}`, `-DCMAKE_CXX_FLAGS=${flags}`,
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF",
  ]);
  run("cmake", ["--build", BUILD, "-j2", "--target", ...TOOLS]);
  if (!fs.existsSync(bin)) throw new Error(`llama.cpp build finished without ${bin}`);
  return bin;
}
