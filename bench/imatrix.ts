// hquant imatrix vs llama-imatrix (built from the llama.cpp source bundle, bench/llama-tools.ts) on
// the same model, text and settings, in alternating rounds: wall time of the whole command, and
// whether the two imatrix files are the same bytes.
//   npx tsx bench/imatrix.ts [--rounds N] [--chunks N] [--ctx N] [--threads N]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { llamaTool } from "./llama-tools.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MODEL = path.join(REPO, "models/tinyllama-16l-f16.gguf");
const FIXTURES = path.join(REPO, "test/fixtures");

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const rounds = Number(arg("--rounds", "2"));
const ctx = arg("--ctx", "256");
const threads = arg("--threads", "2");
const chunks = process.argv.includes("--chunks") ? ["--chunks", arg("--chunks", "")] : [];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-imatrix-"));
const llama = llamaTool("llama-imatrix");
// both tools record the text as typed: run them in the fixtures folder with the bare name
const runs = {
  hquant: (out: string) => [process.execPath, [path.join(REPO, "bin/hquant.js"), "imatrix", MODEL, "--text", "calib.txt", "-c", ctx, "-t", threads, ...chunks, "-o", out, "--quiet"]] as const,
  "llama-imatrix": (out: string) => [llama, ["-m", MODEL, "-f", "calib.txt", "-c", ctx, "-t", threads, ...chunks, "-o", out]] as const,
};
const times: Record<string, number[]> = { hquant: [], "llama-imatrix": [] };
for (let r = 0; r < rounds; r++) {
  for (const [name, make] of Object.entries(runs)) {
    const out = path.join(dir, `${name}-${r}.gguf`);
    const [cmd, args] = make(out);
    const t0 = process.hrtime.bigint();
    const p = spawnSync(cmd, args, { cwd: FIXTURES, encoding: "utf8" });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (p.status !== 0) throw new Error(`${name} failed: ${p.stderr}`);
    times[name].push(s);
    process.stderr.write(`round ${r + 1}: ${name} ${s.toFixed(2)} s\n`);
  }
}
const same = fs.readFileSync(path.join(dir, "hquant-0.gguf")).equals(fs.readFileSync(path.join(dir, "llama-imatrix-0.gguf")));
const best = (n: string) => Math.min(...times[n]);
console.log(`model ${path.basename(MODEL)}, text calib.txt, -c ${ctx}, -t ${threads}${chunks.length ? `, --chunks ${chunks[1]}` : ""}, best of ${rounds} alternating rounds, ${os.cpus().length} CPUs`);
console.log("| tool | wall s (best) | all rounds |");
console.log("|---|---:|---|");
for (const n of Object.keys(times)) console.log(`| ${n} | ${best(n).toFixed(2)} | ${times[n].map((t) => t.toFixed(2)).join(", ")} |`);
console.log(`speed ratio hquant / llama-imatrix: ${(best("llama-imatrix") / best("hquant")).toFixed(2)}× (≥ 1 is faster)`);
console.log(`same imatrix bytes: ${same ? "yes" : "NO"}`);
fs.rmSync(dir, { recursive: true, force: true });
