// How `hquant tune` scales: synthetic llama models with the bundled model's tokenizer and random
// F16 weights (16, 32 and 64 layers; the 64-layer one is ≥ 1 GiB), each measured in a child process
// of its own (so its peak RSS is its own):
//   measure mode: per measurement, seconds building/writing the group's shards, loading the sharded
//     model, evaluating; bytes written (and the group's quantized bytes, the goal's yardstick); the
//     one-time write of the base's shards; the number of evaluations a full tune makes;
//   proxy mode: the proxy errors from --proxy-rows sampled rows (seconds, parameters quantized per
//     second), its evaluations; and both extrapolated to a 70B-shaped llama (80 layers, 8192 wide,
//     FFN 28672, 8 KV heads, vocabulary 128256) on 16 cores, with the inputs printed.
//
//   npx tsx bench/tune-scale.ts [--layers 16,32,64] [--points 3] [--ctx 128] [--chunks 2]
//                               [--proxy-rows 512] [--threads 2] [--dir DIR (kept, models reused)]
//                               [--proxy-only (the proxy errors and their 70B extrapolation alone)]
//                               [--fast DIR (the largest model's evaluations again with
//                                HQUANT_LLAMA_DIR=DIR, llama.cpp's own CPU speed, for its rate)]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { evaluateAgainstBase, evaluateBase } from "../src/eval/evaluate.js";
import { GGMLType, tensorBytes, typeName } from "../src/gguf/ggml-types.js";
import { openModel, readHeaderAt } from "../src/gguf/reader.js";
import { QuantizePool } from "../src/pool/index.js";
import { LlamaModel } from "../src/runtime/index.js";
import { DEFAULT_CANDIDATE_TYPES, tuneSpace, unitTensors } from "../src/tune/candidates.js";
import { DEFAULT_CTX } from "../src/cli/args.js";
import { DEFAULT_MEASURE_TYPES, DEFAULT_TUNE_CHUNKS, measurementPlan } from "../src/tune/index.js";
import { measureSchedule, writtenType, type MeasurePoint } from "../src/tune/measure.js";
import { proxyErrors, sampledRows } from "../src/tune/proxy.js";
import { ShardSet } from "../src/tune/shards.js";
import { factoryKV, factoryTensors, makeCustomModel, type FactoryOptions } from "../test/factory.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/calib.txt";

const { values } = parseArgs({
  options: {
    layers: { type: "string", default: "16,32,64" },
    points: { type: "string", default: "3" },
    ctx: { type: "string", default: "128" },
    chunks: { type: "string", default: "2" },
    "proxy-rows": { type: "string", default: "512" },
    threads: { type: "string", default: "2" },
    dir: { type: "string", default: path.join(os.tmpdir(), "hquant-bench-tune-scale") },
    one: { type: "string" },
    "proxy-only": { type: "boolean" },
    fast: { type: "string" },
    mode: { type: "string" },
  },
});
const threads = Number(values.threads);
const ctx = Number(values.ctx);
const chunks = Number(values.chunks);
const proxyRows = Number(values["proxy-rows"]);
const dir = path.resolve(values.dir!);
const log = (s: string) => process.stderr.write(`${s}\n`);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** The synthetic shapes: 16 layers small, 32 layers ≈ the 0.37 B model, 64 layers ≈ 1.4 GB. */
function shape(nLayer: number, nVocab: number): FactoryOptions {
  const wide = nLayer >= 32;
  return { arch: "llama", nLayer, nEmbd: wide ? 1024 : 512, nHead: wide ? 16 : 8, nHeadKv: wide ? 4 : 8, nFf: wide ? 2816 : 1408, nVocab, dtype: "f16", tied: false, seed: nLayer };
}

/** A 70B-shaped llama (Llama-3-70B's dimensions). */
const SHAPE_70B: FactoryOptions = { arch: "llama", nLayer: 80, nEmbd: 8192, nHead: 64, nHeadKv: 8, nFf: 28672, nVocab: 128256, dtype: "f16", tied: false, seed: 1 };

async function syntheticModel(nLayer: number): Promise<string> {
  const bundled = await readHeaderAt(BASE);
  const tokenizer = bundled.kv.filter((e) => e.key.startsWith("tokenizer."));
  const nVocab = (tokenizer.find((e) => e.key === "tokenizer.ggml.tokens")!.value as string[]).length;
  const o = shape(nLayer, nVocab);
  const kv = [...factoryKV(o).filter((e) => !e.key.startsWith("tokenizer.")), ...tokenizer];
  const tensors = factoryTensors(o).map((t) => ({ name: t.name, shape: [...t.shape], type: t.type }));
  const file = path.join(dir, `synthetic-${nLayer}l-e${o.nEmbd}-f${o.nFf}-f16.gguf`);
  if (!fs.existsSync(file)) log(`writing ${path.basename(file)}`);
  return makeCustomModel({ fileName: path.basename(file), dir, kv, tensors, dtype: "f16", seed: nLayer });
}

const params = (shapes: readonly (readonly number[])[]) => shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);

interface MeasureFigures {
  file: string;
  fileBytes: number;
  params: number;
  nLayer: number;
  evaluations: number;
  proxyEvaluations: number;
  baseShardBytes: number;
  baseShardSeconds: number;
  baseEvalSeconds: number;
  points: { point: string; build: number; load: number; evaluate: number; bytes: number; groupBytes: number; kld: number }[];
  peakRss: number;
}

async function measureChild(file: string): Promise<MeasureFigures> {
  const model = await openModel(file);
  const space = tuneSpace(model);
  const nLayer = Number(model.kv.find((e) => e.key === "llama.block_count")!.value);
  const text = fs.readFileSync(TEXT, "utf8");
  const work = fs.mkdtempSync(path.join(dir, "work-"));
  const evalOpts = { ctx, chunks, threads, cacheDir: path.join(work, "cache") };
  const pool = new QuantizePool(threads);
  try {
    let t = performance.now();
    const baseEval = await evaluateBase(file, text, "calib.txt", evalOpts);
    const baseEvalSeconds = (performance.now() - t) / 1000;
    const opts = { nLayer, restType: GGMLType.F16 };
    const shards = await ShardSet.create({ base: file, rest: measureSchedule([], { group: "", type: GGMLType.F16 }, opts), pool, dir: work });
    const mid = Math.floor(nLayer / 2);
    const points: MeasurePoint[] = [
      { group: `blk.${mid}.ffn`, type: GGMLType.Q3_K },
      { group: `blk.${mid}.attn`, type: GGMLType.Q3_K },
      { group: `blk.${mid}.ffn_down`, type: GGMLType.Q3_K },
      { group: "output", type: GGMLType.Q3_K },
    ].slice(0, Number(values.points));
    const figures: MeasureFigures["points"] = [];
    for (const p of points) {
      const tensors = unitTensors(space, p.group);
      t = performance.now();
      const m = await shards.model(measureSchedule(tensors.map((x) => x.name), p, opts));
      const build = (performance.now() - t) / 1000;
      // loading alone (the page cache warm, as in a tune), then the evaluation (which loads again)
      t = performance.now();
      LlamaModel.loadSplits(m.paths).dispose();
      const load = (performance.now() - t) / 1000;
      t = performance.now();
      const r = await evaluateAgainstBase(baseEval, m.paths, evalOpts);
      const evaluate = (performance.now() - t) / 1000 - load;
      shards.release(m.written);
      const groupBytes = tensors.reduce((a, x) => a + tensorBytes(writtenType(x.shape[0]!, p.type), x.shape), 0);
      figures.push({ point: `${p.group}@${typeName(p.type)}`, build, load, evaluate, bytes: m.bytes, groupBytes, kld: r.kld });
      log(`  ${path.basename(file)} ${p.group}: build ${build.toFixed(2)} s, load ${load.toFixed(2)} s, evaluate ${evaluate.toFixed(2)} s, ${mib(m.bytes)} written`);
    }
    return {
      file,
      fileBytes: fs.statSync(file).size,
      params: params(model.tensors.map((x) => x.shape)),
      nLayer,
      evaluations: measurementPlan(space, "measure", DEFAULT_MEASURE_TYPES, nLayer).length,
      proxyEvaluations: measurementPlan(space, "proxy", DEFAULT_MEASURE_TYPES, nLayer).length,
      baseShardBytes: shards.baseBytes,
      baseShardSeconds: shards.baseSeconds,
      baseEvalSeconds,
      points: figures,
      peakRss: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    await pool.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

interface ProxyFigures {
  params: number;
  nLayer: number;
  proxyEvaluations: number;
  /** CPU seconds of the whole process (main thread and workers) */
  cpuSeconds: number;
  seconds: number;
  /** Σ over tensors of sampled parameters × candidate types */
  work: number;
  sampledParams: number;
  peakRss: number;
}

/** Σ sampled parameters × candidate types of a space's shapes, the proxy's work. */
function proxyWork(tensors: readonly { shape: readonly number[]; options: readonly unknown[] }[], rows: number): { work: number; sampled: number } {
  let work = 0;
  let sampled = 0;
  for (const t of tensors) {
    const nrows = t.shape.slice(1).reduce((a, b) => a * b, 1) / (t.shape[2] ?? 1);
    const n = sampledRows(nrows, rows).length * t.shape[0]! * (t.shape[2] ?? 1);
    sampled += n;
    work += n * t.options.length;
  }
  return { work, sampled };
}

async function proxyChild(file: string): Promise<ProxyFigures> {
  const model = await openModel(file);
  const space = tuneSpace(model, DEFAULT_CANDIDATE_TYPES);
  const nLayer = Number(model.kv.find((e) => e.key === "llama.block_count")!.value);
  const pool = new QuantizePool(threads);
  try {
    const cpu = process.cpuUsage();
    const t = performance.now();
    await proxyErrors(model, space, undefined, undefined, { rows: proxyRows, pool });
    const seconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    const { work, sampled } = proxyWork(space.tensors, proxyRows);
    return {
      params: params(model.tensors.map((x) => x.shape)),
      nLayer,
      proxyEvaluations: measurementPlan(space, "proxy", DEFAULT_MEASURE_TYPES, nLayer).length,
      cpuSeconds: (used.user + used.system) / 1e6,
      seconds,
      work,
      sampledParams: sampled,
      peakRss: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    await pool.destroy();
  }
}

if (values.one) {
  const result = values.mode === "proxy" ? await proxyChild(values.one) : await measureChild(values.one);
  process.stdout.write(JSON.stringify(result));
  process.exit(0);
}

fs.mkdirSync(dir, { recursive: true });
const self = fileURLToPath(import.meta.url);
const child = (file: string, mode: string, env: NodeJS.ProcessEnv = process.env) => {
  const r = spawnSync(process.execPath, [...process.execArgv, self, ...process.argv.slice(2), "--one", file, "--mode", mode], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26, env });
  if (r.status !== 0) throw new Error(`${mode} child for ${file} failed (${r.status})`);
  return JSON.parse(r.stdout);
};

const proxyOnly = values["proxy-only"] === true;
process.stdout.write(
  `tune at scale${proxyOnly ? " (proxy errors only)" : ""}: ${os.cpus().length} cores, ${threads} threads, ctx ${ctx} × ${chunks} chunks per evaluation, --proxy-rows ${proxyRows}; load: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}\n\n`,
);
const rows: { m?: MeasureFigures; p: ProxyFigures }[] = [];
for (const n of values.layers!.split(",").map(Number)) {
  const file = await syntheticModel(n);
  let m: MeasureFigures | undefined;
  if (!proxyOnly) {
    log(`${path.basename(file)}: measure mode`);
    m = child(file, "measure") as MeasureFigures;
  }
  log(`${path.basename(file)}: proxy mode`);
  const p = child(file, "proxy") as ProxyFigures;
  rows.push({ m, p });
}
// the largest model's evaluations once more on the fast path, for llama.cpp's own CPU rate
let fastM: MeasureFigures | undefined;
if (values.fast && !proxyOnly) {
  const file = await syntheticModel(rows[rows.length - 1]!.p.nLayer);
  log(`${path.basename(file)}: measure mode, HQUANT_LLAMA_DIR=${path.resolve(values.fast)}`);
  fastM = child(file, "measure", { ...process.env, HQUANT_LLAMA_DIR: path.resolve(values.fast) }) as MeasureFigures;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
if (!proxyOnly) {
  process.stdout.write("measure mode, per measurement (mean over the points measured):\n\n");
  process.stdout.write("| model | params | file | evaluations (full tune) | build/write s | load s | evaluate s | outside evaluation | bytes written | group's quantized bytes | written ÷ (2×group + 1 MiB) | base shards (once) | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const { m } of rows) {
    if (!m) continue;
    const k = m.points.length;
    const build = sum(m.points.map((x) => x.build)) / k;
    const load = sum(m.points.map((x) => x.load)) / k;
    const evaluate = sum(m.points.map((x) => x.evaluate)) / k;
    const bytes = sum(m.points.map((x) => x.bytes)) / k;
    const group = sum(m.points.map((x) => x.groupBytes)) / k;
    const worst = Math.max(...m.points.map((x) => x.bytes / (2 * x.groupBytes + 2 ** 20)));
    process.stdout.write(
      `| ${m.nLayer} layers | ${(m.params / 1e9).toFixed(3)} B | ${mib(m.fileBytes)} | ${m.evaluations} | ${build.toFixed(2)} | ${load.toFixed(2)} | ${evaluate.toFixed(2)} | ${((100 * (build + load)) / (build + load + evaluate)).toFixed(1)} % | ${mib(bytes)} | ${mib(group)} | ${worst.toFixed(3)} (worst) | ${mib(m.baseShardBytes)} in ${m.baseShardSeconds.toFixed(1)} s | ${mib(m.peakRss)} |\n`,
    );
  }
  process.stdout.write("\nbefore shards, every measurement wrote the whole file (the column \"file\") and loaded it.\n");
}
process.stdout.write(
  "\nproxy mode:\n\n| model | params | proxy errors s | CPU s (all threads) | sampled params | params × types / s | s per G params | proxy-mode evaluations | peak RSS |\n|---|---|---|---|---|---|---|---|---|\n",
);
for (const { p } of rows) {
  process.stdout.write(
    `| ${p.nLayer} layers | ${(p.params / 1e9).toFixed(3)} B | ${p.seconds.toFixed(1)} | ${p.cpuSeconds.toFixed(1)} | ${(p.sampledParams / 1e6).toFixed(1)} M | ${(p.work / p.seconds / 1e6).toFixed(2)} M | ${(p.seconds / (p.params / 1e9)).toFixed(1)} | ${p.proxyEvaluations} | ${mib(p.peakRss)} |\n`,
  );
}

// 70B: the proxy's work from its shapes (every row width there is a multiple of 256, so each tensor
// has every candidate type), at the largest model's rate per thread, on 16 threads
const big = rows[rows.length - 1]!;
const types = DEFAULT_CANDIDATE_TYPES.length;
const shapes70 = factoryTensors(SHAPE_70B).filter((t) => t.shape.length >= 2).map((t) => ({ shape: t.shape, options: new Array(types) }));
const work70 = proxyWork(shapes70, proxyRows);
const params70 = params(factoryTensors(SHAPE_70B).map((t) => t.shape));
const ratePerThread = big.p.work / big.p.seconds / threads;
const proxy70 = work70.work / (ratePerThread * 16);
// the same from CPU seconds (every thread's, the main thread's reads included): what a thread does
// per second when it has a core, so a loaded machine does not inflate it
const cpuRatePerThread = big.p.work / big.p.cpuSeconds;
const proxy70Cpu = work70.work / (cpuRatePerThread * 16);
// proxy mode's evaluations do not grow with depth (the middle layer's kind points, the groups
// outside the layers and those of the edge layers), plus the base and the verification of its two
// candidates on the calibration chunks (an --eval-text adds two more: its base and the chosen file)
const evals70 = big.p.proxyEvaluations + 1 + 2;
let evalLine = "  proxy mode's evaluations: not measured (--proxy-only)\n";
if (big.m) {
  // an evaluation's time ∝ parameters × tokens, at the largest model's measured rate per thread
  // (parameters × tokens per second; a shorter chunk's attention is cheaper, so per token this is
  // an upper bound below ctx)
  const rateOf = (m: MeasureFigures) => (m.params * ctx * chunks) / (sum(m.points.map((x) => x.evaluate)) / m.points.length) / threads;
  const eval70 = (tokens: number, rate: number) => (params70 * tokens) / (rate * 16);
  const chunkTokens = Number(DEFAULT_CTX);
  const settings = [
    { what: `4 chunks × ${chunkTokens} tokens (proxy mode's earlier default)`, tokens: 4 * chunkTokens },
    { what: `proxy mode's default, ${DEFAULT_TUNE_CHUNKS.proxy} × ${chunkTokens} tokens`, tokens: DEFAULT_TUNE_CHUNKS.proxy * chunkTokens },
    { what: "-c 256 --chunks 1 (256 tokens; on the bundled model as good as 4 and 12 chunks, README)", tokens: 256 },
  ];
  const libraries = [
    { what: "default install", rate: rateOf(big.m) },
    ...(fastM ? [{ what: `fast path (HQUANT_LLAMA_DIR=${path.resolve(values.fast!)})`, rate: rateOf(fastM) }] : []),
  ];
  evalLine = `  proxy mode's ${evals70} evaluations (its ${big.p.proxyEvaluations} points, the same count at any depth; the base; the verification of 2 candidates):\n`;
  for (const lib of libraries) {
    evalLine += `    ${lib.what}, ${(lib.rate / 1e9).toFixed(2)} G parameters × tokens / s per thread (the ${big.p.nLayer}-layer model's, ${ctx * chunks} tokens per evaluation):\n`;
    for (const st of settings) {
      const e = eval70(st.tokens, lib.rate);
      evalLine += `      ${st.what}: ${e.toFixed(0)} s each → ${((evals70 * e) / 60).toFixed(1)} min; proxy mode in all (+ the proxy errors with a core per thread) ${((proxy70Cpu + evals70 * e) / 60).toFixed(1)} min\n`;
    }
  }
  evalLine += `  measure mode: ${2 * 80 + 23} evaluations of ${DEFAULT_TUNE_CHUNKS.measure} chunks → ${(((2 * 80 + 23) * eval70(DEFAULT_TUNE_CHUNKS.measure * chunkTokens, rateOf(big.m))) / 3600).toFixed(1)} h on the CPU (default install)\n`;
}
process.stdout.write(
  `\n70B-shaped llama (${(params70 / 1e9).toFixed(1)} B parameters, ${shapes70.length} matrices, ${types} candidate types each), 16 threads:\n` +
    `  proxy errors: ${(work70.sampled / 1e9).toFixed(2)} G sampled parameters × ${types} types = ${(work70.work / 1e9).toFixed(1)} G, at ${(ratePerThread / 1e6).toFixed(2)} M/s per thread ` +
    `(wall clock, measured on the ${big.p.nLayer}-layer model) → ${(proxy70 / 60).toFixed(1)} min; ` +
    `at ${(cpuRatePerThread / 1e6).toFixed(2)} M/s per CPU second (${big.p.cpuSeconds.toFixed(1)} CPU s for ${(big.p.work / 1e9).toFixed(2)} G) → ${(proxy70Cpu / 60).toFixed(1)} min with a core per thread\n` +
    evalLine +
    `  (linear scaling over threads assumed; rates measured under the load above; load at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")})\n`,
);
