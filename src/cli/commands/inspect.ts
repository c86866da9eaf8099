// `hquant inspect FILE [--json [FILE]]`: architecture, file type, sizes, per-type table, per-layer
// type map, and the quantize.imatrix.* and hquant.* keys (how the file was made).
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { reportToJson, renderReport } from "../../gguf/inspect.js";
import { inspect } from "../../index.js";
import { jsonTarget, writeJson } from "../args.js";
import { commandSignal } from "../signals.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a GGUF model's architecture, file type, sizes, tensor types and per-layer type map (local path, split shard or http(s) URL)")
    .argument("<file>", "GGUF file, any shard of a split model, or an http(s) URL")
    .option("--timeout <seconds>", "http(s): seconds to wait for an answer or for data (default 30)")
    .option("--json [file]", "the report as JSON, on stdout or into FILE")
    .action(async (file: string, opts: { json?: string | boolean; timeout?: string }) => {
      const json = jsonTarget(opts.json);
      const timeout = opts.timeout === undefined ? undefined : Number(opts.timeout);
      if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0)) throw new UserError(`--timeout: ${JSON.stringify(opts.timeout)} is not a number of seconds`);
      const report = await inspect(file, { timeoutMs: timeout === undefined ? undefined : timeout * 1000, signal: commandSignal() });
      if (json !== undefined) writeJson(json, reportToJson(report));
      else process.stdout.write(renderReport(report));
    });
}
