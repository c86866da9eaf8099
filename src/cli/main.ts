// The command line: thin. Each command lives in src/cli/commands/<name>.ts and only parses options,
// calls the library and prints; user errors become one line on stderr and exit code 1.
// A command's module (and the library it pulls in) is imported only when that command runs; help,
// unknown commands and the like load them all, so `hquant --help` still lists every command.
import { Command, CommanderError } from "commander";
import { UserError } from "../errors.js";
import { HQUANT_VERSION } from "../version.js";
import { exitCodeFor, installSignalHandlers, interruptNoteOr, receivedSignal } from "./signals.js";
import { normalizeGpuFlags } from "./gpu-options.js";
import { endIsolation } from "../runtime/isolation.js";
import { startEvaluationProcess } from "./evaluation-start.js";

type Register = (program: Command) => void;

/** Command name → its module's register function, in help order. */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  inspect: async () => (await import("./commands/inspect.js")).registerInspect,
  plan: async () => (await import("./commands/plan.js")).registerPlan,
  build: async () => (await import("./commands/build.js")).registerBuild,
  bench: async () => (await import("./commands/bench.js")).registerBench,
  scan: async () => (await import("./commands/scan.js")).registerScan,
  imatrix: async () => (await import("./commands/imatrix.js")).registerImatrix,
  tune: async () => (await import("./commands/tune.js")).registerTune,
  runtime: async () => (await import("./commands/runtime.js")).registerRuntime,
  release: async () => (await import("./commands/release.js")).registerRelease,
  cache: async () => (await import("./commands/cache.js")).registerCache,
};

/** `error: required option '--text <file>' not specified` → `hquant: required option …` (one line). */
export function commanderErrorLine(message: string): string {
  const lines = message.trim().split("\n");
  return `hquant: ${lines[0]!.replace(/^error: /, "")}\n${lines.slice(1).map((l) => `${l}\n`).join("")}`;
}

/** The program with the commands `argv` may run: the one it names, or all of them. */
export async function makeProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command("hquant")
    .description("Hybrid per-layer quantization compiler for GGUF models (byte-identical with llama.cpp)")
    .version(HQUANT_VERSION, "-V, --version", "print hquant's version")
    .exitOverride()
    // commander's own errors (a missing option, an unknown one) in the one-line form of every other
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(commanderErrorLine(s)) });
  const named = argv[2];
  const names = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
  const registers = await Promise.all(names.map((n) => COMMANDS[n]!()));
  for (const register of registers) register(program);
  return program;
}

/**
 * Runs the CLI; resolves to the process exit code: 0, 1 for bad input, 128 + N when signal N
 * (SIGHUP 1, SIGINT 2, SIGTERM 15) interrupted the command.
 */
export async function main(argv: string[]): Promise<number> {
  argv = normalizeGpuFlags(argv);
  startEvaluationProcess(argv);
  const removeSignalHandlers = installSignalHandlers();
  try {
    await (await makeProgram(argv)).parseAsync(argv);
    return 0;
  } catch (err) {
    const sig = receivedSignal();
    if (sig !== undefined) {
      // the library removed its temp files while unwinding
      process.stderr.write(`\nhquant: interrupted${sig === "SIGINT" ? "" : ` by ${sig}`}${interruptNoteOr(", no output written")}\n`);
      return exitCodeFor(sig);
    }
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    if (err instanceof UserError) {
      process.stderr.write(`hquant: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    removeSignalHandlers();
    // reaped here: its CPU time counts in this process's, and it does not outlive the command
    await endIsolation();
  }
}
