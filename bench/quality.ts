// Reproduces the README quality figure for the benchmark model: PPL / KLD vs size at ctx 256 on
// eval-test.txt, for llama.cpp's standard file types (made by llama.cpp's own llama_model_quantize,
// through the koffi oracle) with and without imatrix, and hquant's presets when `hquant build` is
// available — each row next to llama-perplexity's own figure from anchors.json.
//
//   npx tsx bench/quality.ts [--types Q2_K,…,Q8_0] [--presets Q4_K_H,…] [--no-imatrix] [--chunks N]
//                            [--out docs/bench] [--files-dir DIR] [--threads 2] [--cache-dir DIR]
// The quantized files go to --files-dir (default: the OS temp dir), and are reused when present.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { runBench, writeReportFiles, type BenchTarget } from "../src/bench/run.js";
import { markdownTable } from "../src/bench/report.js";
import { llamaQuantize } from "../test/oracle/llama.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/eval-test.txt";
const IMATRIX = "/work/shared/models/imatrix.gguf";
const ANCHORS = "test/fixtures/bench/anchors.json";
const DEFAULT_TYPES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"];

const { values } = parseArgs({
  options: {
    types: { type: "string" },
    presets: { type: "string" },
    "no-imatrix": { type: "boolean" },
    "imatrix-only": { type: "boolean" },
    chunks: { type: "string" },
    out: { type: "string", default: "docs/bench" },
    threads: { type: "string", default: "2" },
    "cache-dir": { type: "string" },
    "files-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-files") },
    imatrix: { type: "string", default: fs.existsSync(IMATRIX) ? IMATRIX : undefined },
  },
});

const types = values.types ? values.types.split(",") : DEFAULT_TYPES;
const threads = Number(values.threads);
const outDir = values.out!;
const filesDir = values["files-dir"]!;
fs.mkdirSync(filesDir, { recursive: true });
const variants = [
  ...(values["imatrix-only"] ? [] : [{ suffix: "", imatrix: undefined as string | undefined }]),
  ...(values["no-imatrix"] || !values.imatrix ? [] : [{ suffix: "-imat", imatrix: values.imatrix }]),
];

const targets: BenchTarget[] = [];
for (const v of variants) {
  for (const t of types) {
    const file = path.join(filesDir, `tinyllama-16l-${t}${v.suffix}.gguf`);
    if (!fs.existsSync(file)) {
      process.stderr.write(`llama.cpp quantize ${t}${v.suffix}\n`);
      llamaQuantize(BASE, file, { ftype: t, threads, imatrixFile: v.imatrix });
    }
    targets.push({ file, label: `${t}${v.suffix}`, producer: "llama.cpp", imatrix: Boolean(v.imatrix) });
  }
  for (const p of values.presets ? values.presets.split(",") : []) {
    const file = path.join(filesDir, `tinyllama-16l-hquant-${p}${v.suffix}.gguf`);
    if (!fs.existsSync(file)) {
      process.stderr.write(`hquant build ${p}${v.suffix}\n`);
      const [{ buildModel }, { scheduleFromOptions }, { archNumber }] = await Promise.all([
        import("../src/build/index.js"),
        import("../src/plan/options.js"),
        import("../src/gguf/model.js"),
      ]);
      await buildModel({
        input: BASE,
        output: file,
        threads,
        imatrix: v.imatrix,
        schedule: (m) => scheduleFromOptions({ preset: p, imatrix: v.imatrix }, archNumber(m.kv, "block_count") ?? 0),
      });
    }
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

const written = writeReportFiles(outDir, report, "kld", "tinyllama-16l · eval-test.txt · ctx 256 — KLD vs F16 against size");
process.stdout.write(markdownTable(report.rows, report.base));

// side by side with llama-perplexity (anchors.json, full text, same ctx)
const anchors = JSON.parse(fs.readFileSync(ANCHORS, "utf8")) as { results: Record<string, { ppl: number; kld_mean?: number; kld_99?: number; same_top_pct?: number }> };
const lines = ["", `llama-perplexity figures (anchors.json, ${report.chunks === 198 ? "same" : "FULL text vs this run's " + report.chunks + " chunks"}):`, "", "| file | PPL hquant | PPL llama.cpp | Δ PPL % | KLD hquant | KLD llama.cpp | KLD p99 hquant | KLD p99 llama.cpp | top % hquant | top % llama.cpp |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"];
const f16 = anchors.results.F16;
lines.push(`| F16 (base) | ${report.base!.ppl.toFixed(4)} | ${f16.ppl.toFixed(4)} | ${(100 * (report.base!.ppl / f16.ppl - 1)).toFixed(3)} | | | | | | |`);
for (const r of report.rows) {
  const a = anchors.results[r.label];
  if (!a) continue;
  lines.push(
    `| ${r.label} | ${r.ppl.toFixed(4)} | ${a.ppl.toFixed(4)} | ${(100 * (r.ppl / a.ppl - 1)).toFixed(3)} | ${r.kld.toFixed(6)} | ${a.kld_mean?.toFixed(6)} | ${r.kld99.toFixed(6)} | ${a.kld_99?.toFixed(6)} | ${r.topTokenPct.toFixed(3)} | ${a.same_top_pct?.toFixed(3)} |`,
  );
}
const comparison = lines.join("\n") + "\n";
process.stdout.write(comparison);
fs.appendFileSync(path.join(outDir, "bench.md"), comparison);
process.stderr.write(`wrote ${written.join(", ")} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
