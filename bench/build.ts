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
//
// --custom-pool [REF] adds a third tool to every round: hquant with the hand-written worker_threads
// pool it had before piscina (src/pool/ as of REF, default 9aa3e7a), everything else
// this tree's. It is compiled into the temp folder (never into the tree), so the piscina pool and
// the custom one are compared on the same build, the same rounds and the same load.
//
//   npm run build && npx tsx bench/build.ts                (bundled: 5 rounds, synthetic: 1 round)
//   npx tsx bench/build.ts --quick                         (bundled model only)
//   npx tsx bench/build.ts --rounds 7 --large-rounds 2
//   npx tsx bench/build.ts --custom-pool                   (piscina vs the custom pool vs llama-quantize)
//   npx tsx bench/build.ts --large-only --types Q4_K_M,Q8_0  (a subset: the synthetic model, two types)
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readHeaderAt } from "../src/gguf/reader.js";
import { makeModel, syntheticImatrix, type FactoryOptions } from "../test/factory.js";
import { llamaTool } from "./llama-tools.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BENCH_DIR = path.join(os.tmpdir(), "hquant-bench-build");
/** the last commit whose src/pool was the hand-written worker_threads pool */
const CUSTOM_POOL_REF = "9aa3e7a";

/**
 * A copy of this tree's build (bin, dist, kernels, presets, schemas) in BENCH_DIR with src/pool as
 * of `ref`, compiled there; returns its root. Only the pool differs from the tree under test.
 */
function customPoolBuild(ref: string): string {
  const root = path.join(BENCH_DIR, "custom-pool");
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, "build"), { recursive: true });
  for (const d of ["bin", "dist", "src", "presets", "schemas"]) fs.cpSync(path.join(ROOT, d), path.join(root, d), { recursive: true });
  for (const f of ["package.json", "tsconfig.json", "build/kernels.wasm"]) fs.copyFileSync(path.join(ROOT, f), path.join(root, f));
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(root, "node_modules"));
  fs.rmSync(path.join(root, "src/pool"), { recursive: true });
  fs.rmSync(path.join(root, "dist/pool"), { recursive: true });
  fs.mkdirSync(path.join(root, "src/pool"));
  const files = execFileSync("git", ["ls-tree", "--name-only", `${ref}:src/pool`], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
  for (const f of files) fs.writeFileSync(path.join(root, "src/pool", f), execFileSync("git", ["show", `${ref}:src/pool/${f}`], { cwd: ROOT }));
  execFileSync(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });
  return root;
}

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

function hquantCommand(m: Model, c: Config, threads: number, out: string, root = ROOT): string[] {
  const args = [process.execPath, path.join(root, "bin/hquant.js"), "build", m.file, out, "--ftype", c.ftype, "-t", String(threads), "--quiet"];
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

type Tool = "hquant" | "custom" | "llama";
interface Cell {
  runs: Record<Tool, Run[]>;
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
  const largeOnly = process.argv.includes("--large-only");
  const typesAt = process.argv.indexOf("--types");
  const configs = typesAt < 0 ? CONFIGS : CONFIGS.filter((c) => process.argv[typesAt + 1]!.split(",").includes(c.label));
  if (configs.length === 0) throw new Error(`--types: none of ${process.argv[typesAt + 1]} is one of ${CONFIGS.map((c) => c.label).join(", ")}`);
  const rounds = argValue("--rounds", 5);
  const largeRounds = argValue("--large-rounds", 1);
  const customAt = process.argv.indexOf("--custom-pool");
  const customRef = customAt < 0 ? undefined : process.argv[customAt + 1] && !process.argv[customAt + 1]!.startsWith("--") ? process.argv[customAt + 1]! : CUSTOM_POOL_REF;
  if (!fs.existsSync(path.join(ROOT, "dist/cli/main.js"))) throw new Error("run npm run build first");
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  llamaTool("llama-quantize"); // built once (cached) before anything is timed
  const customRoot = customRef === undefined ? undefined : customPoolBuild(customRef);
  const tools: Tool[] = customRoot ? ["hquant", "custom", "llama"] : ["hquant", "llama"];
  const outputs: Record<Tool, string> = {
    hquant: path.join(BENCH_DIR, "out.hquant.gguf"),
    custom: path.join(BENCH_DIR, "out.custom.gguf"),
    llama: path.join(BENCH_DIR, "out.llama.gguf"),
  };

  const models: Model[] = [
    { label: "tinyllama-16l (bundled)", file: path.join(ROOT, "models/tinyllama-16l-f16.gguf"), imatrix: path.join(ROOT, "test/fixtures/imatrix/imatrix.gguf"), rounds },
  ];
  if (!quick) {
    process.stderr.write(`generating the synthetic model in ${BENCH_DIR} …\n`);
    const file = await makeModel({ ...LARGE, dir: BENCH_DIR });
    const imatrix = await syntheticImatrix(file, 21, BENCH_DIR);
    models.push({ label: "synthetic llama 16 layers", file, imatrix, rounds: largeRounds });
    if (largeOnly) models.shift();
  }
  const cells = new Map<string, Cell>();
  const key = (m: Model, c: Config, t: number) => `${m.label}|${c.label}|${t}`;
  const started = performance.now();
  const command = (tool: Tool, m: Model, c: Config, t: number): string[] =>
    tool === "llama" ? llamaCommand(m, c, t, outputs.llama) : hquantCommand(m, c, t, outputs[tool], tool === "custom" ? customRoot : ROOT);
  const show = (r: Run) => `${fmt(r.wall)} s (CPU ${fmt(r.cpu)} s, ${fmt(r.rssMB, 0)} MB)`;

  for (const m of models) {
    for (let round = 0; round < m.rounds; round++) {
      for (const c of configs) {
        for (const t of THREADS) {
          const cell = cells.get(key(m, c, t)) ?? { runs: { hquant: [], custom: [], llama: [] }, same: true };
          // the tools' order rotates from round to round
          const order = tools.map((_, i) => tools[(i + round) % tools.length]!);
          for (const tool of order) cell.runs[tool].push(timed(command(tool, m, c, t)));
          for (const tool of tools) if (tool !== "llama") cell.same &&= await sameTensorData(outputs[tool], outputs.llama);
          cells.set(key(m, c, t), cell);
          process.stderr.write(
            `${m.label} ${c.label} -t ${t} round ${round + 1}: ${tools.map((tool) => `${tool} ${show(cell.runs[tool].at(-1)!)}`).join(", ")}${cell.same ? "" : "  DIFFERENT BYTES"}\n`,
          );
          for (const tool of tools) fs.rmSync(outputs[tool], { force: true });
        }
      }
    }
  }

  const rows: string[] = [];
  rows.push(`machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GB RAM; node ${process.version}; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  rows.push(`rounds: ${models.map((m) => `${m.label} ${m.rounds}`).join(", ")}; medians; whole commands (process start-up included); bench took ${fmt((performance.now() - started) / 60_000, 1)} min`);
  rows.push("");
  const med = (cell: Cell, tool: Tool, f: keyof Run) => median(cell.runs[tool].map((r) => r[f]));
  if (customRoot) rows.push(`custom pool: hquant with src/pool as of ${customRef} (hand-written worker_threads pool), the rest of this tree; piscina/custom is the wall-time ratio (> 1: piscina slower)`, "");
  const custom = customRoot !== undefined;
  rows.push(
    `| model | input MB | type | threads | hquant wall s |${custom ? " custom pool wall s | piscina/custom |" : ""} llama-quantize wall s | speed-up | hquant CPU s |${custom ? " custom CPU s |" : ""} llama-quantize CPU s | hquant RSS MB |${custom ? " custom RSS MB |" : ""} llama-quantize RSS MB | same tensor data |`,
  );
  rows.push(`|---|---:|---|---:|---:|${custom ? "---:|---:|" : ""}---:|---:|---:|${custom ? "---:|" : ""}---:|---:|${custom ? "---:|" : ""}---:|---|`);
  for (const m of models) {
    const inputMB = fs.statSync(m.file).size / 1e6;
    for (const c of configs) {
      for (const t of THREADS) {
        const cell = cells.get(key(m, c, t))!;
        const h = (f: keyof Run) => med(cell, "hquant", f);
        const k = (f: keyof Run) => med(cell, "custom", f);
        const l = (f: keyof Run) => med(cell, "llama", f);
        rows.push(
          `| ${m.label} | ${fmt(inputMB, 0)} | ${c.label} | ${t} | ${fmt(h("wall"))} |${custom ? ` ${fmt(k("wall"))} | ${fmt(h("wall") / k("wall"), 3)} |` : ""} ${fmt(l("wall"))} | ${fmt(l("wall") / h("wall"))}× | ` +
            `${fmt(h("cpu"))} |${custom ? ` ${fmt(k("cpu"))} |` : ""} ${fmt(l("cpu"))} | ${fmt(h("rssMB"), 0)} |${custom ? ` ${fmt(k("rssMB"), 0)} |` : ""} ${fmt(l("rssMB"), 0)} | ${cell.same ? "yes" : "NO"} |`,
        );
      }
    }
  }
  rows.push("");
  rows.push("1 → 2 threads (wall-time ratio):");
  rows.push("");
  rows.push(`| model | type | hquant |${custom ? " custom pool |" : ""} llama-quantize |`);
  rows.push(`|---|---|---:|${custom ? "---:|" : ""}---:|`);
  for (const m of models) {
    for (const c of configs) {
      const ratio = (tool: Tool) => fmt(med(cells.get(key(m, c, 1))!, tool, "wall") / med(cells.get(key(m, c, 2))!, tool, "wall"));
      rows.push(`| ${m.label} | ${c.label} | ${ratio("hquant")}× |${custom ? ` ${ratio("custom")}× |` : ""} ${ratio("llama")}× |`);
    }
  }
  process.stdout.write(rows.join("\n") + "\n");
  if ([...cells.values()].some((c) => !c.same)) process.exitCode = 1;
}

await main();
