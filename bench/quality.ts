// Reproduces the README quality figure for the benchmark model: PPL / KL-divergence vs size at
// ctx 256 on eval-test.txt, for llama.cpp's standard file types and hquant's hybrid presets, with
// and without imatrix — every file built by hquant (`buildModel`; its standard-type files are
// byte-identical to llama-quantize's) — each standard type next to llama-perplexity's own figure
// for llama.cpp's file (anchors.json).
//
//   npx tsx bench/quality.ts [--types IQ1_S,…,Q8_0] [--presets Q3_K_H,…] [--no-imatrix] [--chunks N]
//                            [--out docs/bench] [--files-dir DIR] [--threads 2] [--cache-dir DIR]
// The built files go to --files-dir (default: the OS temp dir) and are reused when present.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildModel } from "../src/build/index.js";
import { archNumber } from "../src/gguf/model.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { planModel } from "../src/plan/planner.js";
import { runBench, writeReportFiles, type BenchTarget } from "../src/eval/run.js";
import { markdownTable } from "../src/eval/report.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/eval-test.txt";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const ANCHORS = "test/fixtures/bench/anchors.json";
const DEFAULT_TYPES = [
  "IQ1_S", "IQ1_M", "TQ1_0", "Q1_0", "IQ2_XXS", "TQ2_0", "IQ2_XS", "Q2_0", "IQ2_S", "IQ2_M",
  "Q2_K", "IQ3_XXS", "IQ3_XS", "IQ3_S", "Q3_K_S", "IQ3_M", "Q3_K_M", "Q3_K_L", "Q4_0", "MXFP4_MOE", "Q4_K_S", "Q4_K_M", "IQ4_XS",
  "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
];
const DEFAULT_PRESETS = ["IQ2_H", "Q3_K_H", "Q4_K_H", "Q5_K_H", "Q6_K_H", "Q4_K_QKV16"];

const { values } = parseArgs({
  options: {
    types: { type: "string" },
    presets: { type: "string" },
    "no-imatrix": { type: "boolean" },
    chunks: { type: "string" },
    out: { type: "string", default: "docs/bench" },
    threads: { type: "string", default: "2" },
    "cache-dir": { type: "string" },
    "files-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-files") },
    imatrix: { type: "string", default: IMATRIX },
  },
});

const types = values.types ? values.types.split(",") : DEFAULT_TYPES;
const presets = values.presets !== undefined ? values.presets.split(",").filter(Boolean) : DEFAULT_PRESETS;
const threads = Number(values.threads);
const outDir = values.out!;
const filesDir = values["files-dir"]!;
fs.mkdirSync(filesDir, { recursive: true });
const variants = [{ suffix: "", imatrix: undefined as string | undefined }, ...(values["no-imatrix"] ? [] : [{ suffix: "-imat", imatrix: values.imatrix }])];

/**
 * Builds `name` (a standard type's preset or a hybrid preset) with hquant unless the file exists.
 * false when the type cannot be made without an imatrix (the low-bit ones) and none is given.
 */
async function build(name: string, imatrix: string | undefined, file: string): Promise<boolean> {
  if (fs.existsSync(file)) return true;
  if (!imatrix) {
    const header = await readHeaderAt(BASE);
    const plan = planModel(header, scheduleFromOptions({ preset: name }, archNumber(header.kv, "block_count") ?? 0));
    if (plan.tensors.some((t) => t.requiresImatrix)) {
      process.stderr.write(`skip ${path.basename(file)}: ${name} needs an importance matrix\n`);
      return false;
    }
  }
  process.stderr.write(`hquant build ${path.basename(file)}\n`);
  const tmp = `${file}.tmp`;
  await buildModel({
    input: BASE,
    output: tmp,
    threads,
    imatrix,
    schedule: (m) => scheduleFromOptions({ preset: name, imatrix }, archNumber(m.kv, "block_count") ?? 0),
  });
  fs.renameSync(tmp, file);
  return true;
}

const targets: BenchTarget[] = [];
for (const v of variants) {
  for (const t of types) {
    const file = path.join(filesDir, `tinyllama-16l-${t}${v.suffix}.gguf`);
    if (!(await build(t, v.imatrix, file))) continue;
    targets.push({ file, label: `${t}${v.suffix}`, producer: "hquant", imatrix: Boolean(v.imatrix) });
  }
  for (const p of presets) {
    const file = path.join(filesDir, `tinyllama-16l-${p}${v.suffix}.gguf`);
    if (!(await build(p, v.imatrix, file))) continue;
    targets.push({ file, label: `${p}${v.suffix}`, preset: p, producer: "hquant", imatrix: Boolean(v.imatrix) });
  }
}

const started = Date.now();
const report = await runBench({
  base: BASE,
  text: fs.readFileSync(TEXT, "utf8"),
  textName: path.basename(TEXT),
  targets,
  ctx: 256,
  chunks: values.chunks ? Number(values.chunks) : undefined,
  threads,
  cacheDir: values["cache-dir"] ?? path.join(os.tmpdir(), "hquant-bench-cache"),
  onFile: (f, k, n) => process.stderr.write(`[${k + 1}/${n}] ${path.basename(f)} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`),
});

const title = `tinyllama-16l · eval-test.txt · ctx 256 · ${report.chunks} chunks — KLD vs F16 against size`;
const written = writeReportFiles(outDir, report, "kld", title);
process.stdout.write(markdownTable(report.rows, report.base));

// side by side with llama-perplexity on llama.cpp's own files (anchors.json: full text, same ctx)
const anchors = JSON.parse(fs.readFileSync(ANCHORS, "utf8")) as { results: Record<string, { ppl: number; kld_mean?: number; kld_99?: number; same_top_pct?: number }> };
const full = report.chunks === 198;
const lines = [
  "",
  `llama-perplexity on llama.cpp's files (anchors.json, ${full ? "the same 198 chunks" : `the FULL text (198 chunks), this run ${report.chunks} chunks — not directly comparable`}):`,
  "",
  "| file | PPL hquant | PPL llama.cpp | Δ PPL % | KLD hquant | KLD llama.cpp | KLD p99 hquant | KLD p99 llama.cpp | top % hquant | top % llama.cpp |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
const f16 = anchors.results.F16;
lines.push(`| F16 (base) | ${report.base!.ppl.toFixed(4)} | ${f16.ppl.toFixed(4)} | ${(100 * (report.base!.ppl / f16.ppl - 1)).toFixed(3)} | | | | | | |`);
for (const r of report.rows) {
  const a = anchors.results[r.label];
  if (!a) continue;
  lines.push(
    `| ${r.label} | ${r.ppl.toFixed(4)} | ${a.ppl.toFixed(4)} | ${(100 * (r.ppl / a.ppl - 1)).toFixed(3)} | ${r.kld.toFixed(6)} | ${a.kld_mean?.toFixed(6)} | ${r.kld99.toFixed(6)} | ${a.kld_99?.toFixed(6)} | ${r.topTokenPct.toFixed(3)} | ${a.same_top_pct?.toFixed(3)} |`,
  );
}
// the options that change the figures (not where files go)
const args = [
  values.types ? `--types ${values.types}` : "",
  values.presets !== undefined ? `--presets ${values.presets}` : "",
  values["no-imatrix"] ? "--no-imatrix" : "",
  values.chunks ? `--chunks ${values.chunks}` : "",
].filter(Boolean);
lines.push("", `Every file built by hquant (presets/*.json; imatrix: ${values["no-imatrix"] ? "none" : values.imatrix}). Reproduce: \`npx tsx bench/quality.ts ${args.join(" ")}\`.`);
const comparison = lines.join("\n") + "\n";
process.stdout.write(comparison);
fs.appendFileSync(path.join(outDir, "bench.md"), comparison);
process.stderr.write(`wrote ${written.join(", ")}; evaluation ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
