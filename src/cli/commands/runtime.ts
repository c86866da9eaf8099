// `hquant runtime [--cmake [DIR]]`: which llama.cpp library and CPU backend bench, scan, tune and
// imatrix evaluate with; --cmake prints the commands that build the fast path's libraries from the
// prebuilt's own source (README, "Evaluation speed").
import type { Command } from "commander";
import { runtimeRecipe, runtimeReport } from "../../runtime/library-info.js";

/** --cmake's folder when none is given */
const DEFAULT_DIR = "llama.cpp-hquant";

export function registerRuntime(program: Command): void {
  program
    .command("runtime")
    .description("show which llama.cpp library and CPU backend evaluation uses; --cmake prints how to build a faster one from the same source")
    .option("--cmake [dir]", `print the commands that build llama.cpp's shared libraries for HQUANT_LLAMA_DIR under DIR (default ./${DEFAULT_DIR})`)
    .action((opts: { cmake?: string | boolean }) => {
      if (opts.cmake !== undefined) {
        const recipe = runtimeRecipe(typeof opts.cmake === "string" ? opts.cmake : DEFAULT_DIR);
        process.stdout.write(`# llama.cpp's shared libraries for this CPU, from ${recipe.source} (the source of the npm prebuilt)\n`);
        process.stdout.write(`${recipe.commands.join("\n")}\n`);
        return;
      }
      const r = runtimeReport();
      const features = r.features.filter((f) => f.value !== "0").map((f) => (f.value === "1" ? f.name : `${f.name}=${f.value}`));
      process.stdout.write(`library:     ${r.libraryDir}\n`);
      process.stdout.write(`source:      ${r.source}\n`);
      process.stdout.write(`CPU backend: ${r.cpuBackend ?? "unknown"}\n`);
      process.stdout.write(`features:    ${features.join(" ") || "none reported"}\n`);
      process.stdout.write(`compiler:    ${r.compiler ?? "unknown"}\n`);
      if (!process.env.HQUANT_LLAMA_DIR) {
        process.stdout.write("\nThe npm prebuilt's F16 matrix products take about twice the CPU of a cmake build of the same\nsource (README, \"Evaluation speed\"). `hquant runtime --cmake` prints how to build one.\n");
      }
    });
}
