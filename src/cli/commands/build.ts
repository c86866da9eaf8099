// PLACEHOLDER: the real command replaces this file.
import type { Command } from "commander";

export function registerBuild(program: Command): void {
  program.command("build").description("(not yet implemented)");
}
