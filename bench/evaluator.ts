// Evaluator throughput, side by side with llama-perplexity (cmake build of the bundled source,
// bench/llama-tools.ts) in the same run: tokens/s and CPU seconds of the base pass (PPL + the
// --kl-divergence-base distributions of the F16 model) and of the KL-divergence pass (its Q4_K_M
// against them), at vocabulary 4 096 (the bundled model) and 152 000 (the same model widened,
// bench/models.ts), so the per-token vocabulary cost is measured. Then the whole commands: `hquant
// bench F16 --files Q4_K_M` (empty cache) against the two llama-perplexity runs it replaces, process
// start, evaluation process and model loads included; and the peak RSS of `hquant bench` on the
// widest model.
//
//   npx tsx bench/evaluator.ts [--vocabs 4096,152000] [--chunks 40 | --chunks all] [--ctx 256]
//                              [--threads 2] [--reps 2] [--fast DIR] [--dir DIR (default: the OS temp dir)]
//
// --chunks: 40 by default (about 5 s per F16 pass at vocabulary 4 096 on 2 cores), so that process
// start and model load do not dominate; `all` is the whole text (198 chunks of 256).
//
// hquant runs twice: on the library it ships (the @node-llama-cpp prebuilt, "default install") and
// on the fast path, HQUANT_LLAMA_DIR = --fast DIR (default: $HQUANT_LLAMA_DIR, else the libraries
// of llama-perplexity's own build, which `hquant runtime --cmake` reproduces).
//
// Wall times are best of --reps: llama-perplexity's include its process start and model load;
// hquant's (one child process per library, timed inside) its model load and context, not the
// backend's one-time initialization: the per-pass rows; the whole-command rows include everything.
// CPU seconds (user + system, all threads) are the steadier figure on a loaded machine:
// llama-perplexity's whole process, hquant's per pass; for the whole `hquant bench` command, its
// process and its evaluation process (which hquant reaps before it exits, so bash's `time` counts
// it). Both use --threads for llama.cpp; llama-perplexity's per-token math uses all cores, hquant's
// --threads.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { llamaTool } from "./llama-tools.js";
import { benchModels, timedRun, uptime } from "./models.js";
import { evaluateAgainstBase, evaluateBase } from "../src/eval/evaluate.js";

const TEXT = "test/fixtures/eval-test.txt";

const { values } = parseArgs({
  allowPositionals: true,
  options: {
    vocabs: { type: "string", default: "4096,152000" },
    chunks: { type: "string", default: "40" },
    ctx: { type: "string", default: "256" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "2" },
    fast: { type: "string" },
    dir: { type: "string", default: path.join(os.tmpdir(), "hquant-bench-evaluator") },
    measure: { type: "boolean" },
  },
});
const vocabs = values.vocabs!.split(",").map(Number);
const text = fs.readFileSync(TEXT, "utf8");
/** --chunks all: as many chunks of ctx as the text has (llama-perplexity without --chunks) */
const chunks = values.chunks === "all" ? undefined : Number(values.chunks);
const chunkArgs = chunks === undefined ? [] : ["--chunks", String(chunks)];
const ctx = Number(values.ctx);
const threads = Number(values.threads);
const reps = Number(values.reps);
const dir = path.resolve(values.dir!);
fs.mkdirSync(dir, { recursive: true });
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Wall and CPU seconds of a pass. */
interface Timing {
  wall: number;
  cpu: number;
}

/**
 * llama-perplexity, whose output must match `figure`: its log goes through a writer thread that,
 * on a heavily loaded machine, now and then has not written the final statistics when the process
 * exits; such a run is repeated (at most twice).
 */
function perplexityTool(args: string[], figure: RegExp): { out: string; t: Timing } {
  for (let attempt = 1; ; attempt++) {
    const r = timedRun(llamaTool("llama-perplexity"), args);
    if (r.status !== 0) throw new Error(`llama-perplexity ${args.join(" ")} failed:\n${r.stderr.slice(-2000)}`);
    const out = `${r.stdout}\n${r.stderr}`;
    if (figure.test(out) || attempt === 3) return { out, t: { wall: r.wall, cpu: r.cpu } };
    log(`llama-perplexity printed no ${figure}: running it again`);
  }
}

const grab = (out: string, re: RegExp) => {
  const m = out.match(re);
  if (!m) log(`no ${re} in the output, which ends:\n${out.slice(-600)}`);
  return Number(m?.[1] ?? NaN);
};

const PPL_FIGURE = /Final estimate: PPL = ([0-9.]+)/;
const KLD_FIGURE = /Mean\s+KLD:\s+(-?[0-9.]+)/;

interface HquantRun {
  base: Timing;
  kld: Timing;
  ppl: number;
  kldMean: number;
  /** chunks evaluated */
  nChunk: number;
}

async function timed<T>(f: () => Promise<T>): Promise<[Timing, T]> {
  const t = performance.now();
  const c = process.cpuUsage();
  const r = await f();
  const u = process.cpuUsage(c);
  return [{ wall: (performance.now() - t) / 1000, cpu: (u.user + u.system) / 1e6 }, r];
}

// child mode: one hquant measurement (base pass, then the KLD pass) in a fresh process, whose
// llama.cpp library is the one HQUANT_LLAMA_DIR names, or the shipped one
if (values.measure) {
  const [f16, q4, work] = process.argv.slice(process.argv.indexOf("--measure") + 1);
  const opts = { ctx, chunks, threads, cacheDir: work };
  const [tb, base] = await timed(() => evaluateBase(f16, text, path.basename(TEXT), opts));
  const [tk, r] = await timed(() => evaluateAgainstBase(base, q4, opts));
  process.stdout.write(JSON.stringify({ base: tb, kld: tk, ppl: base.ppl, kldMean: r.kld, nChunk: base.plan.nChunk } satisfies HquantRun));
  process.exit(0);
}

/** This environment with HQUANT_LLAMA_DIR = `llamaDir`, or without it (the shipped library). */
function libraryEnv(llamaDir?: string): NodeJS.ProcessEnv {
  const { HQUANT_LLAMA_DIR: _, ...env } = process.env;
  return llamaDir ? { ...env, HQUANT_LLAMA_DIR: llamaDir } : env;
}

function measureHquant(m: { f16: string; q4: string }, work: string, llamaDir?: string): HquantRun {
  // the child parses --chunks itself: "all" is passed on as such (an absent flag would be its default)
  const args = [...process.execArgv, process.argv[1], "--chunks", values.chunks!, "--ctx", String(ctx), "--threads", String(threads), "--measure", m.f16, m.q4, work];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: libraryEnv(llamaDir) });
  if (r.status !== 0) throw new Error(`hquant measurement failed:\n${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as HquantRun;
}

/**
 * The whole `hquant bench F16 --files Q4_K_M` command on an empty cache (node start, the evaluation
 * process, both model loads), its figures checked against the in-process run's.
 */
function benchCommand(m: { f16: string; q4: string }, cache: string, expect: HquantRun, llamaDir?: string): Timing {
  const args = ["bin/hquant.js", "bench", m.f16, "--text", TEXT, "--files", m.q4, "--ctx", String(ctx), ...chunkArgs, "--threads", String(threads), "--cache-dir", cache, "--json", "--quiet"];
  const r = timedRun(process.execPath, args, { env: libraryEnv(llamaDir) });
  if (r.status !== 0) throw new Error(`hquant bench failed:\n${r.stderr.slice(-2000)}`);
  const report = JSON.parse(r.stdout) as { base: { ppl: number }; rows: { kld: number }[] };
  if (report.base.ppl !== expect.ppl || report.rows[0]?.kld !== expect.kldMean) log(`hquant bench printed PPL ${report.base.ppl}, KLD ${report.rows[0]?.kld}; the in-process run ${expect.ppl}, ${expect.kldMean}`);
  return { wall: r.wall, cpu: r.cpu };
}

/** `hquant runtime`'s report under a given HQUANT_LLAMA_DIR (or the shipped library). */
function runtimeLine(llamaDir?: string): string {
  const r = spawnSync(process.execPath, ["bin/hquant.js", "runtime"], { encoding: "utf8", env: libraryEnv(llamaDir) });
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(r.stdout)?.[1] ?? "?";
  return `${field("CPU backend")} (${field("compiler")})`;
}

const perplexity = llamaTool("llama-perplexity");
/** the fast path: HQUANT_LLAMA_DIR, else the libllama / libggml of llama-perplexity's own build */
const fastDir = path.resolve(values.fast ?? process.env.HQUANT_LLAMA_DIR ?? path.dirname(perplexity));
const loadBefore = uptime();
log(`llama-perplexity: ${perplexity}`);
log(`default install: ${runtimeLine()}`);
log(`fast path (HQUANT_LLAMA_DIR=${fastDir}): ${runtimeLine(fastDir)}`);

interface Row {
  vocab: number;
  pass: string;
  llama: Timing;
  hquant: Timing;
  fast: Timing;
  figures: [number, number, number];
}

const rows: Row[] = [];
/** tokens per pass (chunks × ctx), known once hquant has planned the chunks */
let tokens = NaN;
const best = (a: Timing, b: Timing): Timing => ({ wall: Math.min(a.wall, b.wall), cpu: Math.min(a.cpu, b.cpu) });
const NONE: Timing = { wall: Infinity, cpu: Infinity };
let widest: { f16: string; q4: string } | undefined;
for (const nVocab of vocabs) {
  const m = await benchModels(nVocab, dir, threads);
  widest = m;
  const t = { llamaBase: NONE, llamaKld: NONE, hquantBase: NONE, hquantKld: NONE, fastBase: NONE, fastKld: NONE, llamaBoth: NONE, hquantCli: NONE, fastCli: NONE };
  let figures = { llamaPpl: NaN, llamaKld: NaN, h: undefined as HquantRun | undefined, f: undefined as HquantRun | undefined };
  for (let rep = 0; rep < reps; rep++) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-evaluator-"));
    try {
      const kldBase = path.join(work, "base.kld");
      const common = ["-c", String(ctx), "-t", String(threads), ...chunkArgs];
      const lb = perplexityTool(["-m", m.f16, "-f", TEXT, ...common, "--kl-divergence-base", kldBase], PPL_FIGURE);
      const lk = perplexityTool(["-m", m.q4, ...common, "--kl-divergence-base", kldBase, "--kl-divergence"], KLD_FIGURE);
      fs.rmSync(kldBase);
      const h = measureHquant(m, path.join(work, "shipped"));
      const f = measureHquant(m, path.join(work, "fast"), fastDir);
      tokens = h.nChunk * ctx;
      const hc = benchCommand(m, path.join(work, "cli-shipped"), h);
      const fc = benchCommand(m, path.join(work, "cli-fast"), f, fastDir);
      t.llamaBoth = best(t.llamaBoth, { wall: lb.t.wall + lk.t.wall, cpu: lb.t.cpu + lk.t.cpu });
      t.hquantCli = best(t.hquantCli, hc);
      t.fastCli = best(t.fastCli, fc);
      figures = { llamaPpl: grab(lb.out, PPL_FIGURE), llamaKld: grab(lk.out, KLD_FIGURE), h, f };
      t.llamaBase = best(t.llamaBase, lb.t);
      t.llamaKld = best(t.llamaKld, lk.t);
      t.hquantBase = best(t.hquantBase, h.base);
      t.hquantKld = best(t.hquantKld, h.kld);
      t.fastBase = best(t.fastBase, f.base);
      t.fastKld = best(t.fastKld, f.kld);
      const w = (x: Timing) => `${x.wall.toFixed(2)} s (${x.cpu.toFixed(2)} CPU s)`;
      log(`vocab ${nVocab} rep ${rep + 1}: base ${w(lb.t)} | ${w(h.base)} | ${w(f.base)}; KLD ${w(lk.t)} | ${w(h.kld)} | ${w(f.kld)}; whole commands ${w({ wall: lb.t.wall + lk.t.wall, cpu: lb.t.cpu + lk.t.cpu })} | ${w(hc)} | ${w(fc)} (llama-perplexity | hquant default | hquant fast path); PPL ${figures.llamaPpl} | ${h.ppl.toFixed(4)} | ${f.ppl.toFixed(4)}, KLD ${figures.llamaKld} | ${h.kldMean.toFixed(6)} | ${f.kldMean.toFixed(6)}; ${uptime()}`);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  rows.push({ vocab: nVocab, pass: "base: F16, PPL + distributions", llama: t.llamaBase, hquant: t.hquantBase, fast: t.fastBase, figures: [figures.llamaPpl, figures.h!.ppl, figures.f!.ppl] });
  rows.push({ vocab: nVocab, pass: "KLD: Q4_K_M against F16", llama: t.llamaKld, hquant: t.hquantKld, fast: t.fastKld, figures: [figures.llamaKld, figures.h!.kldMean, figures.f!.kldMean] });
  rows.push({ vocab: nVocab, pass: "whole commands: `hquant bench F16 --files Q4_K_M` vs both llama-perplexity runs", llama: t.llamaBoth, hquant: t.hquantCli, fast: t.fastCli, figures: [figures.llamaKld, figures.h!.kldMean, figures.f!.kldMean] });
}

const out = (s: string) => process.stdout.write(s);
out(`\nevaluator throughput, ${tokens / ctx} chunks × ctx ${ctx} = ${tokens} tokens, ${threads} threads, ${os.availableParallelism()} cores, best of ${reps}\n`);
out(`default install: ${runtimeLine()}\nfast path: HQUANT_LLAMA_DIR=${fastDir}: ${runtimeLine(fastDir)}\n`);
out(`load before: ${loadBefore}\nload after:  ${uptime()}\n\n`);
out("tokens/s from wall time (the whole-command rows: both passes' tokens counted once); ratio = hquant's throughput / llama-perplexity's (≥ 1: hquant is faster); CPU ratio = llama-perplexity's CPU s / hquant's\n\n");
out("| vocab | pass | llama-perplexity tok/s | hquant default tok/s | ratio | hquant fast path tok/s | ratio | CPU s: llama-perplexity / default / fast | CPU ratio default / fast | PPL or KLD: llama-perplexity / default / fast |\n");
out("|---:|---|---:|---:|---:|---:|---:|---|---|---|\n");
for (const r of rows) {
  const fig = (v: number) => (r.pass.startsWith("base") ? v.toFixed(4) : v.toFixed(6));
  const tps = (x: Timing) => tokens / x.wall;
  out(
    `| ${r.vocab} | ${r.pass} | ${tps(r.llama).toFixed(0)} | ${tps(r.hquant).toFixed(0)} | ${(tps(r.hquant) / tps(r.llama)).toFixed(2)}× | ${tps(r.fast).toFixed(0)} | ${(tps(r.fast) / tps(r.llama)).toFixed(2)}× | ${r.llama.cpu.toFixed(2)} / ${r.hquant.cpu.toFixed(2)} / ${r.fast.cpu.toFixed(2)} | ${(r.llama.cpu / r.hquant.cpu).toFixed(2)}× / ${(r.llama.cpu / r.fast.cpu).toFixed(2)}× | ${r.figures.map(fig).join(" / ")} |\n`,
  );
}

// peak RSS of the CLI on the widest model: the process's own maxRSS (worker threads included), reported at exit
if (widest) {
  const hook = path.join(dir, "report-max-rss.mjs");
  fs.writeFileSync(hook, 'process.on("exit", () => process.stderr.write(`maxrss-kb ${process.resourceUsage().maxRSS}\\n`));\n');
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-rss-"));
  try {
    const args = ["--import", hook, "bin/hquant.js", "bench", widest.f16, "--text", TEXT, "--files", widest.q4, "--ctx", String(ctx), ...chunkArgs, "--threads", String(threads), "--cache-dir", cache, "--no-progress"];
    const r = spawnSync(process.execPath, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`hquant bench failed: ${r.stderr}`);
    const kb = grab(r.stderr, /maxrss-kb (\d+)/);
    process.stdout.write(`\npeak RSS of \`hquant bench\` (base + one file) on the ${vocabs[vocabs.length - 1]}-token model, ${tokens / ctx} chunks: ${(kb / 1024).toFixed(0)} MB\n`);
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}
