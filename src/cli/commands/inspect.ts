// `hquant inspect FILE [--json]`: architecture, sizes, per-type table and per-layer type map.
import type { Command } from "commander";
import { inspectModel, renderReport, reportToJson } from "../../gguf/inspect.js";
import { openModel } from "../../gguf/reader.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a GGUF model's architecture, sizes, tensor types and per-layer type map (local path, split shard or http(s) URL)")
    .argument("<file>", "GGUF file, any shard of a split model, or an http(s) URL")
    .option("--json", "print the report as JSON")
    .action(async (file: string, opts: { json?: boolean }) => {
      const report = inspectModel(await openModel(file));
      process.stdout.write(opts.json ? reportToJson(report) + "\n" : renderReport(report));
    });
}
