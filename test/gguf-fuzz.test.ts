// ≥ 10 000 seeded header mutations (see test/fuzz-core.ts): each parses consistently or fails
// with a clean one-line UserError; no other exception, no case over 1 s, no read or allocation
// beyond what the file's size justifies. bench/fuzz.ts runs the same for ≥ 100 000 cases.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { runFuzz } from "./fuzz-core.js";
import { fuzzSeeds } from "./fuzz-seeds.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-fuzz-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it("10 000 mutated headers: parse consistently or a clean UserError", async () => {
  const seeds = await fuzzSeeds(tmp, ROOT);
  // a hang detector, not a speed check: a shared CI box may pause a case for a GC or a neighbour
  const stats = await runFuzz(seeds, 10_000, 0x5eed, 10_000);
  console.log(`fuzz: ${JSON.stringify({ ...stats, failures: stats.failures.length })}`);
  expect(stats.failures.slice(0, 10)).toEqual([]);
  expect(stats.cases).toBe(10_000);
  expect(stats.parsed + stats.parsedNaN + stats.userErrors).toBe(10_000);
  // the mutations reach both outcomes
  expect(stats.parsed).toBeGreaterThan(100);
  expect(stats.userErrors).toBeGreaterThan(5000);
});
