// bench/build: `hquant build` vs llama.cpp's llama_model_quantize, same machine, same run, same
// thread count. Models: the bundled tinyllama-16l (F16, 29 MB) and a synthetic llama model of
// > 1 GiB F16 generated into /tmp (never committed); plus two small synthetic models of 16 and 64
// layers to show whether peak memory grows with model size. Types: Q4_K_M, Q4_K_H (hquant's
// hybrid; llama.cpp gets the same per-tensor types through --tensor-type overrides, so both do the
// same work and must write the same tensor data), Q6_K.
//
// Each quantization runs in its own child process under /usr/bin/time -v (peak RSS); the time is
// the quantization itself as measured inside the child (hquant: buildModel, pool start included;
// llama.cpp: the llama_model_quantize call), so process start-up is not counted for either.
// Small models (< SMALL_MODEL_BYTES) are run SMALL_MODEL_RUNS times by each tool, alternating: a
// sub-second run on a shared machine is noisy, so each side gets its best time (and its highest
// peak RSS).
//
//   npx tsx bench/build.ts            (npm run build first: the hquant child runs dist/)
//   npx tsx bench/build.ts --quick    (bundled model only)
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readHeaderAt } from "../src/gguf/reader.js";
import { makeModel, type FactoryOptions } from "../test/factory.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BENCH_DIR = path.join(os.tmpdir(), "hquant-bench-build");
const THREADS = 2;
const TYPES = ["Q4_K_M", "Q4_K_H", "Q6_K"] as const;
const SMALL_MODEL_BYTES = 200e6;
const SMALL_MODEL_RUNS = 3;

// ---- child: llama_model_quantize in a process of its own ----------------------------------

/** The same child with nothing to do but load libllama: its RSS is the harness's share. */
async function llamaIdleChild(): Promise<void> {
  const { llamaQuantize } = await import("../test/oracle/llama.js");
  try {
    llamaQuantize(path.join(BENCH_DIR, "no-such-model.gguf"), path.join(BENCH_DIR, "none.gguf"), { ftype: "Q8_0" });
  } catch {
    // expected: the library is loaded, there is no model
  }
}

async function llamaChild(args: string[]): Promise<void> {
  const [input, output, ftype, overridesFile] = args as [string, string, string, string | undefined];
  const { llamaQuantize } = await import("../test/oracle/llama.js");
  const tensorTypes = overridesFile ? (JSON.parse(fs.readFileSync(overridesFile, "utf8")) as [string, string][]) : undefined;
  const t0 = performance.now();
  llamaQuantize(input, output, { ftype, threads: THREADS, tensorTypes });
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }) + "\n");
}

// ---- parent ----------------------------------------------------------------------------------

interface Run {
  seconds: number;
  rssMB: number;
}

function timed(cmd: string[]): { stdout: string; rssMB: number } {
  const r = spawnSync("/usr/bin/time", ["-v", ...cmd], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${r.stderr}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no RSS in /usr/bin/time output:\n${r.stderr}`);
  return { stdout: r.stdout, rssMB: Number(m[1]) / 1024 };
}

/** The best time and the highest peak RSS of two runs. */
function best(a: Run, b: Run): Run {
  return { seconds: Math.min(a.seconds, b.seconds), rssMB: Math.max(a.rssMB, b.rssMB) };
}

function scheduleArgs(type: string): string[] {
  return type.endsWith("_H") ? ["--preset", type] : ["--ftype", type];
}

function runHquant(input: string, output: string, type: string): Run {
  const { stdout, rssMB } = timed([process.execPath, "bin/hquant.js", "build", input, output, ...scheduleArgs(type), "-t", String(THREADS), "--json"]);
  return { seconds: (JSON.parse(stdout) as { seconds: number }).seconds, rssMB };
}

/** llama.cpp gets the hybrid as one --tensor-type override per quantized tensor (from hquant plan). */
function llamaArgsFor(input: string, type: string): { ftype: string; overrides?: string } {
  if (!type.endsWith("_H")) return { ftype: type };
  const r = spawnSync(process.execPath, ["bin/hquant.js", "plan", input, "--preset", type, "--json"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`hquant plan failed: ${r.stderr}`);
  const plan = JSON.parse(r.stdout) as { schedule: { ftype: string }; tensors: { name: string; srcType: string; dstType: string }[] };
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const overrides = plan.tensors.filter((t) => t.srcType !== t.dstType).map((t) => [`^${escape(t.name)}$`, t.dstType]);
  const file = path.join(BENCH_DIR, `${path.basename(input)}.${type}.overrides.json`);
  fs.writeFileSync(file, JSON.stringify(overrides));
  return { ftype: plan.schedule.ftype, overrides: file };
}

function runLlama(input: string, output: string, type: string): Run {
  const { ftype, overrides } = llamaArgsFor(input, type);
  const args = [process.execPath, "--import", "tsx", "bench/build.ts", "--llama-child", input, output, ftype];
  if (overrides) args.push(overrides);
  const { stdout, rssMB } = timed(args);
  return { seconds: (JSON.parse(stdout.trim().split("\n").at(-1)!) as { seconds: number }).seconds, rssMB };
}

/** Tensor data sections equal (the headers differ by hquant.* keys only). */
async function sameTensorData(a: string, b: string): Promise<boolean> {
  const dataOffset = async (file: string) => (await readHeaderAt(file)).dataOffset;
  const oa = await dataOffset(a);
  const ob = await dataOffset(b);
  const length = fs.statSync(a).size - oa;
  if (length !== fs.statSync(b).size - ob) return false;
  return compareRanges(a, oa, b, ob, length);
}

function compareRanges(a: string, oa: number, b: string, ob: number, length: number): boolean {
  const fa = fs.openSync(a, "r");
  const fb = fs.openSync(b, "r");
  const ba = Buffer.alloc(8 << 20);
  const bb = Buffer.alloc(8 << 20);
  try {
    for (let off = 0; off < length; off += ba.length) {
      const n = Math.min(ba.length, length - off);
      fs.readSync(fa, ba, 0, n, oa + off);
      fs.readSync(fb, bb, 0, n, ob + off);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

const LARGE: FactoryOptions = {
  arch: "llama",
  nLayer: 16,
  nEmbd: 1536,
  nHead: 12,
  nHeadKv: 4,
  nFf: 4352,
  nVocab: 40960,
  dtype: "f16",
  tied: false,
  seed: 7,
};
const DEPTH: FactoryOptions = { ...LARGE, nEmbd: 512, nHead: 8, nHeadKv: 2, nFf: 1536, nVocab: 8192, seed: 11 };

const fmt = (n: number, d = 2) => n.toFixed(d);

async function main(): Promise<void> {
  if (process.argv[2] === "--llama-child") return llamaChild(process.argv.slice(3));
  if (process.argv[2] === "--llama-idle") return llamaIdleChild();
  const quick = process.argv.includes("--quick");
  if (!fs.existsSync(path.join(ROOT, "dist/cli/main.js"))) throw new Error("run npm run build first");
  fs.mkdirSync(BENCH_DIR, { recursive: true });

  const models: { label: string; file: string }[] = [{ label: "tinyllama-16l (bundled)", file: path.join(ROOT, "models/tinyllama-16l-f16.gguf") }];
  if (!quick) {
    process.stderr.write("generating the synthetic models in " + BENCH_DIR + " …\n");
    models.push({ label: "synthetic llama 16 layers", file: await makeModel({ ...LARGE, dir: BENCH_DIR }) });
  }
  const out = path.join(BENCH_DIR, "out");
  const rows: string[] = [];
  rows.push(`machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM; ${THREADS} threads; node ${process.version}`);
  const idleHquant = timed([process.execPath, "bin/hquant.js", "--help"]).rssMB;
  const idleLlama = timed([process.execPath, "--import", "tsx", "bench/build.ts", "--llama-idle"]).rssMB;
  rows.push(`idle processes (start-up only): hquant CLI ${fmt(idleHquant, 0)} MB; llama.cpp harness (node + tsx + koffi + libllama) ${fmt(idleLlama, 0)} MB`);
  rows.push("");
  rows.push("| model | input MB | type | hquant s | hquant MB/s | llama.cpp s | llama.cpp MB/s | speed-up | hquant RSS MB | llama.cpp RSS MB | RSS ratio | same tensor data |");
  rows.push("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const m of models) {
    const inputMB = fs.statSync(m.file).size / 1e6;
    for (const type of TYPES) {
      const runs = fs.statSync(m.file).size < SMALL_MODEL_BYTES ? SMALL_MODEL_RUNS : 1;
      let h: Run = { seconds: Infinity, rssMB: 0 };
      let l: Run = { seconds: Infinity, rssMB: 0 };
      for (let r = 0; r < runs; r++) {
        h = best(h, runHquant(m.file, `${out}.hquant.gguf`, type));
        l = best(l, runLlama(m.file, `${out}.llama.gguf`, type));
      }
      const same = await sameTensorData(`${out}.hquant.gguf`, `${out}.llama.gguf`);
      rows.push(
        `| ${m.label} | ${fmt(inputMB, 0)} | ${type} | ${fmt(h.seconds)} | ${fmt(inputMB / h.seconds, 0)} | ${fmt(l.seconds)} | ${fmt(inputMB / l.seconds, 0)} | ` +
          `${fmt(l.seconds / h.seconds)}× | ${fmt(h.rssMB, 0)} | ${fmt(l.rssMB, 0)} | ${fmt(h.rssMB / l.rssMB)} | ${same ? "yes" : "NO"} |`,
      );
      process.stderr.write(rows.at(-1) + "\n");
      fs.rmSync(`${out}.hquant.gguf`, { force: true });
      fs.rmSync(`${out}.llama.gguf`, { force: true });
    }
  }
  if (!quick) {
    rows.push("");
    rows.push("peak RSS vs model size (Q4_K_M, same layer shapes, 16 vs 64 layers):");
    rows.push("");
    rows.push("| model | input MB | hquant RSS MB | llama.cpp RSS MB |");
    rows.push("|---|---:|---:|---:|");
    const depth: { inputMB: number; hquant: Run; llama: Run }[] = [];
    for (const nLayer of [16, 64]) {
      const file = await makeModel({ ...DEPTH, nLayer, dir: BENCH_DIR });
      const h = runHquant(file, `${out}.hquant.gguf`, "Q4_K_M");
      const l = runLlama(file, `${out}.llama.gguf`, "Q4_K_M");
      depth.push({ inputMB: fs.statSync(file).size / 1e6, hquant: h, llama: l });
      rows.push(`| synthetic llama ${nLayer} layers (n_embd ${DEPTH.nEmbd}) | ${fmt(fs.statSync(file).size / 1e6, 0)} | ${fmt(h.rssMB, 0)} | ${fmt(l.rssMB, 0)} |`);
      process.stderr.write(rows.at(-1) + "\n");
      fs.rmSync(`${out}.hquant.gguf`, { force: true });
      fs.rmSync(`${out}.llama.gguf`, { force: true });
    }
    const [small, large] = depth as [(typeof depth)[0], (typeof depth)[0]];
    const growth = (tool: "hquant" | "llama") => {
      const mb = large[tool].rssMB - small[tool].rssMB;
      return `${mb >= 0 ? "+" : ""}${fmt(mb, 0)} MB`;
    };
    rows.push("");
    rows.push(`16 → 64 layers (input × ${fmt(large.inputMB / small.inputMB, 1)}): peak RSS hquant ${growth("hquant")}, llama.cpp ${growth("llama")}`);
  }
  process.stdout.write(rows.join("\n") + "\n");
}

await main();
