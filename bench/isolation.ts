// The cost of running evaluations in the evaluation process (src/runtime/isolation.ts) instead of
// in hquant's own: the base pass (PPL + --kl-divergence-base distributions) and a KL-divergence
// pass, in process (HQUANT_ISOLATION=0's path) and isolated, interleaved A/B in the same run. The
// isolated timing includes its messages (the base's tokens and text go to the child for each file)
// and, on the first call, the child's start.
//
//   npx tsx bench/isolation.ts [--model models/tinyllama-16l-f16.gguf] [--ctx 256] [--chunks 8] [--threads 2] [--reps 3]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execSync } from "node:child_process";
import { parseArgs } from "node:util";
import * as direct from "../src/eval/evaluate.js";
import * as isolated from "../src/eval/isolated.js";
import { stopIsolation } from "../src/runtime/isolation.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "models/tinyllama-16l-f16.gguf" },
    ctx: { type: "string", default: "256" },
    chunks: { type: "string", default: "8" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "3" },
  },
});
const text = fs.readFileSync("test/fixtures/eval-test.txt", "utf8");
const opts = { ctx: Number(values.ctx), chunks: Number(values.chunks), threads: Number(values.threads) };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-isolation-"));

async function once(impl: typeof direct, tag: string): Promise<{ base: number; kld: number }> {
  const cacheDir = fs.mkdtempSync(path.join(tmp, tag));
  const t0 = performance.now();
  const base = await impl.evaluateBase(values.model!, text, "eval-test.txt", { ...opts, cacheDir });
  const t1 = performance.now();
  await impl.evaluateAgainstBase(base, values.model!, { ...opts, cacheDir });
  const t2 = performance.now();
  fs.rmSync(cacheDir, { recursive: true, force: true });
  return { base: t1 - t0, kld: t2 - t1 };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
try {
  console.log(`uptime: ${execSync("uptime").toString().trim()}`);
  console.log(`model ${values.model}, ctx ${opts.ctx}, ${opts.chunks} chunks, ${opts.threads} threads, ${values.reps} reps (A/B interleaved)`);
  const a: { base: number; kld: number }[] = [];
  const b: { base: number; kld: number }[] = [];
  // warm-up of both (library load, worker threads, the evaluation process's start)
  await once(direct, "warm-a");
  await once(isolated as unknown as typeof direct, "warm-b");
  for (let r = 0; r < Number(values.reps); r++) {
    a.push(await once(direct, "a"));
    b.push(await once(isolated as unknown as typeof direct, "b"));
  }
  for (const k of ["base", "kld"] as const) {
    const ma = median(a.map((x) => x[k]));
    const mb = median(b.map((x) => x[k]));
    console.log(`${k} pass: in process ${ma.toFixed(0)} ms, isolated ${mb.toFixed(0)} ms, ratio isolated/in-process ${(mb / ma).toFixed(3)}`);
  }
  const ta = median(a.map((x) => x.base + x.kld));
  const tb = median(b.map((x) => x.base + x.kld));
  console.log(`both passes: ratio ${(tb / ta).toFixed(3)}`);
  console.log(`uptime: ${execSync("uptime").toString().trim()}`);
} finally {
  stopIsolation();
  fs.rmSync(tmp, { recursive: true, force: true });
}
