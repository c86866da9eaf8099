// Does the imatrix change what a tuned schedule is worth? The same schedule (default: the README's
// IQ4_XS tune, docs/tune/tune-IQ4_XS.schedule.json, tuned with the imatrix on 8 chunks) built with
// and without the bundled imatrix, both evaluated against F16 on eval-test.txt at ctx 256 — beside
// IQ4_XS and Q4_K_M with and without it, so the imatrix's effect at ~4.4 bits on this model shows.
//
//   npx tsx bench/tune-imatrix-ab.ts [--schedule FILE] [--eval-chunks N] [--threads 2] [--cache-dir DIR]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildModel } from "../src/build/index.js";
import { evaluateAgainstBase, evaluateBase } from "../src/eval/evaluate.js";
import { parseSchedule, resolveSchedule, uniformSchedule } from "../src/plan/schedule.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const { values } = parseArgs({
  options: {
    schedule: { type: "string", default: "docs/tune/tune-IQ4_XS.schedule.json" },
    "eval-chunks": { type: "string" },
    threads: { type: "string", default: "2" },
    "cache-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-cache") },
  },
});
const opts = { ctx: 256, chunks: values["eval-chunks"] ? Number(values["eval-chunks"]) : undefined, threads: Number(values.threads), cacheDir: values["cache-dir"]! };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-ab-"));
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
process.stderr.write(`load ${load()}\n`);
try {
  const text = fs.readFileSync("test/fixtures/eval-test.txt", "utf8");
  const base = await evaluateBase(BASE, text, "eval-test.txt", opts);
  const { imatrix: _recorded, ...file } = parseSchedule(fs.readFileSync(values.schedule!, "utf8"), values.schedule!);
  const runs = [
    { label: `${path.basename(values.schedule!)} with the imatrix`, schedule: resolveSchedule(file, 16, values.schedule!), imatrix: IMATRIX as string | undefined },
    { label: `${path.basename(values.schedule!)} without`, schedule: resolveSchedule(file, 16, values.schedule!), imatrix: undefined },
    ...["IQ4_XS", "Q4_K_M"].flatMap((t) => [IMATRIX, undefined].map((im) => ({ label: `${t}${im ? "-imat" : ""}`, schedule: uniformSchedule(t as "IQ4_XS", 16), imatrix: im }))),
  ];
  console.log(`| file | bytes | KLD | ± | KLD p99 | same top % |\n|---|---:|---:|---:|---:|---:|`);
  for (const [k, r] of runs.entries()) {
    const out = path.join(dir, `${k}.gguf`);
    const built = await buildModel({ input: BASE, output: out, threads: opts.threads, imatrix: r.imatrix, schedule: r.schedule });
    const s = await evaluateAgainstBase(base, out, opts);
    console.log(`| ${r.label} | ${built.fileSize} | ${s.kld.toFixed(6)} | ${s.kldErr.toFixed(6)} | ${s.kld99.toFixed(5)} | ${s.topTokenPct.toFixed(2)} |`);
    fs.rmSync(out);
  }
  console.log(`(${base.plan.nChunk} chunks of eval-test.txt at ctx 256; load at the end ${load()})`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
