// bench/release: `hquant release` of N types (one read pass, every file verified in llama.cpp)
// against N separate `hquant build`s, N separate `hquant build --verify`s (the same work as the
// release, file by file) and N separate llama-quantize runs, in the same run, on the bundled model
// and on a synthetic ≈1.1 GB F16 model (bench/build.ts's shape, generated into the temp folder).
// Whole commands are timed (process start-up included). Rounds are interleaved, the order of the
// four sides rotating from round to round so load from other jobs falls on all alike; each side's
// figure is its median. The release's files are checked byte for byte against the separate builds.
//
//   npm run build && npx tsx bench/release.ts                (bundled: 3 rounds, synthetic: 1)
//   npx tsx bench/release.ts --quick                         (bundled model only)
//   npx tsx bench/release.ts --types Q8_0,Q6_K,Q4_K_M --rounds 5 --large-rounds 2 -t 2
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeModel, type FactoryOptions } from "../test/factory.js";
import { llamaTool } from "./llama-tools.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BENCH_DIR = path.join(os.tmpdir(), "hquant-bench-release");

/** ≈ 1.1 GB of F16, as bench/build.ts makes it. */
const LARGE: FactoryOptions = { arch: "llama", nLayer: 16, nEmbd: 1536, nHead: 12, nHeadKv: 4, nFf: 4352, nVocab: 40960, dtype: "f16", tied: false, seed: 7 };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1]!;
}
function intArg(name: string, fallback: number): number {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: not a positive integer`);
  return v;
}

interface Time {
  wall: number;
  /** user + sys of the command and its threads (/usr/bin/time -v): steadier than wall on a loaded machine */
  cpu: number;
}

/** Wall and CPU seconds of a command (it must succeed). */
function timed(cmd: string[]): Time {
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-v", ...cmd], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}):\n${r.stderr}`);
  const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr)?.[1] ?? NaN);
  return { wall, cpu: field("User time \\(seconds\\)") + field("System time \\(seconds\\)") };
}
const add = (a: Time, b: Time): Time => ({ wall: a.wall + b.wall, cpu: a.cpu + b.cpu });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * One read pass over a file as a build reads its input (512 KiB positioned reads into one reused
 * buffer; from the page cache after the first): what each separate build spends reading, the share
 * a one-pass release saves N − 1 times. Median of 3, wall and CPU of this process.
 */
function readPass(file: string): Time {
  const buf = Buffer.allocUnsafe(512 * 1024);
  const one = (): Time => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const fd = fs.openSync(file, "r");
    for (let pos = 0; ; pos += buf.length) if (fs.readSync(fd, buf, 0, buf.length, pos) === 0) break;
    fs.closeSync(fd);
    const c = process.cpuUsage(c0);
    return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
  };
  const runs = [one(), one(), one()];
  return { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)) };
}


type Side = "release" | "builds" | "builds --verify" | "llama-quantize";
const SIDES: readonly Side[] = ["release", "builds", "builds --verify", "llama-quantize"];

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const types = arg("--types", "Q8_0,Q6_K,Q4_K_M,Q3_K_M,Q2_K").split(",");
  const threads = intArg("-t", 2);
  const rounds = intArg("--rounds", 3);
  const largeRounds = intArg("--large-rounds", 1);
  if (!fs.existsSync(path.join(ROOT, "dist/cli/main.js"))) throw new Error("run npm run build first");
  const quantize = llamaTool("llama-quantize");
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  const models = [{ label: "tinyllama-16l (bundled)", file: path.join(ROOT, "models/tinyllama-16l-f16.gguf"), rounds }];
  if (!quick) {
    process.stderr.write(`generating the synthetic model in ${BENCH_DIR} …\n`);
    models.push({ label: "synthetic llama 16 layers", file: await makeModel({ ...LARGE, dir: BENCH_DIR }), rounds: largeRounds });
  }
  const node = process.execPath;
  const hq = (...a: string[]) => [node, "bin/hquant.js", ...a];
  const lines: string[] = [];
  for (const m of models) {
    const times: Record<Side, Time[]> = { release: [], builds: [], "builds --verify": [], "llama-quantize": [] };
    const relDir = path.join(BENCH_DIR, "release");
    const sepDir = path.join(BENCH_DIR, "separate");
    let identical = true;
    // one untimed release first: the first command after a while pays for cold caches (Node's
    // compile cache, the libraries, the input's pages), which fell on round 1's release alone
    fs.rmSync(relDir, { recursive: true, force: true });
    timed(hq("release", m.file, "--out", relDir, "--name", "m", "--types", types.join(","), "-t", String(threads), "--quiet"));
    for (let round = 0; round < m.rounds; round++) {
      const order = SIDES.map((_, i) => SIDES[(i + round) % SIDES.length]!);
      for (const side of order) {
        fs.rmSync(relDir, { recursive: true, force: true });
        fs.rmSync(sepDir, { recursive: true, force: true });
        fs.mkdirSync(sepDir, { recursive: true });
        const out = (t: string) => path.join(sepDir, `m-${t}.gguf`);
        // the previous side's 1–2 GB of output is flushed first: its writeback would otherwise fall
        // on this side's clock (the kernel writes dirty pages back ~30 s later, mid-run)
        spawnSync("sync");
        let t: Time = { wall: 0, cpu: 0 };
        if (side === "release") t = timed(hq("release", m.file, "--out", relDir, "--name", "m", "--types", types.join(","), "-t", String(threads), "--quiet"));
        else if (side === "llama-quantize") for (const ty of types) t = add(t, timed([quantize, m.file, out(ty), ty, String(threads)]));
        else for (const ty of types) t = add(t, timed(hq("build", m.file, out(ty), ty, "-t", String(threads), "--quiet", ...(side === "builds --verify" ? ["--verify"] : []))));
        times[side].push(t);
        if (side === "builds" && round === 0) {
          // the release's files against the separate builds, once
          timed(hq("release", m.file, "--out", relDir, "--name", "m", "--types", types.join(","), "-t", String(threads), "--quiet"));
          for (const ty of types) identical &&= Buffer.compare(fs.readFileSync(out(ty)), fs.readFileSync(path.join(relDir, `m-${ty}.gguf`))) === 0;
        }
        process.stderr.write(`${m.label} round ${round + 1}: ${side} ${t.wall.toFixed(2)} s (CPU ${t.cpu.toFixed(2)} s)\n`);
      }
    }
    const inputMB = fs.statSync(m.file).size / 1e6;
    const read = readPass(m.file);
    for (const what of ["wall", "cpu"] as const) {
      const med = Object.fromEntries(SIDES.map((s) => [s, median(times[s].map((t) => t[what]))])) as Record<Side, number>;
      // the goal: the separate builds without the N − 1 input reads the release does not repeat
      const goal = med.builds / (med.builds - (types.length - 1) * read[what]);
      const met = (ratio: number) => `${ratio.toFixed(2)}× ${ratio >= goal ? "(met)" : "(NOT met)"}`;
      lines.push(
        `| ${m.label} | ${inputMB.toFixed(0)} | ${types.length} | ${m.rounds} | ${what === "wall" ? "wall" : "CPU"} | ${med.release.toFixed(2)} | ${med.builds.toFixed(2)} | ${med["builds --verify"].toFixed(2)} | ${med["llama-quantize"].toFixed(2)} | ${read[what].toFixed(2)} | ${goal.toFixed(2)}× | ${met(med.builds / med.release)} | ${met(med["builds --verify"] / med.release)} | ${(med["llama-quantize"] / med.release).toFixed(2)}× | ${identical ? "yes" : "NO"} |`,
      );
    }
  }
  fs.rmSync(BENCH_DIR, { recursive: true, force: true });
  const out = [
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} CPUs; node ${process.version}; -t ${threads}; types ${types.join(",")}; load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`,
    "medians of whole commands (seconds: wall, and CPU = user + sys); release = one read pass + every file verified in llama.cpp (no evaluation)",
    "read pass = one pass of 512 KiB reads over the input (page cache); goal = builds / (builds − (N − 1) × read pass): the separate builds' ratio once the reads the release does not repeat are taken out",
    "",
    "| model | input MB | files | rounds | time | release s | N × hquant build s | N × hquant build --verify s | N × llama-quantize s | read pass s | goal | builds / release | builds --verify / release | llama-quantize / release | release bytes = builds |",
    "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ...lines,
  ];
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
