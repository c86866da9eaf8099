// The acceptance table of `hquant tune` on the bundled model: tuned files at the exact sizes of
// Q3_K_M, IQ4_XS, Q4_K_S and Q5_K_S (measure mode, one set of measurements on the calibration
// text, test/fixtures/calib.txt, a training-split slice) beside every standard file type and preset
// with and without the bundled imatrix, all evaluated on eval-test.txt at ctx 256; the required
// check (each tuned file beats every standard file / preset not larger than it), the goals, the
// timings (measure mode, and proxy mode for one budget).
//
//   npx tsx bench/tune.ts [--eval-chunks N] [--chunks 12] [--budgets Q3_K_M,IQ4_XS,Q4_K_S,Q5_K_S]
//                         [--out docs/tune] [--files-dir DIR] [--cache-dir DIR] [--threads 2]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildModel } from "../src/build/index.js";
import { archNumber } from "../src/gguf/model.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { runBench, writeFileAtomic, type BenchTarget } from "../src/eval/run.js";
import type { BenchRow } from "../src/eval/report.js";
import { tune, type TuneResult } from "../src/tune/index.js";
import { parseBudgets } from "../src/tune/budget.js";
import { writeTuneReport, acceptance } from "../src/tune/report.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const CALIB = "test/fixtures/calib.txt";
const TEXT = "test/fixtures/eval-test.txt";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const TYPES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_K_S", "Q4_K_M", "IQ4_XS", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"];
const PRESETS = ["Q3_K_H", "Q4_K_H", "Q5_K_H", "Q6_K_H", "Q4_K_QKV16"];

const { values } = parseArgs({
  options: {
    budgets: { type: "string", default: "Q3_K_M,IQ4_XS,Q4_K_S,Q5_K_S" },
    chunks: { type: "string", default: "12" },
    "eval-chunks": { type: "string" },
    out: { type: "string", default: "docs/tune" },
    threads: { type: "string", default: "2" },
    "cache-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-cache") },
    "files-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-files") },
    "no-proxy": { type: "boolean" },
  },
});
const threads = Number(values.threads);
const evalChunks = values["eval-chunks"] ? Number(values["eval-chunks"]) : undefined;
const outDir = values.out!;
const filesDir = values["files-dir"]!;
const cacheDir = values["cache-dir"]!;
fs.mkdirSync(filesDir, { recursive: true });
const started = Date.now();
const log = (s: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${s}\n`);
const calib = fs.readFileSync(CALIB, "utf8");
const text = fs.readFileSync(TEXT, "utf8");

function runTune(method: "measure" | "proxy", budgets: string, dir: string): Promise<TuneResult> {
  let lastStage = "";
  return tune({
    base: BASE,
    text: calib,
    textName: path.basename(CALIB),
    evalText: text,
    evalTextName: path.basename(TEXT),
    budgets: parseBudgets(budgets),
    imatrix: IMATRIX,
    method,
    outDir: dir,
    ctx: 256,
    chunks: method === "measure" ? Number(values.chunks) : undefined,
    evalChunks,
    threads,
    cacheDir,
    keepFiles: true,
    onProgress: (p) => {
      if (p.stage === "proxy" && p.done < p.total) return;
      if (p.stage !== lastStage || p.stage !== "measure" || p.done % 5 === 0) {
        log(`${method} ${p.stage} ${p.done}/${p.total} ${p.detail}${p.etaSeconds !== undefined && Number.isFinite(p.etaSeconds) ? ` ETA ${p.etaSeconds.toFixed(0)} s` : ""}`);
      }
      lastStage = p.stage;
    },
    onWarning: (m) => log(`warning: ${m}`),
  });
}

// 1. the tune, measure mode, every budget from one set of measurements
const measured = await runTune("measure", values.budgets!, outDir);
log(`measure-mode tune: ${measured.seconds.total.toFixed(0)} s (${measured.measuredNow} of ${measured.measurements.length} measurements made now)`);
fs.mkdirSync(outDir, { recursive: true });
writeFileAtomic(path.join(outDir, "tune-measure.json"), JSON.stringify(measured, null, 1) + "\n");
// 2. proxy mode, one budget (timing, and its quality beside the measured tune)
const proxy = values["no-proxy"] ? undefined : await runTune("proxy", "IQ4_XS", path.join(outDir, "proxy"));
if (proxy) {
  log(`proxy-mode tune: ${proxy.seconds.total.toFixed(0)} s`);
  writeFileAtomic(path.join(outDir, "tune-proxy.json"), JSON.stringify(proxy, null, 1) + "\n");
}

// 3. every standard file type and preset, with and without the imatrix
async function build(name: string, imatrix: string | undefined, file: string): Promise<void> {
  if (fs.existsSync(file)) return;
  log(`hquant build ${path.basename(file)}`);
  const tmp = `${file}.${process.pid}.tmp`;
  await buildModel({ input: BASE, output: tmp, threads, imatrix, schedule: (m) => scheduleFromOptions({ preset: name, imatrix }, archNumber(m.kv, "block_count") ?? 0) });
  fs.renameSync(tmp, file);
}
const targets: BenchTarget[] = [];
for (const v of [{ suffix: "", imatrix: undefined as string | undefined }, { suffix: "-imat", imatrix: IMATRIX }]) {
  for (const t of [...TYPES, ...PRESETS]) {
    const file = path.join(filesDir, `tinyllama-16l-${t}${v.suffix}.gguf`);
    await build(t, v.imatrix, file);
    targets.push({ file, label: `${t}${v.suffix}`, preset: PRESETS.includes(t) ? t : undefined, producer: "hquant", imatrix: Boolean(v.imatrix) });
  }
}
const report = await runBench({
  base: BASE,
  text,
  textName: path.basename(TEXT),
  targets,
  ctx: 256,
  chunks: evalChunks,
  threads,
  cacheDir,
  onFile: (f, k, n) => log(`[${k + 1}/${n}] ${path.basename(f)}`),
});
const standard: BenchRow[] = report.rows;
writeFileAtomic(path.join(outDir, "standard.json"), JSON.stringify(report, null, 1) + "\n");

const md = writeTuneReport(outDir, measured, { standard, proxy, base: report.base, chunks: report.chunks, positions: report.positions });
process.stdout.write(md);
const a = acceptance(measured, standard);
process.stdout.write(`\nrequired (each tuned file beats every standard file type / preset not larger): ${a.required ? "met" : "NOT met"}\n`);
log(`done; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
