// bench/build: `hquant build` vs llama-quantize built from the source bundle (bench/llama-tools.ts),
// the whole command each time — process start-up included, since that is what a user (and tune,
// scan) waits for. Models: the bundled tinyllama-16l (F16, 29 MB) and a synthetic llama model of
// > 1 GB F16 generated into the temp folder (never committed). Types: Q4_K_M, Q6_K, Q3_K_M, IQ4_XS,
// Q8_0, and Q4_K_M with an imatrix (the bundled model's own; a seeded one for the synthetic
// model), each at 1 and 2 threads.
//
// Rounds are interleaved: every round runs each (model, type, threads) once with both tools, the
// order of the two tools alternating from round to round, so load from other jobs on the machine
// falls on both alike. Wall time is measured around the child process; CPU time (user + sys) and
// peak RSS come from /usr/bin/time -v. Each side's figure is its median over the rounds. After
// every pair of runs the two outputs' tensor data are compared byte for byte (the headers differ
// only by the hquant.* keys the CLI records).
//
//   npm run build && npx tsx bench/build.ts                (bundled: 5 rounds, synthetic: 1 round)
//   npx tsx bench/build.ts --quick                         (bundled model only)
//   npx tsx bench/build.ts --rounds 7 --large-rounds 2
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readHeaderAt } from "../src/gguf/reader.js";
import { makeModel, syntheticImatrix, type FactoryOptions } from "../test/factory.js";
import { llamaTool } from "./llama-tools.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BENCH_DIR = path.join(os.tmpdir(), "hquant-bench-build");

interface Config {
  label: string;
  ftype: string;
  imatrix: boolean;
}
const CONFIGS: readonly Config[] = [
  { label: "Q4_K_M", ftype: "Q4_K_M", imatrix: false },
  { label: "Q6_K", ftype: "Q6_K", imatrix: false },
  { label: "Q3_K_M", ftype: "Q3_K_M", imatrix: false },
  { label: "IQ4_XS", ftype: "IQ4_XS", imatrix: false },
  { label: "Q8_0", ftype: "Q8_0", imatrix: false },
  { label: "Q4_K_M imatrix", ftype: "Q4_K_M", imatrix: true },
];
const THREADS = [1, 2] as const;

/** ≈ 1.1 GB of F16: 16 layers of a 1.5 B-parameter-class shape, a 40 960-token vocabulary. */
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

interface Run {
  wall: number;
  cpu: number;
  rssMB: number;
}

/** Runs a command under /usr/bin/time -v: wall (measured here), CPU and peak RSS (from time). */
function timed(cmd: string[]): Run {
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-v", ...cmd], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${r.stderr}`);
  const field = (name: string) => {
    const m = new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr);
    if (!m) throw new Error(`no "${name}" in /usr/bin/time output:\n${r.stderr}`);
    return Number(m[1]);
  };
  return { wall, cpu: field("User time \\(seconds\\)") + field("System time \\(seconds\\)"), rssMB: field("Maximum resident set size \\(kbytes\\)") / 1024 };
}

interface Model {
  label: string;
  file: string;
  imatrix: string;
  rounds: number;
}

function hquantCommand(m: Model, c: Config, threads: number, out: string): string[] {
  const args = [process.execPath, "bin/hquant.js", "build", m.file, out, "--ftype", c.ftype, "-t", String(threads), "--quiet"];
  if (c.imatrix) args.push("--imatrix", m.imatrix);
  return args;
}

function llamaCommand(m: Model, c: Config, threads: number, out: string): string[] {
  return [llamaTool("llama-quantize"), ...(c.imatrix ? ["--imatrix", m.imatrix] : []), m.file, out, c.ftype, String(threads)];
}

/** Tensor data sections equal (the headers differ by hquant.* keys only). */
async function sameTensorData(a: string, b: string): Promise<boolean> {
  const oa = (await readHeaderAt(a)).dataOffset;
  const ob = (await readHeaderAt(b)).dataOffset;
  const length = fs.statSync(a).size - oa;
  if (length !== fs.statSync(b).size - ob) return false;
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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number, d = 2) => n.toFixed(d);

interface Cell {
  hquant: Run[];
  llama: Run[];
  same: boolean;
}

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: ${process.argv[i + 1]} is not a positive integer`);
  return v;
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const rounds = argValue("--rounds", 5);
  const largeRounds = argValue("--large-rounds", 1);
  if (!fs.existsSync(path.join(ROOT, "dist/cli/main.js"))) throw new Error("run npm run build first");
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  llamaTool("llama-quantize"); // built once (cached) before anything is timed

  const models: Model[] = [
    { label: "tinyllama-16l (bundled)", file: path.join(ROOT, "models/tinyllama-16l-f16.gguf"), imatrix: path.join(ROOT, "test/fixtures/imatrix/imatrix.gguf"), rounds },
  ];
  if (!quick) {
    process.stderr.write(`generating the synthetic model in ${BENCH_DIR} …\n`);
    const file = await makeModel({ ...LARGE, dir: BENCH_DIR });
    const imatrix = await syntheticImatrix(file, 21, BENCH_DIR);
    models.push({ label: "synthetic llama 16 layers", file, imatrix, rounds: largeRounds });
  }
  const hOut = path.join(BENCH_DIR, "out.hquant.gguf");
  const lOut = path.join(BENCH_DIR, "out.llama.gguf");
  const cells = new Map<string, Cell>();
  const key = (m: Model, c: Config, t: number) => `${m.label}|${c.label}|${t}`;
  const started = performance.now();

  for (const m of models) {
    for (let round = 0; round < m.rounds; round++) {
      for (const c of CONFIGS) {
        for (const t of THREADS) {
          const cell = cells.get(key(m, c, t)) ?? { hquant: [], llama: [], same: true };
          const runH = () => cell.hquant.push(timed(hquantCommand(m, c, t, hOut)));
          const runL = () => cell.llama.push(timed(llamaCommand(m, c, t, lOut)));
          if (round % 2 === 0) {
            runH();
            runL();
          } else {
            runL();
            runH();
          }
          cell.same &&= await sameTensorData(hOut, lOut);
          cells.set(key(m, c, t), cell);
          const h = cell.hquant.at(-1)!;
          const l = cell.llama.at(-1)!;
          const run = (r: Run) => `${fmt(r.wall)} s (CPU ${fmt(r.cpu)} s, ${fmt(r.rssMB, 0)} MB)`;
          process.stderr.write(`${m.label} ${c.label} -t ${t} round ${round + 1}: hquant ${run(h)}, llama-quantize ${run(l)}${cell.same ? "" : "  DIFFERENT BYTES"}\n`);
          fs.rmSync(hOut, { force: true });
          fs.rmSync(lOut, { force: true });
        }
      }
    }
  }

  const rows: string[] = [];
  rows.push(`machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM; node ${process.version}; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  rows.push(`rounds: ${models.map((m) => `${m.label} ${m.rounds}`).join(", ")}; medians; whole commands (process start-up included); bench took ${fmt((performance.now() - started) / 60_000, 1)} min`);
  rows.push("");
  rows.push("| model | input MB | type | threads | hquant wall s | llama-quantize wall s | speed-up | hquant CPU s | llama-quantize CPU s | hquant RSS MB | llama-quantize RSS MB | same tensor data |");
  rows.push("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const m of models) {
    const inputMB = fs.statSync(m.file).size / 1e6;
    for (const c of CONFIGS) {
      for (const t of THREADS) {
        const cell = cells.get(key(m, c, t))!;
        const h = (f: keyof Run) => median(cell.hquant.map((r) => r[f]));
        const l = (f: keyof Run) => median(cell.llama.map((r) => r[f]));
        rows.push(
          `| ${m.label} | ${fmt(inputMB, 0)} | ${c.label} | ${t} | ${fmt(h("wall"))} | ${fmt(l("wall"))} | ${fmt(l("wall") / h("wall"))}× | ` +
            `${fmt(h("cpu"))} | ${fmt(l("cpu"))} | ${fmt(h("rssMB"), 0)} | ${fmt(l("rssMB"), 0)} | ${cell.same ? "yes" : "NO"} |`,
        );
      }
    }
  }
  rows.push("");
  rows.push("1 → 2 threads (wall-time ratio):");
  rows.push("");
  rows.push("| model | type | hquant | llama-quantize |");
  rows.push("|---|---|---:|---:|");
  for (const m of models) {
    for (const c of CONFIGS) {
      const wall = (tool: "hquant" | "llama", t: number) => median(cells.get(key(m, c, t))![tool].map((r) => r.wall));
      rows.push(`| ${m.label} | ${c.label} | ${fmt(wall("hquant", 1) / wall("hquant", 2))}× | ${fmt(wall("llama", 1) / wall("llama", 2))}× |`);
    }
  }
  process.stdout.write(rows.join("\n") + "\n");
  if ([...cells.values()].some((c) => !c.same)) process.exitCode = 1;
}

await main();
