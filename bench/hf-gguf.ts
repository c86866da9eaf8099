// bench/hf-gguf: is @huggingface/gguf fit to parse hquant's inputs? The header fuzzer's cases
// (test/fuzz-core.ts: mutated real headers) go to both parsers — hquant's reader and
// @huggingface/gguf's gguf() (served from memory through its `fetch` option, as an http source
// would be) — and the outcomes are cross-tabulated. A case hquant rejects that @huggingface/gguf
// "parses" is a hostile header it would hand on; its errors are counted by kind.
//
//   npx tsx bench/hf-gguf.ts [cases] [seed]        (default 20 000 cases, seed 0x5eed)
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf } from "@huggingface/gguf";
import { UserError } from "../src/errors.js";
import { readHeader } from "../src/gguf/reader.js";
import { memorySource } from "../src/gguf/source.js";
import { xorshift32 } from "../test/factory.js";
import { makeCase } from "../test/fuzz-core.js";
import { memoryFetch } from "../test/memory-fetch.js";
import { fuzzSeeds } from "../test/fuzz-seeds.js";

type Outcome = "parsed" | "rejected";

async function main(): Promise<void> {
  const cases = Number(process.argv[2] ?? 20_000);
  const seed = Number(process.argv[3] ?? 0x5eed);
  const dir = mkdtempSync(path.join(os.tmpdir(), "hquant-hf-gguf-"));
  try {
    const seeds = await fuzzSeeds(dir, process.cwd());
    const rand = xorshift32(seed);
    const table = new Map<string, number>();
    const hfErrors = new Map<string, number>();
    const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
    let hfMaxMs = 0;
    let hfNotError = 0;
    const examples: string[] = [];
    for (let i = 0; i < cases; i++) {
      const c = makeCase(seeds, rand);
      let ours: Outcome = "parsed";
      try {
        await readHeader(memorySource(c.bytes, "fuzz.gguf", c.size), "fuzz.gguf");
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        ours = "rejected";
      }
      let theirs: Outcome = "parsed";
      const t0 = performance.now();
      try {
        await gguf("https://example.invalid/fuzz.gguf", { fetch: memoryFetch(c.bytes, c.size), typedMetadata: true });
      } catch (err) {
        theirs = "rejected";
        if (!(err instanceof Error)) hfNotError++;
        const kind = err instanceof Error ? `${err.name}: ${err.message.replace(/\d+/g, "N").slice(0, 70)}` : typeof err;
        count(hfErrors, kind);
      }
      hfMaxMs = Math.max(hfMaxMs, performance.now() - t0);
      count(table, `hquant ${ours}, @huggingface/gguf ${theirs}`);
      if (ours === "rejected" && theirs === "parsed" && examples.length < 5) {
        try {
          await readHeader(memorySource(c.bytes, "fuzz.gguf", c.size), "fuzz.gguf");
        } catch (err) {
          examples.push(`case ${i} (${c.mutations.join("+")}): hquant: ${(err as Error).message}`);
        }
      }
    }
    console.log(`cases: ${cases} (seed ${seed}); seeds: ${seeds.map((s) => s.name).join(", ")}`);
    for (const [k, v] of [...table].sort()) console.log(`  ${k}: ${v}`);
    console.log(`@huggingface/gguf: slowest case ${hfMaxMs.toFixed(1)} ms; ${hfNotError} rejections not an Error; its errors by kind:`);
    for (const [k, v] of [...hfErrors].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${v}  ${k}`);
    console.log("headers hquant rejects and @huggingface/gguf parses, e.g.:");
    for (const e of examples) console.log(`  ${e}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
