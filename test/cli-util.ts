// Running the CLI from tests: as a child process (exit code, stdout, stderr as a user sees them),
// or one command in process (its UserError message or commander's error code).
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { Command, CommanderError } from "commander";
import { UserError } from "../src/errors.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");

/** `hquant ARGS…` in a child process, from the repo root. */
export function hquant(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One command registered on a bare program: "ok", the UserError message, or "commander: <code>". */
export async function runCommand(register: (program: Command) => void, name: string, args: string[]): Promise<string> {
  const program = new Command("hquant").exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  try {
    await program.parseAsync(["node", "hquant", name, ...args]);
  } catch (err) {
    if (err instanceof UserError) return err.message;
    if (err instanceof CommanderError) return `commander: ${err.code}`;
    throw err;
  }
  return "ok";
}

/**
 * `hquant ARGS…` in a child process without blocking the test worker's event loop (a long
 * spawnSync on a loaded machine starves vitest's own messages).
 */
export function hquantAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
