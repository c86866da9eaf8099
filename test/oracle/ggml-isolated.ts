// ggml_quantize_chunk in child processes, row by row: some of ggml's quantizers assert (abort the
// whole process) on some rows, which must not take the test runner down. A row that kills its
// child is reported as aborted (with the assert ggml printed) and the rest go on in a new child.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GGMLType } from "../../src/gguf/ggml-types.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(HERE, "ggml-child.ts");
const TSX = path.join(HERE, "../../node_modules/tsx/dist/loader.mjs");

/** The exact f32 bits (JSON numbers would lose -0). */
const f32Base64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");

export type IsolatedRow = { bytes: Uint8Array } | { aborted: string };

/** Each row quantized alone (as a batch of one) by the oracle, or how its child died. */
export function oracleQuantizeIsolated(type: GGMLType, rows: readonly Float32Array[], ncols: number, imatrix: Float32Array | null): IsolatedRow[] {
  const results: IsolatedRow[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-ggml-rows-"));
  try {
    while (results.length < rows.length) {
      const start = results.length;
      const jobFile = path.join(dir, `rows-${start}.json`);
      fs.writeFileSync(jobFile, JSON.stringify({ type, ncols, rows: rows.slice(start).map(f32Base64), imatrix: imatrix && f32Base64(imatrix) }));
      const r = spawnSync(process.execPath, ["--import", TSX, CHILD, jobFile], { encoding: "utf8", maxBuffer: 64 << 20 });
      for (const line of r.stdout.split("\n")) if (line !== "") results.push({ bytes: new Uint8Array(Buffer.from(line, "base64")) });
      if (results.length < rows.length) {
        if (r.status === 0) throw new Error(`ggml oracle child stopped after ${results.length} of ${rows.length} rows: ${r.stderr}`);
        const tail = r.stderr.split("\n").filter((l) => l.trim() !== "").slice(-2).join(" | ");
        results.push({ aborted: tail || `signal ${r.signal ?? r.status}` });
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
