// The header fuzzer of test/gguf-fuzz.test.ts, for ≥ 100 000 cases (default 100 000, seed 0x5eed).
// Usage (from the repo root):  node <compiled bench/fuzz.js> [cases] [seed]
// Prints the figures: cases, parsed, clean errors, failures, max time per case, max heap growth, wall time.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runFuzz } from "../test/fuzz-core.js";
import { fuzzSeeds } from "../test/fuzz-seeds.js";

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 0x5eed);
const dir = mkdtempSync(path.join(os.tmpdir(), "hquant-fuzz-bench-"));
try {
  const seeds = await fuzzSeeds(dir, process.cwd());
  const s = await runFuzz(seeds, cases, seed);
  console.log(`seeds: ${seeds.map((x) => `${x.name} (${x.boundaries[x.boundaries.length - 1]} header bytes)`).join(", ")}`);
  console.log(`cases:            ${s.cases}`);
  console.log(`parsed OK:        ${s.parsed} (+ ${s.parsedNaN} with a NaN float whose bits JS does not keep)`);
  console.log(`clean UserError:  ${s.userErrors}`);
  console.log(`failures:         ${s.failures.length}`);
  for (const f of s.failures.slice(0, 20)) console.log(`  ${f}`);
  console.log(`max time / case:  ${s.maxCaseMs.toFixed(1)} ms`);
  console.log(`max heap growth:  ${(s.maxHeapGrowthBytes / 1048576).toFixed(1)} MiB`);
  console.log(`wall time:        ${(s.wallMs / 1000).toFixed(1)} s`);
  console.log(`mutations:        ${JSON.stringify(s.byMutation)}`);
  process.exitCode = s.failures.length === 0 ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
