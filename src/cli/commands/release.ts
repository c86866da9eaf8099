// hquant release BASE.gguf --out DIR --types Q8_0,Q6_K,Q4_K_M,… [--presets …] [--schedules …]
// [--tune BUDGETS] [--imatrix F | --calib TEXT] [--eval-text TEXT] [--name NAME]: a publisher's set
// of files in one read pass, each verified in llama.cpp, evaluated, with its model card. Thin: parses
// options, draws the progress (one bar per file and one for the release), calls the library.
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { release, type ReleaseEvent } from "../../release/index.js";
import { defaultCacheDir } from "../../eval/run.js";
import { checkOutputFolder, DEFAULT_CTX, parseThreads, positiveInt, readText } from "../args.js";
import { parseSplitSize } from "../build-options.js";
import { formatDuration, renderProgress } from "../progress.js";
import { commandSignal, setInterruptNote } from "../signals.js";
import { shellLine } from "../../release/plan.js";

interface ReleaseCliOptions {
  out: string;
  types?: string;
  presets?: string;
  schedules?: string[];
  tune?: string;
  imatrix?: string;
  calib?: string;
  calibChunks?: string;
  tuneProxyRows?: string;
  tuneMaxEvals?: string;
  evalText?: string;
  chunks?: string;
  ctx: string;
  name?: string;
  threads?: string;
  splitMaxSize?: string;
  baseModel?: string;
  quantizedBy?: string;
  repo?: string;
  cacheDir?: string;
  quiet?: boolean;
}

const list = (s: string | undefined) => (s ?? "").split(",").map((x) => x.trim()).filter(Boolean);
const collect = (value: string, previous: string[] = []) => [...previous, ...list(value)];

/** Per-file state and the whole release's progress: build (shared pass), verify, evaluate = 3 steps a file. */
class ReleaseProgress {
  private files: { key: string; state: string; done: number; total: number }[] = [];
  private stage = "";
  private stageDone = 0;
  private stageTotal = 0;
  private readonly start = performance.now();
  private drawn = 0;
  private last = 0;
  private readonly tty: boolean;

  constructor(private readonly enabled: boolean, private readonly stream = process.stderr) {
    this.tty = enabled && stream.isTTY === true;
  }

  log(line: string): void {
    if (!this.enabled) return;
    this.clear();
    this.stream.write(`${line}\n`);
    this.draw(true);
  }

  private fraction(): number {
    if (this.files.length === 0) return 0;
    const steps = this.files.reduce((a, f) => a + (f.state === "skipped" ? 3 : f.state === "evaluated" ? 3 : f.state === "verified" ? 2 : f.state === "verify" ? 1 : f.total > 0 ? f.done / f.total : 0), 0);
    return steps / (3 * this.files.length);
  }

  event(e: ReleaseEvent): void {
    if (e.kind === "plan") {
      this.files = e.items.map((i) => ({ key: i.key, state: i.skip ? "skipped" : "queued", done: 0, total: 0 }));
      this.log(`release: ${e.items.length} files, ${e.items.filter((i) => i.skip).length} already done and verified`);
    } else if (e.kind === "stage") {
      this.stage = e.stage;
      this.stageDone = 0;
      this.stageTotal = 0;
      if (e.stage === "verify") {
        const f = this.files.find((x) => x.key === e.detail);
        if (f) f.state = "verify";
      }
      if (e.stage === "build") for (const f of this.files) if (f.state === "queued") f.state = "build";
      if (!this.tty && e.stage !== "verify") this.log(`${e.stage}${e.detail ? ` ${e.detail}` : ""}`);
    } else if (e.kind === "progress") {
      this.stageDone = e.done;
      this.stageTotal = e.total;
      if (e.stage === "build") for (const f of this.files) if (f.state === "build") [f.done, f.total] = [e.done, e.total];
      if (e.stage === "evaluate" && e.key) {
        const f = this.files.find((x) => x.key === e.key);
        if (f) [f.state, f.done, f.total] = ["evaluate", e.done, e.total];
      }
    } else if (e.kind === "file") {
      const f = this.files.find((x) => x.key === e.key);
      if (f) f.state = e.state;
      this.log(`${e.state} ${e.file}`);
    }
    this.draw(false);
  }

  private lines(): string[] {
    const width = Math.max(20, (this.stream.columns ?? 80) - 1);
    const seconds = (performance.now() - this.start) / 1000;
    const out: string[] = [];
    if (this.files.length === 0) {
      out.push(renderProgress({ label: this.stage, detail: "", done: this.stageDone, total: this.stageTotal, seconds, unit: "count", width }));
      return out;
    }
    for (const f of this.files) {
      const label = `${f.key.padEnd(14)} ${f.state.padEnd(9)}`;
      if (f.state === "build" || f.state === "evaluate") out.push(renderProgress({ label, detail: "", done: f.done, total: f.total, seconds, unit: f.state === "build" ? "bytes" : "count", width }));
      else out.push(label.slice(0, width));
    }
    const fr = this.fraction();
    const eta = fr > 0 ? (seconds * (1 - fr)) / fr : undefined;
    out.push(`release [${"#".repeat(Math.round(fr * 30)).padEnd(30, "-")}] ${(fr * 100).toFixed(0).padStart(3)}% ${formatDuration(seconds)} ETA ${eta === undefined ? "-:--" : formatDuration(eta)} (${this.stage})`.slice(0, width));
    return out;
  }

  private clear(): void {
    if (!this.tty || this.drawn === 0) return;
    this.stream.write(`\x1b[${this.drawn}F\x1b[J`);
    this.drawn = 0;
  }

  private draw(force: boolean): void {
    if (!this.tty) return;
    const now = performance.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    this.clear();
    const lines = this.lines();
    this.stream.write(lines.join("\n") + "\n");
    this.drawn = lines.length;
  }

  done(): void {
    this.clear();
  }
}

export function registerRelease(program: Command): void {
  program
    .command("release")
    .description("a set of quantized files in one read pass, each verified in llama.cpp, evaluated, with a model card")
    .argument("<base>", "the unquantized base model (F32/F16/BF16 GGUF)")
    .requiredOption("--out <dir>", "the release folder (files, imatrix, schedules, README.md, release.json)")
    .option("--types <list>", "llama.cpp file types (Q8_0,Q6_K,Q4_K_M,…)")
    .option("--presets <list>", "hquant presets (Q4_K_H,…)")
    .option("--schedules <files>", "JSON schedules (comma-separated or repeatable)", collect)
    .option("--tune <budgets>", "tuned files at these budgets (4.5,IQ4_XS,…; tune's proxy mode, needs --calib)")
    .option("--imatrix <file>", "importance matrix for every file (copied beside them)")
    .option("--calib <file>", "calibration text: the imatrix is made from it (without --imatrix) and tune measures on it")
    .option("--calib-chunks <n>", "calibration chunks for the imatrix and tune")
    .option("--tune-proxy-rows <n>", "tune --proxy-rows: rows sampled per tensor for the proxy's errors (default: every row)")
    .option("--tune-max-evals <n>", "tune --max-evals: measure at most this many points")
    .option("--eval-text <file>", "evaluation text: every file against the base (PPL, KLD) for the card")
    .option("--chunks <n>", "evaluation chunks (default: the whole text)")
    .option("-c, --ctx <n>", "context length per chunk (evaluation and imatrix)", DEFAULT_CTX)
    .option("--name <name>", "<Name> in the file names (default: the base file's name without -f16)")
    .option("-t, --threads <n>", "threads for quantizing and llama.cpp")
    .option("--split-max-size <size>", "split outputs larger than this (default 48G, below the Hub's 50 GB per file)")
    .option("--base-model <id>", "the base model's Hub id for the card's front matter (default: the name)")
    .option("--quantized-by <who>", "the card's quantized_by (default: hquant)")
    .option("--repo <id>", "the Hub repository the files go to, for the usage lines")
    .option("--cache-dir <dir>", "where base distributions and tune measurements are cached")
    .option("--quiet", "print nothing but errors")
    .action(async (base: string, opts: ReleaseCliOptions) => {
      const ctx = positiveInt(opts.ctx, "--ctx")!;
      const chunks = positiveInt(opts.chunks, "--chunks");
      const calibChunks = positiveInt(opts.calibChunks, "--calib-chunks");
      const tuneProxyRows = positiveInt(opts.tuneProxyRows, "--tune-proxy-rows");
      const tuneMaxEvals = positiveInt(opts.tuneMaxEvals, "--tune-max-evals");
      const threads = parseThreads(opts.threads) ?? Math.max(1, os.availableParallelism());
      const splitMaxSize = parseSplitSize(opts.splitMaxSize);
      checkOutputFolder(opts.out, "--out");
      const calib = opts.calib !== undefined ? { content: readText(opts.calib), name: opts.calib } : undefined;
      const evalText = opts.evalText !== undefined ? { content: readText(opts.evalText), name: opts.evalText } : undefined;
      const progress = new ReleaseProgress(!opts.quiet);
      // Ctrl-C keeps every finished file (complete and verified) and the manifest: the interrupted line says so
      const finished = new Set<string>();
      const note = () => `: ${finished.size === 0 ? "no file finished" : `${finished.size} finished file${finished.size === 1 ? "" : "s"} kept in ${opts.out}`}, re-run the same command to resume`;
      setInterruptNote(note());
      const result = await release({
        input: base,
        outDir: opts.out,
        name: opts.name,
        types: list(opts.types),
        presets: list(opts.presets),
        schedules: opts.schedules ?? [],
        tune: list(opts.tune),
        imatrix: opts.imatrix,
        calib,
        calibChunks,
        tuneProxyRows,
        tuneMaxEvals,
        evalText,
        chunks,
        ctx,
        threads,
        splitMaxSize,
        baseModel: opts.baseModel,
        quantizedBy: opts.quantizedBy,
        repo: opts.repo,
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        command: shellLine(["hquant", ...process.argv.slice(2)]),
        signal: commandSignal(),
        onEvent: (e) => {
          if (e.kind === "file" && e.state !== "evaluated") {
            finished.add(e.key);
            setInterruptNote(note());
          }
          progress.event(e);
        },
        onWarning: (m) => progress.log(`hquant: warning: ${m}`),
      }).finally(() => progress.done());
      if (!opts.quiet) {
        process.stderr.write(`release ${path.resolve(result.outDir)}: ${result.made.length} made, ${result.skipped.length} already done; wrote ${result.card.map((f) => path.basename(f)).join(", ")}\n`);
      }
    });
}
