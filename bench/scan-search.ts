// The README's search table: on the bundled model, a greedy delete search to --target-layers and a
// LaCo run to ≤ --max-compression, searched on the calibration text with few chunks, each compared
// with the best single-shot choice at the same layer count (the top-k deletes of one scan — the
// greedy search's first step — applied together), all reported by KLD on eval-test with more chunks.
//
//   npx tsx bench/scan-search.ts [--search-chunks 8] [--report-chunks 16] [--target-layers 14]
//        [--merge-count 3] [--lowest 2] [--highest 12] [--interval 2] [--threshold 0.85]
//        [--max-compression 0.25] [--threads 2] [--cache-dir DIR]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultCacheDir } from "../src/eval/run.js";
import { greedySearch, greedyMarkdown } from "../src/scan/greedy.js";
import { HiddenStateSimilarity, lacoSearch } from "../src/scan/laco.js";
import { CandidateMeasurer, type Measurement } from "../src/scan/measure.js";
import type { SurgeryOp } from "../src/surgery/index.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const CALIB = "test/fixtures/calib.txt";
const EVAL = "test/fixtures/eval-test.txt";

const { values } = parseArgs({
  options: {
    "search-chunks": { type: "string", default: "8" },
    "report-chunks": { type: "string", default: "16" },
    "target-layers": { type: "string", default: "14" },
    "merge-count": { type: "string", default: "3" },
    lowest: { type: "string", default: "2" },
    highest: { type: "string", default: "12" },
    interval: { type: "string", default: "2" },
    threshold: { type: "string", default: "0.85" },
    "max-compression": { type: "string", default: "0.25" },
    threads: { type: "string", default: String(Math.max(1, os.availableParallelism())) },
    "cache-dir": { type: "string", default: defaultCacheDir() },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const common = { ctx: 256, threads: num("threads"), cacheDir: values["cache-dir"]! };
const t0 = Date.now();
const since = (t: number) => `${((Date.now() - t) / 1000).toFixed(0)} s`;
const log = (s: string) => process.stderr.write(`[${since(t0)}] ${s}\n`);

const search = await CandidateMeasurer.open({ base: BASE, text: fs.readFileSync(CALIB, "utf8"), textName: path.basename(CALIB), chunks: num("search-chunks"), ...common });
log(`search base on ${CALIB}: PPL ${search.base.ppl.toFixed(4)}, ${search.base.plan.nChunk} chunks, ${search.cache.size} cached measurements`);
try {
  // greedy delete search
  let t = Date.now();
  const greedy = await greedySearch({
    nLayer: search.nLayer,
    ops: ["delete"],
    targetLayers: num("target-layers"),
    measure: search.measure,
    onCandidate: (step, i, n, c) => log(`greedy step ${step}: ${i + 1}/${n} ${c.label}`),
  });
  process.stdout.write(`## greedy delete search on ${CALIB} (${search.base.plan.nChunk} chunks), ${since(t)}\n\n${greedyMarkdown(greedy, { ppl: search.base.ppl, layers: search.nLayer })}\n`);

  // the one-pass scan is the greedy search's first step (same surgery, same cache entries)
  const scan: { layer: number; m: Measurement }[] = [];
  for (let layer = 0; layer < search.nLayer; layer++) scan.push({ layer, m: await search.measure([{ op: "delete", layers: [layer] }]) });
  scan.sort((a, b) => a.m.kld - b.m.kld || a.m.dPpl - b.m.dPpl || a.layer - b.layer);
  const singleShot = (k: number): SurgeryOp[] => [{ op: "delete", layers: scan.slice(0, k).map((r) => r.layer).sort((a, b) => a - b) }];

  // LaCo
  t = Date.now();
  const sim = await HiddenStateSimilarity.open(search);
  log(`base hidden states: ${since(t)}`);
  const laco = await lacoSearch({
    nLayer: search.nLayer,
    mergeCount: num("merge-count"),
    lowest: num("lowest"),
    highest: num("highest"),
    interval: num("interval"),
    threshold: num("threshold"),
    maxCompression: num("max-compression"),
    similarity: sim.similarity,
    measure: search.measure,
    onTrial: (tr) => log(`laco ${tr.label}: similarity ${tr.similarity.toFixed(4)} ${tr.accepted ? "kept" : "rejected"}`),
  });
  const lacoLines = ["| trial | merge | similarity | kept | layers | KLD (search) |", "|---:|:---|---:|:---|---:|---:|"];
  laco.trials.forEach((tr, i) => lacoLines.push(`| ${i + 1} | ${tr.label} | ${tr.similarity.toFixed(4)} | ${tr.accepted ? "yes" : "no"} | ${tr.accepted ? tr.layers : ""} | ${tr.measurement ? tr.measurement.kld.toFixed(6) : ""} |`));
  process.stdout.write(`## LaCo on ${CALIB}, ${since(t)}\n\n${lacoLines.join("\n")}\n\nstopped: ${laco.stopped}\n\n`);

  // the report: every final stack on eval-test
  t = Date.now();
  const report = await CandidateMeasurer.open({ base: BASE, text: fs.readFileSync(EVAL, "utf8"), textName: path.basename(EVAL), chunks: num("report-chunks"), ...common });
  try {
    const greedyRemoved = search.nLayer - search.layersAfter(greedy.surgery);
    const lacoRemoved = search.nLayer - laco.layers;
    const rows: [string, string, SurgeryOp[]][] = [
      [`greedy delete → ${search.nLayer - greedyRemoved} layers`, greedy.steps.map((s) => s.label).join(", "), greedy.surgery],
      [`single-shot top-${greedyRemoved} deletes`, `delete ${(singleShot(greedyRemoved)[0] as { layers: number[] }).layers.join(",")}`, singleShot(greedyRemoved)],
    ];
    if (lacoRemoved > 0) {
      rows.push([`LaCo → ${laco.layers} layers`, laco.surgery.map((o) => laco.trials.find((tr) => tr.edit === o)!.label).join(", "), laco.surgery]);
      rows.push([`single-shot top-${lacoRemoved} deletes`, `delete ${(singleShot(lacoRemoved)[0] as { layers: number[] }).layers.join(",")}`, singleShot(lacoRemoved)]);
    }
    const lines = [
      `| method | surgery | layers | PPL (${EVAL.split("/").pop()}) | KLD | same top % |`,
      "|:---|:---|---:|---:|---:|---:|",
      `| base | | ${search.nLayer} | ${report.base.ppl.toFixed(4)} ± ${report.base.pplErr.toFixed(4)} | | |`,
    ];
    for (const [method, desc, surgery] of rows) {
      const m = await report.measure(surgery);
      lines.push(`| ${method} | ${desc} | ${m.layers} | ${m.ppl.toFixed(4)} ± ${m.pplErr.toFixed(4)} | ${m.kld.toFixed(6)} ± ${m.kldErr.toFixed(6)} | ${m.topTokenPct.toFixed(2)} |`);
    }
    process.stdout.write(`## on ${EVAL} (ctx 256, ${report.base.plan.nChunk} chunks), ${since(t)}\n\n${lines.join("\n")}\n\n`);
  } finally {
    await report.close();
  }
  log(`total ${since(t0)}; search measurements built ${search.misses}, from cache ${search.hits}`);
} finally {
  await search.close();
}
