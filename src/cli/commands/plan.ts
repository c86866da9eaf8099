// PLACEHOLDER: the real command replaces this file.
import type { Command } from "commander";

export function registerPlan(program: Command): void {
  program.command("plan").description("(not yet implemented)");
}
