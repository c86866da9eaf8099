// The command line: thin. Each command lives in src/cli/commands/<name>.ts and only parses options,
// calls the library and prints; user errors become one line on stderr and exit code 1.
import { Command, CommanderError } from "commander";
import { UserError } from "../errors.js";
import { registerInspect } from "./commands/inspect.js";
import { registerPlan } from "./commands/plan.js";
import { registerBuild } from "./commands/build.js";
import { registerBench } from "./commands/bench.js";
import { registerScan } from "./commands/scan.js";

export function makeProgram(): Command {
  const program = new Command("hquant")
    .description("Hybrid per-layer quantization compiler for GGUF models (byte-identical with llama.cpp)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerInspect(program);
  registerPlan(program);
  registerBuild(program);
  registerBench(program);
  registerScan(program);
  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await makeProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    if (err instanceof UserError) {
      process.stderr.write(`hquant: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
