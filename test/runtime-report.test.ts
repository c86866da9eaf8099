// `hquant runtime`: the library and CPU backend it reports are the ones this process loads, and
// --cmake prints the fast path's recipe for the folder asked for (README, "Evaluation speed").
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { locateLlamaLibrary } from "../src/runtime/index.js";
import { elfComment, FAST_PATH_CMAKE_OPTIONS, runtimeRecipe, runtimeReport } from "../src/runtime/library-info.js";
import { hquant } from "./cli-util.js";

const ROOT = path.resolve(__dirname, "..");

describe("hquant runtime", () => {
  it("reports the shipped library's folder, the CPU backend ggml loaded from it, its features and compiler", () => {
    const r = runtimeReport();
    const loc = locateLlamaLibrary();
    expect(r.libraryDir).toBe(loc.binsDir);
    expect(r.source).toBe(`${loc.packageName}@3.21.1 (npm prebuilt)`);
    // the variant ggml picked for this CPU, one of the package's files
    expect(path.dirname(r.cpuBackend!)).toBe(loc.binsDir);
    expect(path.basename(r.cpuBackend!)).toMatch(/^libggml-cpu-[a-z0-9]+\.so$/);
    expect(r.features.map((f) => f.name)).toContain("LLAMAFILE");
    expect(r.compiler).toBe(elfComment(r.cpuBackend!));
    expect(r.compiler).toMatch(/^GCC: /);

    const cli = hquant("runtime");
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`library:     ${loc.binsDir}\n`);
    expect(cli.stdout).toContain(`CPU backend: ${r.cpuBackend}\n`);
    expect(cli.stdout).toContain(`compiler:    ${r.compiler}\n`);
  });

  it("reads no compiler from a file that is not ELF", () => {
    expect(elfComment(path.join(ROOT, "package.json"))).toBeUndefined();
    expect(elfComment(path.join(ROOT, "no-such-file"))).toBeUndefined();
  });

  it("--cmake DIR: clone of the bundled source, cmake configure and build of libllama, HQUANT_LLAMA_DIR", () => {
    const bundle = path.join(ROOT, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
    expect(fs.existsSync(bundle)).toBe(true);
    const dir = path.join(ROOT, "some/where");
    const r = hquant("runtime", "--cmake", "some/where");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toEqual([
      `# llama.cpp's shared libraries for this CPU, from ${bundle} (the source of the npm prebuilt)`,
      `git -c advice.detachedHead=false clone -q ${bundle} ${dir}/llama.cpp`,
      `cmake -S ${dir}/llama.cpp -B ${dir}/build ${FAST_PATH_CMAKE_OPTIONS.join(" ")}`,
      expect.stringMatching(new RegExp(`^cmake --build ${dir}/build --config Release -j[0-9]+ --target llama$`)),
      `export HQUANT_LLAMA_DIR=${dir}/build/bin`,
    ]);
    expect(FAST_PATH_CMAKE_OPTIONS).toContain("-DGGML_NATIVE=ON");
    expect(FAST_PATH_CMAKE_OPTIONS).toContain("-DBUILD_SHARED_LIBS=ON");
    expect(runtimeRecipe("some/where", 3).commands[2]).toBe(`cmake --build ${path.resolve("some/where")}/build --config Release -j3 --target llama`);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it("quotes a folder with spaces for the shell", () => {
    const r = runtimeRecipe("/tmp/my llama", 2);
    expect(r.commands.at(-1)).toBe("export HQUANT_LLAMA_DIR='/tmp/my llama/build/bin'");
    expect(r.libraryDir).toBe("/tmp/my llama/build/bin");
  });
});
