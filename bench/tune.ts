// The acceptance table of `hquant tune` on the bundled model: tuned files at the exact sizes of
// IQ2_M, IQ3_XXS, IQ3_M, Q3_K_M, IQ4_XS, Q4_K_S and Q5_K_S (measure mode, the imatrix, one set of
// measurements on the calibration text, test/fixtures/calib.txt, a training-split slice) beside
// every standard file type (the low-bit ones included; those that need an imatrix only with it) and
// preset with and without the bundled imatrix, all evaluated on eval-test.txt at ctx 256; the
// required check (each tuned file beats every standard file / preset not larger than it), the
// goals, the timings (measure mode, and proxy mode for one budget).
// --spread: instead, the spread of repeated tunes at one budget (default IQ4_XS) over calibration
// chunk counts (8, 12, 24) with and without the imatrix, each evaluated on eval-test.
//
//   npx tsx bench/tune.ts [--eval-chunks N] [--chunks 12] [--budgets IQ2_M,IQ3_XXS,…] [--objective mean]
//                         [--standard LIST] [--out docs/tune] [--files-dir DIR] [--cache-dir DIR] [--threads 2]
//   npx tsx bench/tune.ts --method proxy …   (quick: 15 measured points on the bundled model — the kind points of the middle layer, the groups outside the layers and those of the first two and the last layer; the separate proxy run is then skipped with --no-proxy)
//   npx tsx bench/tune.ts --spread [--budgets IQ4_XS] [--spread-chunks 8,12,24] [--eval-chunks N]
// --curve: mean KLD on eval-test against the number of evaluations tune may make (--max-evals), one
// budget (default IQ4_XS), measure mode; with the same --cache-dir as a full run the measurements
// are that run's (a capped run measures a subset of the full set), so only verification and the
// evaluation of each file run. --standard-json: a standard.json of a full run, for the curve's ratio.
// --standard-from FILE: reuse the rows of an earlier run's standard.json (same base, text, ctx and
// chunks, checked) and evaluate only the files it lacks; --recheck LIST re-evaluates those of its
// rows too and stops unless every figure is identical (the earlier rows are reproducible on this
// runtime — pin the CPU variant they were made with, HQUANT_GGML_CPU, or they will not be).
//   npx tsx bench/tune.ts --curve 0,9,18,27,36 [--budgets IQ4_XS] [--standard-json DIR/standard.json]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildModel } from "../src/build/index.js";
import { archNumber } from "../src/gguf/model.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { planModel } from "../src/plan/planner.js";
import { openModel } from "../src/gguf/reader.js";
import { runBench, writeFileAtomic, type BenchTarget } from "../src/eval/run.js";
import type { BenchRow } from "../src/eval/report.js";
import { tune, type TuneResult } from "../src/tune/index.js";
import { OBJECTIVES, type Objective } from "../src/tune/sensitivity.js";
import { parseTypeList } from "../src/tune/candidates.js";
import { parseBudgets } from "../src/tune/budget.js";
import { writeTuneReport, acceptance } from "../src/tune/report.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const CALIB = "test/fixtures/calib.txt";
const TEXT = "test/fixtures/eval-test.txt";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const TYPES = [
  "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "Q2_K_S", "Q2_K", "IQ3_XXS", "IQ3_XS", "IQ3_S", "Q3_K_S", "IQ3_M", "Q3_K_M", "Q3_K_L",
  "Q4_0", "Q4_K_S", "Q4_K_M", "IQ4_XS", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
];
const PRESETS = ["IQ2_H", "Q3_K_H", "Q4_K_H", "Q5_K_H", "Q6_K_H", "Q4_K_QKV16"];

const { values } = parseArgs({
  options: {
    budgets: { type: "string" },
    objective: { type: "string", default: "mean" },
    standard: { type: "string" },
    spread: { type: "boolean" },
    curve: { type: "string" },
    "standard-from": { type: "string" },
    recheck: { type: "string" },
    "standard-json": { type: "string" },
    "spread-chunks": { type: "string", default: "8,12,24" },
    "measure-types": { type: "string" },
    method: { type: "string", default: "measure" },
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

const objective = values.objective as Objective;
if (!OBJECTIVES.includes(objective)) throw new Error(`--objective must be ${OBJECTIVES.join(", ")}`);
log(`load: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} on ${os.availableParallelism()} cores`);

function runTune(method: "measure" | "proxy", budgets: string, dir: string, o: { chunks?: number; imatrix?: boolean; maxEvals?: number } = {}): Promise<TuneResult> {
  let lastStage = "";
  return tune({
    base: BASE,
    text: calib,
    textName: path.basename(CALIB),
    evalText: text,
    evalTextName: path.basename(TEXT),
    budgets: parseBudgets(budgets),
    imatrix: o.imatrix === false ? undefined : IMATRIX,
    method,
    objective,
    measureTypes: values["measure-types"] ? parseTypeList(values["measure-types"], "--measure-types") : undefined,
    outDir: dir,
    ctx: 256,
    chunks: o.chunks ?? Number(values.chunks),
    evalChunks,
    threads,
    cacheDir,
    keepFiles: true,
    maxEvals: o.maxEvals,
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

if (values.spread) {
  // the spread of repeated tunes: chunk counts × with/without the imatrix, one budget, evaluated on eval-test
  const budget = values.budgets ?? "IQ4_XS";
  const rows: string[] = ["| calibration chunks | imatrix | file bytes | calibration KLD | eval KLD | eval KLD p99 | same top % | decisions within noise | median ± | seconds |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"];
  for (const chunks of values["spread-chunks"]!.split(",").map(Number)) {
    for (const imatrix of [true, false]) {
      const r = await runTune("measure", budget, path.join(outDir, "spread", `${chunks}-${imatrix ? "imat" : "noimat"}`), { chunks, imatrix });
      for (const b of r.budgets) {
        const rel = r.measurements.map((m) => m.kldErr / m.kld).sort((x, y) => x - y);
        const row = `| ${chunks} | ${imatrix ? "yes" : "no"} | ${b.chosen.fileBytes} | ${b.chosen.calib?.kld.toFixed(6)} | ${b.eval?.kld.toFixed(6)} | ${b.eval?.kld99.toFixed(5)} | ${b.eval?.topTokenPct.toFixed(2)} | ${b.noise ? `${b.noise.withinNoise}/${b.noise.decisive}` : "—"} | ${(100 * rel[Math.floor(rel.length / 2)]!).toFixed(1)} % | ${r.seconds.total.toFixed(0)} |`;
        rows.push(row);
        log(`spread ${budget} ${chunks} chunks imatrix ${imatrix}: eval KLD ${b.eval?.kld}`);
      }
    }
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeFileAtomic(path.join(outDir, "spread.md"), rows.join("\n") + "\n");
  process.stdout.write(`spread of tunes at ${budget} (objective ${objective}; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")})\n${rows.join("\n")}\n`);
  log(`done; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

if (values.curve) {
  const budget = values.budgets ?? "IQ4_XS";
  const standard: BenchRow[] | undefined = values["standard-json"] ? (JSON.parse(fs.readFileSync(values["standard-json"], "utf8")) as { rows: BenchRow[] }).rows : undefined;
  const rows: string[] = [
    "| --max-evals | evaluations | file bytes | chosen | calibration KLD | eval KLD | eval KLD p99 | same top % | below the standard curve | seconds |",
    "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const n of values.curve.split(",").map(Number)) {
    const r = await runTune("measure", budget, path.join(outDir, "curve", `max-evals-${n}`), { maxEvals: n });
    const b = r.budgets[0]!;
    const below = standard ? acceptance(r, standard).checks[0]?.belowCurve : undefined;
    rows.push(
      `| ${n} | ${r.measurements.length} | ${b.chosen.fileBytes} | ${b.chosen.variant} | ${b.chosen.calib?.kld.toFixed(6)} | ${b.eval?.kld.toFixed(6)} | ${b.eval?.kld99.toFixed(5)} | ${b.eval?.topTokenPct.toFixed(2)} | ${below !== undefined ? `${(100 * below).toFixed(1)} %` : "—"} | ${r.seconds.total.toFixed(0)} |`,
    );
    log(`curve ${budget} --max-evals ${n}: ${r.measurements.length} evaluations, eval KLD ${b.eval?.kld}`);
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeFileAtomic(path.join(outDir, "curve.md"), rows.join("\n") + "\n");
  process.stdout.write(`mean KLD against --max-evals at ${budget} (load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")})\n${rows.join("\n")}\n`);
  log(`done; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

// 1. the tune, measure mode, every budget from one set of measurements
// (--method proxy: the quick variant, for a loaded machine)
const measured = await runTune(values.method === "proxy" ? "proxy" : "measure", values.budgets ?? "IQ2_M,IQ3_XXS,IQ3_M,Q3_K_M,IQ4_XS,Q4_K_S,Q5_K_S", outDir);
log(`${measured.method}-mode tune: ${measured.seconds.total.toFixed(0)} s (${measured.measuredNow} of ${measured.measurements.length} measurements made now)`);
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
const earlier = values["standard-from"] ? (JSON.parse(fs.readFileSync(values["standard-from"], "utf8")) as import("../src/eval/report.js").BenchReport) : undefined;
const recheck = new Set((values.recheck ?? "").split(",").filter(Boolean));
const reused = (label: string) => earlier !== undefined && !recheck.has(label) && earlier.rows.some((r) => r.label === label);
const baseModel = await openModel(BASE);
for (const v of [{ suffix: "", imatrix: undefined as string | undefined }, { suffix: "-imat", imatrix: IMATRIX }]) {
  const standardList = values.standard ? values.standard.split(",") : [...TYPES, ...PRESETS];
  for (const t of standardList) {
    // llama-quantize refuses a file type or preset whose plan has a tensor that requires an imatrix
    if (!v.imatrix && planModel(baseModel, scheduleFromOptions({ preset: t }, 16), BASE).tensors.some((x) => x.requiresImatrix)) continue;
    if (reused(`${t}${v.suffix}`)) continue;
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
let standard: BenchRow[] = report.rows;
if (earlier) {
  // the earlier rows are comparable only if they were made from the same base figures on the same tokens
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(earlier.base?.ppl, report.base?.ppl) || earlier.ctx !== report.ctx || earlier.chunks !== report.chunks || earlier.positions !== report.positions) {
    throw new Error(`--standard-from: base PPL ${earlier.base?.ppl} on ${earlier.chunks} chunks (${earlier.positions} positions) there, ${report.base?.ppl} on ${report.chunks} (${report.positions}) here: not the same runtime or text`);
  }
  const keys: (keyof BenchRow)[] = ["bytes", "ppl", "pplErr", "kld", "kld99", "kldMax", "topTokenPct"];
  for (const label of recheck) {
    const a = earlier.rows.find((r) => r.label === label);
    const b = report.rows.find((r) => r.label === label);
    if (!a || !b) throw new Error(`--recheck ${label}: not in both runs`);
    const diff = keys.filter((k) => a[k] !== b[k]);
    if (diff.length) throw new Error(`--recheck ${label}: ${diff.map((k) => `${k} ${a[k]} there, ${b[k]} here`).join("; ")}`);
    log(`recheck ${label}: every figure identical to --standard-from's`);
  }
  standard = [...earlier.rows.filter((r) => !report.rows.some((x) => x.label === r.label)), ...report.rows];
  log(`${earlier.rows.length - recheck.size} rows reused from ${values["standard-from"]}, ${report.rows.length} evaluated now`);
}
writeFileAtomic(path.join(outDir, "standard.json"), JSON.stringify({ ...report, rows: standard }, null, 1) + "\n");

const md = writeTuneReport(outDir, measured, { standard, proxy, base: report.base, chunks: report.chunks, positions: report.positions });
process.stdout.write(md);
const a = acceptance(measured, standard);
process.stdout.write(`\nrequired (each tuned file beats every standard file type / preset not larger): ${a.required ? "met" : "NOT met"}\n`);
// the goals of the low-bit issue
const row = (label: string) => standard.find((r) => r.label === label);
const check = (budget: string) => a.checks.find((c) => c.budget.toUpperCase() === budget);
for (const c of a.checks) process.stdout.write(`goal ≥ 25 % below the standard types' curve at ${c.budget}: ${(100 * c.belowCurve).toFixed(1)} % ${c.belowCurve >= 0.25 ? "met" : "not met"}\n`);
const iq3xxs = check("IQ3_XXS");
const q3km = [row("Q3_K_M"), row("Q3_K_M-imat")].filter((r) => r !== undefined);
if (iq3xxs && q3km.length) process.stdout.write(`goal at IQ3_XXS's size ≤ Q3_K_M's KLD: ${iq3xxs.kld.toFixed(6)} vs ${q3km.map((r) => `${r!.label} ${r!.kld.toFixed(6)}`).join(", ")}: ${q3km.every((r) => iq3xxs.kld <= r!.kld) ? "met" : "not met"}\n`);
const iq2m = check("IQ2_M");
const iq2mStd = row("IQ2_M-imat");
if (iq2m && iq2mStd) process.stdout.write(`goal at IQ2_M's size ≥ 40 % below IQ2_M-imat (${iq2mStd.kld.toFixed(6)}): ${iq2m.kld.toFixed(6)}, ${(100 * (1 - iq2m.kld / iq2mStd.kld)).toFixed(1)} % lower: ${iq2m.kld <= 0.6 * iq2mStd.kld ? "met" : "not met"}\n`);
process.stdout.write(`load at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
log(`done; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
