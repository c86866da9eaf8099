// hquant imatrix vs llama-imatrix (cmake build of the bundled source, bench/llama-tools.ts) on the
// same model, text and settings, in alternating rounds: wall and CPU seconds of the whole command,
// and whether the imatrix files are the same bytes. Models: the F16 model and its Q4_K_M at
// vocabulary 4 096 (bundled) and 152 000 (widened, bench/models.ts). hquant runs on the library it
// ships (the @node-llama-cpp prebuilt, "default install") and on the fast path, HQUANT_LLAMA_DIR =
// --fast DIR (default: $HQUANT_LLAMA_DIR, else the libraries of llama-imatrix's own build, which
// `hquant runtime --cmake` reproduces).
//
//   npx tsx bench/imatrix.ts [--vocabs 4096,152000] [--chunks 40 | --chunks all] [--ctx 256]
//                            [--threads 2] [--rounds 2] [--start-chunks N] [--fast DIR] [--dir DIR]
//
// Two figures per tool: the whole command's time, and its throughput, chunks per second once
// running: each round also runs every tool on --start-chunks chunks (default one llama_decode's,
// 2048/ctx), and throughput = (chunks − start chunks) / (the whole run's time − the short run's),
// from the best times. The difference is the fixed cost of a run (process start, model load, the
// first decode's set-up), which hquant pays twice over: its CLI and its evaluation process are two
// Node processes, each about 0.1 s to start on the 2-core VM, where llama-imatrix is one binary.
//
// --chunks: 40 by default, so that process start and model load (about half a second on either
// tool) do not dominate a 4 096-vocabulary row; `all` is the whole calib.txt (207 chunks of 256).
// CPU seconds are bash's `time` of the whole command: hquant's evaluation process (where the
// imatrix is computed) is reaped by hquant before it exits, so it is counted too.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { llamaTool } from "./llama-tools.js";
import { benchModels, timedRun, uptime, type TimedRun } from "./models.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const FIXTURES = path.join(REPO, "test/fixtures");

const { values } = parseArgs({
  options: {
    vocabs: { type: "string", default: "4096,152000" },
    chunks: { type: "string", default: "40" },
    ctx: { type: "string", default: "256" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "2" },
    "start-chunks": { type: "string" },
    fast: { type: "string" },
    dir: { type: "string", default: path.join(os.tmpdir(), "hquant-bench-evaluator") },
  },
});
const vocabs = values.vocabs!.split(",").map(Number);
const rounds = Number(values.rounds);
const ctx = values.ctx!;
const threads = values.threads!;
const chunks = values.chunks === "all" ? [] : ["--chunks", values.chunks!];
const startChunks = Number(values["start-chunks"] ?? Math.max(1, Math.floor(2048 / Number(ctx))));
const llama = llamaTool("llama-imatrix");
const fastDir = path.resolve(values.fast ?? process.env.HQUANT_LLAMA_DIR ?? path.dirname(llama));
const { HQUANT_LLAMA_DIR: _, ...shippedEnv } = process.env;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-imatrix-"));
const loadBefore = uptime();

type Tool = "llama-imatrix" | "hquant default" | "hquant fast path";
const TOOLS: readonly Tool[] = ["llama-imatrix", "hquant default", "hquant fast path"];

/** The command of `tool` on `model`, writing `out`; both tools record the text as typed, so they run in the fixtures folder with the bare name. */
function command(tool: Tool, model: string, out: string, n: string[] = chunks): [string, string[], NodeJS.ProcessEnv] {
  if (tool === "llama-imatrix") return [llama, ["-m", model, "-f", "calib.txt", "-c", ctx, "-t", threads, ...n, "-o", out], process.env];
  const args = [path.join(REPO, "bin/hquant.js"), "imatrix", model, "--text", "calib.txt", "-c", ctx, "-t", threads, ...n, "-o", out, "--quiet"];
  return [process.execPath, args, tool === "hquant fast path" ? { ...shippedEnv, HQUANT_LLAMA_DIR: fastDir } : shippedEnv];
}

function runtimeLine(env: NodeJS.ProcessEnv): string {
  const r = timedRun(process.execPath, [path.join(REPO, "bin/hquant.js"), "runtime"], { env });
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(r.stdout)?.[1] ?? "?";
  return `${field("CPU backend")} (${field("compiler")})`;
}

interface Row {
  vocab: number;
  model: string;
  /** chunks of the whole run (llama-imatrix's "computing over N chunks") */
  nChunks: number;
  best: Record<Tool, { wall: number; cpu: number }>;
  /** best wall seconds of the --start-chunks run */
  bestStart: Record<Tool, number>;
  all: Record<Tool, number[]>;
  same: Record<Tool, boolean>;
}

const rows: Row[] = [];
try {
  for (const nVocab of vocabs) {
    const models = await benchModels(nVocab, path.resolve(values.dir!), Number(threads));
    for (const [name, model] of [["F16", models.f16], ["Q4_K_M", models.q4]] as const) {
      const row: Row = {
        vocab: nVocab,
        model: name,
        nChunks: NaN,
        bestStart: Object.fromEntries(TOOLS.map((t) => [t, Infinity])) as Row["bestStart"],
        best: Object.fromEntries(TOOLS.map((t) => [t, { wall: Infinity, cpu: Infinity }])) as Row["best"],
        all: Object.fromEntries(TOOLS.map((t) => [t, []])) as unknown as Row["all"],
        same: {} as Row["same"],
      };
      for (let r = 0; r < rounds; r++) {
        for (const tool of TOOLS) {
          const out = path.join(work, `${tool.replace(/ /g, "-")}-${r}.gguf`);
          const [cmd, args, env] = command(tool, model, out);
          const p: TimedRun = timedRun(cmd, args, { cwd: FIXTURES, env });
          if (p.status !== 0) throw new Error(`${tool} failed on ${model}: ${p.stderr.slice(-2000)}`);
          if (tool === "llama-imatrix") row.nChunks = Number(/computing over (\d+) chunks/.exec(p.stderr)?.[1] ?? NaN);
          const [sCmd, sArgs, sEnv] = command(tool, model, `${out}.start`, ["--chunks", String(startChunks)]);
          const s: TimedRun = timedRun(sCmd, sArgs, { cwd: FIXTURES, env: sEnv });
          if (s.status !== 0) throw new Error(`${tool} failed on ${model} (--chunks ${startChunks}): ${s.stderr.slice(-2000)}`);
          row.bestStart[tool] = Math.min(row.bestStart[tool], s.wall);
          row.all[tool].push(p.wall);
          row.best[tool] = { wall: Math.min(row.best[tool].wall, p.wall), cpu: Math.min(row.best[tool].cpu, p.cpu) };
          process.stderr.write(`vocab ${nVocab} ${name} round ${r + 1}: ${tool} ${p.wall.toFixed(2)} s (${p.cpu.toFixed(2)} CPU s), ${startChunks} chunks ${s.wall.toFixed(2)} s\n`);
        }
      }
      const bytes = (tool: Tool) => fs.readFileSync(path.join(work, `${tool.replace(/ /g, "-")}-0.gguf`));
      for (const tool of TOOLS) row.same[tool] = bytes(tool).equals(bytes("llama-imatrix"));
      rows.push(row);
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

const out = (s: string) => process.stdout.write(`${s}\n`);
out(`\nimatrix: text calib.txt, -c ${ctx}, -t ${threads}, ${chunks.length ? `--chunks ${chunks[1]}` : "all chunks"}, best of ${rounds} alternating rounds, ${os.availableParallelism()} cores`);
out(`default install: ${runtimeLine(shippedEnv)}`);
out(`fast path: HQUANT_LLAMA_DIR=${fastDir}: ${runtimeLine({ ...shippedEnv, HQUANT_LLAMA_DIR: fastDir })}`);
out(`load before: ${loadBefore}`);
out(`load after:  ${uptime()}\n`);
out("ratio = llama-imatrix's seconds / hquant's (≥ 1: hquant is faster); CPU = user + system seconds of the whole command;");
out(`throughput = chunks per second after the first ${startChunks} (the runs' difference, see the header); its ratio = hquant's / llama-imatrix's\n`);
out("| vocab | model | chunks | llama-imatrix s (CPU s) | chunks/s | hquant default s (CPU s) | ratio | CPU ratio | throughput ratio | hquant fast path s (CPU s) | ratio | CPU ratio | throughput ratio | same bytes: default / fast |");
out("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
for (const r of rows) {
  const l = r.best["llama-imatrix"];
  const rate = (t: Tool) => (r.nChunks - startChunks) / (r.best[t].wall - r.bestStart[t]);
  const cell = (t: Tool) =>
    `${r.best[t].wall.toFixed(2)} (${r.best[t].cpu.toFixed(2)}) | ${(l.wall / r.best[t].wall).toFixed(2)}× | ${(l.cpu / r.best[t].cpu).toFixed(2)}× | ${(rate(t) / rate("llama-imatrix")).toFixed(2)}×`;
  const yes = (b: boolean) => (b ? "yes" : "NO");
  out(
    `| ${r.vocab} | ${r.model} | ${r.nChunks} | ${l.wall.toFixed(2)} (${l.cpu.toFixed(2)}) | ${rate("llama-imatrix").toFixed(2)} | ${cell("hquant default")} | ${cell("hquant fast path")} | ` +
      `${yes(r.same["hquant default"])} / ${yes(r.same["hquant fast path"])} |`,
  );
}
