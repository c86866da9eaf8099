// Evaluator throughput, side by side with llama-perplexity in the same run: tokens/s of the base pass
// (PPL + the --kl-divergence-base distributions) and of the KL-divergence pass (a Q4_K_M file
// against them), for the bundled model (vocabulary 4 096) and for the same model with its
// vocabulary widened (default ~32 000 and ~152 000 tokens), so the per-token vocabulary cost is
// measured. Then the peak RSS of `hquant bench` on the widest model.
//
//   npx tsx bench/evaluator.ts [--vocabs 4096,32000,152000] [--chunks 16] [--ctx 256] [--threads 2]
//                              [--reps 2] [--dir DIR (default: the OS temp dir)]
//
// The widened models are written with hquant's GGUF writer: extra CONTROL tokens that plain text
// never tokenizes to (so every file tokenizes the text as the bundled model does), token_embd rows
// padded with zeros (never looked up) and output rows padded with copies of the <unk> row (the
// model's never-predicted token, so the extra tokens carry next to no probability). Their Q4_K_M
// files are built by hquant. Files are kept in --dir and reused.
//
// hquant runs twice: on the library it ships (the @node-llama-cpp prebuilt CPU build) and, through
// HQUANT_LLAMA_DIR, on the libllama of the same cmake build as llama-perplexity — the second column
// isolates the evaluator's own cost from the difference between the two llama.cpp builds.
//
// Times are wall-clock, best of --reps: llama-perplexity's include its process start and model
// load; hquant's (one child process per library, timed inside) its model load and context, not the
// backend's one-time initialization. Both use --threads for llama.cpp; llama-perplexity's per-token
// math uses all cores, hquant's uses --threads.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { llamaTool } from "./llama-tools.js";
import { buildModel } from "../src/build/index.js";
import { evaluateAgainstBase, evaluateBase } from "../src/eval/evaluate.js";
import { archNumber, GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { tensorBytes } from "../src/gguf/ggml-types.js";
import { scheduleFromOptions } from "../src/plan/options.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/eval-test.txt";
/** tokenizer.ggml.token_type CONTROL: never produced by tokenizing text without special parsing */
const TOKEN_CONTROL = 3;

const { values } = parseArgs({
  allowPositionals: true,
  options: {
    vocabs: { type: "string", default: "4096,32000,152000" },
    chunks: { type: "string", default: "16" },
    ctx: { type: "string", default: "256" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "2" },
    dir: { type: "string", default: path.join(os.tmpdir(), "hquant-bench-evaluator") },
    measure: { type: "boolean" },
  },
});
const vocabs = values.vocabs!.split(",").map(Number);
const chunks = Number(values.chunks);
const ctx = Number(values.ctx);
const threads = Number(values.threads);
const reps = Number(values.reps);
const dir = path.resolve(values.dir!);
fs.mkdirSync(dir, { recursive: true });
const log = (s: string) => process.stderr.write(`${s}\n`);

/** The bundled model with its vocabulary widened to `nVocab` tokens. */
async function widen(nVocab: number, target: string): Promise<void> {
  const h = await readHeaderAt(BASE);
  const fd = fs.openSync(BASE, "r");
  const readTensor = (offset: number, bytes: number) => {
    const b = Buffer.alloc(bytes);
    fs.readSync(fd, b, 0, bytes, h.dataOffset + offset);
    return b;
  };
  const n0 = (h.kv.find((kv) => kv.key === "tokenizer.ggml.tokens")!.value as string[]).length;
  const extra = nVocab - n0;
  const kv: GGUFKV[] = h.kv.map((e) => {
    switch (e.key) {
      case "llama.vocab_size":
        return { ...e, value: nVocab };
      case "general.name":
        return { ...e, value: `${e.value} (vocabulary widened to ${nVocab})` };
      case "tokenizer.ggml.tokens":
        return { ...e, value: [...(e.value as string[]), ...Array.from({ length: extra }, (_, i) => `<hquant_pad_${i}>`)] };
      case "tokenizer.ggml.scores":
        return { ...e, value: [...(e.value as number[]), ...new Array<number>(extra).fill(-1e9)] };
      case "tokenizer.ggml.token_type":
        return { ...e, value: [...(e.value as number[]), ...new Array<number>(extra).fill(TOKEN_CONTROL)] };
      default:
        return e;
    }
  });
  if (!kv.some((e) => e.key === "llama.vocab_size")) kv.push({ key: "llama.vocab_size", type: GGUFValueType.UINT32, value: nVocab });
  const widened = new Set(["token_embd.weight", "output.weight"]);
  const specs = h.tensors.map((t) => ({ name: t.name, type: t.type, shape: widened.has(t.name) ? [t.shape[0], nVocab] : t.shape }));
  const writer = await GGUFFileWriter.create(target, kv, specs);
  try {
    for (const t of h.tensors) {
      const data = readTensor(t.offset, t.bytes);
      if (!widened.has(t.name)) {
        await writer.writeTensor(data);
        continue;
      }
      const rowBytes = tensorBytes(t.type, [t.shape[0]]);
      const out = Buffer.alloc(tensorBytes(t.type, [t.shape[0], nVocab]));
      data.copy(out);
      // output: every extra row is <unk>'s (row 0); token_embd: zeros
      if (t.name === "output.weight") for (let r = n0; r < nVocab; r++) data.copy(out, r * rowBytes, 0, rowBytes);
      await writer.writeTensor(out);
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

async function models(nVocab: number): Promise<{ f16: string; q4: string }> {
  const f16 = nVocab === 4096 ? path.resolve(BASE) : path.join(dir, `tinyllama-16l-v${nVocab}-f16.gguf`);
  if (!fs.existsSync(f16)) {
    log(`writing ${path.basename(f16)}`);
    await widen(nVocab, f16);
  }
  const q4 = path.join(dir, `tinyllama-16l-v${nVocab}-q4_k_m.gguf`);
  if (!fs.existsSync(q4)) {
    log(`hquant build ${path.basename(q4)}`);
    await buildModel({ input: f16, output: q4, threads, schedule: (m) => scheduleFromOptions({ preset: "Q4_K_M" }, archNumber(m.kv, "block_count") ?? 0) });
  }
  return { f16, q4 };
}

function seconds(f: () => void): number {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
}

async function secondsAsync<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await f();
  return [(performance.now() - t) / 1000, r];
}

function perplexityTool(args: string[]): string {
  const r = spawnSync(llamaTool("llama-perplexity"), args, { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`llama-perplexity ${args.join(" ")} failed:\n${r.stderr.slice(-2000)}`);
  return `${r.stdout}\n${r.stderr}`;
}

const grab = (out: string, re: RegExp) => {
  const m = out.match(re);
  if (!m) log(`no ${re} in llama-perplexity's output, which ends:\n${out.slice(-600)}`);
  return Number(m?.[1] ?? NaN);
};

interface Row {
  vocab: number;
  pass: string;
  llama: number;
  hquant: number;
  hquantSameBuild: number;
  llamaFigure: number;
  hquantFigure: number;
}

const text = fs.readFileSync(TEXT, "utf8");

interface HquantTimes {
  base: number;
  kld: number;
  ppl: number;
  kldMean: number;
}

// child mode: one hquant measurement (base pass, then the KLD pass) in a fresh process, whose
// llama.cpp library is the one HQUANT_LLAMA_DIR names, or the shipped one
if (process.argv[2] === "--measure") {
  const [f16, q4, work] = process.argv.slice(3);
  const opts = { ctx, chunks, threads, cacheDir: work };
  const [tb, base] = await secondsAsync(() => evaluateBase(f16, text, path.basename(TEXT), opts));
  const [tk, r] = await secondsAsync(() => evaluateAgainstBase(base, q4, opts));
  process.stdout.write(JSON.stringify({ base: tb, kld: tk, ppl: base.ppl, kldMean: r.kld } satisfies HquantTimes));
  process.exit(0);
}

function measureHquant(m: { f16: string; q4: string }, work: string, llamaDir?: string): HquantTimes {
  const args = [...process.execArgv, process.argv[1], "--measure", m.f16, m.q4, work, "--chunks", String(chunks), "--ctx", String(ctx), "--threads", String(threads)];
  const env = { ...process.env, HQUANT_LLAMA_DIR: llamaDir ?? "" };
  if (!llamaDir) delete env.HQUANT_LLAMA_DIR;
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`hquant measurement failed:\n${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as HquantTimes;
}

const perplexity = llamaTool("llama-perplexity");
/** the libllama / libggml of llama-perplexity's own build */
const sameBuildDir = path.dirname(perplexity);
log(`llama-perplexity: ${perplexity}`);
const rows: Row[] = [];
const tokens = chunks * ctx;
let widest: { f16: string; q4: string } | undefined;
for (const nVocab of vocabs) {
  const m = await models(nVocab);
  widest = m;
  const best = { llamaBase: Infinity, llamaKld: Infinity, hquantBase: Infinity, hquantKld: Infinity, sameBase: Infinity, sameKld: Infinity };
  const figures = { llamaPpl: NaN, hquantPpl: NaN, llamaKld: NaN, hquantKld: NaN };
  for (let rep = 0; rep < reps; rep++) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-evaluator-"));
    try {
      const kldBase = path.join(work, "base.kld");
      let out = "";
      const common = ["-c", String(ctx), "-t", String(threads), "--chunks", String(chunks)];
      const lb = seconds(() => (out = perplexityTool(["-m", m.f16, "-f", TEXT, ...common, "--kl-divergence-base", kldBase])));
      figures.llamaPpl = grab(out, /Final estimate: PPL = ([0-9.]+)/);
      const lk = seconds(() => (out = perplexityTool(["-m", m.q4, ...common, "--kl-divergence-base", kldBase, "--kl-divergence"])));
      figures.llamaKld = grab(out, /Mean\s+KLD:\s+(-?[0-9.]+)/);
      fs.rmSync(kldBase);
      const h = measureHquant(m, path.join(work, "shipped"));
      const same = measureHquant(m, path.join(work, "same-build"), sameBuildDir);
      figures.hquantPpl = h.ppl;
      figures.hquantKld = h.kldMean;
      best.llamaBase = Math.min(best.llamaBase, lb);
      best.llamaKld = Math.min(best.llamaKld, lk);
      best.hquantBase = Math.min(best.hquantBase, h.base);
      best.hquantKld = Math.min(best.hquantKld, h.kld);
      best.sameBase = Math.min(best.sameBase, same.base);
      best.sameKld = Math.min(best.sameKld, same.kld);
      log(`vocab ${nVocab} rep ${rep + 1}: base ${lb.toFixed(2)} s | ${h.base.toFixed(2)} s | ${same.base.toFixed(2)} s; KLD ${lk.toFixed(2)} s | ${h.kld.toFixed(2)} s | ${same.kld.toFixed(2)} s (llama-perplexity | hquant | hquant on its build); PPL ${figures.llamaPpl} ${h.ppl.toFixed(4)} ${same.ppl.toFixed(4)}, KLD ${figures.llamaKld} ${h.kldMean.toFixed(6)} ${same.kldMean.toFixed(6)}`);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  rows.push({ vocab: nVocab, pass: "base (PPL + distributions)", llama: tokens / best.llamaBase, hquant: tokens / best.hquantBase, hquantSameBuild: tokens / best.sameBase, llamaFigure: figures.llamaPpl, hquantFigure: figures.hquantPpl });
  rows.push({ vocab: nVocab, pass: "KL-divergence (Q4_K_M)", llama: tokens / best.llamaKld, hquant: tokens / best.hquantKld, hquantSameBuild: tokens / best.sameKld, llamaFigure: figures.llamaKld, hquantFigure: figures.hquantKld });
}

process.stdout.write(`\nevaluator throughput, ${chunks} chunks × ctx ${ctx} = ${tokens} tokens, ${threads} threads, ${os.availableParallelism()} cores, best of ${reps}\n\n`);
process.stdout.write(
  "| vocab | pass | llama-perplexity tok/s | hquant tok/s | ratio | hquant on llama-perplexity's build, tok/s | ratio | llama-perplexity PPL or KLD | hquant |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
);
for (const r of rows) {
  const fig = (v: number) => (r.pass.startsWith("base") ? v.toFixed(4) : v.toFixed(6));
  process.stdout.write(
    `| ${r.vocab} | ${r.pass} | ${r.llama.toFixed(0)} | ${r.hquant.toFixed(0)} | ${(r.hquant / r.llama).toFixed(2)}× | ${r.hquantSameBuild.toFixed(0)} | ${(r.hquantSameBuild / r.llama).toFixed(2)}× | ${fig(r.llamaFigure)} | ${fig(r.hquantFigure)} |\n`,
  );
}

// peak RSS of the CLI on the widest model: the process's own maxRSS (worker threads included), reported at exit
if (widest) {
  const hook = path.join(dir, "report-max-rss.mjs");
  fs.writeFileSync(hook, 'process.on("exit", () => process.stderr.write(`maxrss-kb ${process.resourceUsage().maxRSS}\\n`));\n');
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-rss-"));
  try {
    const args = ["--import", hook, "bin/hquant.js", "bench", widest.f16, "--text", TEXT, "--files", widest.q4, "--ctx", String(ctx), "--chunks", String(chunks), "--threads", String(threads), "--cache-dir", cache, "--no-progress"];
    const r = spawnSync(process.execPath, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`hquant bench failed: ${r.stderr}`);
    const kb = grab(r.stderr, /maxrss-kb (\d+)/);
    process.stdout.write(`\npeak RSS of \`hquant bench\` (base + one file) on the ${vocabs[vocabs.length - 1]}-token model, ${chunks} chunks: ${(kb / 1024).toFixed(0)} MB\n`);
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}
