// Task accuracy (bench --task), the prompt suite (bench --prompts) and the isolation of llama.cpp
// aborts. The task modes are compared line for line with llama-perplexity's output on the same task
// files (recorded in test/fixtures/tasks/, see its README); bad task files give one-line errors
// naming the line; a model that makes llama.cpp abort gives bench, imatrix, tune and scan a one-line error.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseHellaswag, parseMultipleChoice, parsePromptSuite, parseWinogrande, serializeMultipleChoice } from "../src/eval/tasks/index.js";
import { evaluateBase, scorePromptSuite, scoreTaskFile } from "../src/eval/isolated.js";
import { cachePath, sha256File, sha256Text } from "../src/eval/base-cache.js";
import { hiddenStates } from "../src/scan/laco.js";
import { UserError } from "../src/errors.js";
import { Mt19937 } from "../src/eval/tasks/random.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { build } from "../src/index.js";

const ROOT = path.resolve(__dirname, "..");
const BASE = "models/tinyllama-16l-f16.gguf";
const FIX = "test/fixtures/tasks";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tasks-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The per-task lines of a llama-perplexity log ("N\t…"). */
function recordedLines(log: string): string[] {
  return fs.readFileSync(path.join(FIX, log), "utf8").split("\n").filter((l) => /^\d+\t/.test(l));
}

describe("std::mt19937", () => {
  it("gives the C++ standard's 10000th value for seed 5489", () => {
    const rng = new Mt19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = rng.next();
    expect(v).toBe(4123659995);
  });
});

describe("task modes against llama-perplexity", () => {
  it("hellaswag --tasks 6: the first 6 of llama-perplexity's lines (the same draws, one task per decode)", { timeout: 600_000 }, async () => {
    const score = await scoreTaskFile(BASE, { kind: "hellaswag", file: path.join(FIX, "hellaswag.txt"), tasks: 6, threads: 2 });
    expect(score.lines).toEqual(recordedLines("hellaswag.f16.log").slice(0, 6));
    expect(score.tasks).toBe(6);
  });
  // the Q4_K_M the recorded logs score: hquant's build without hquant.* keys, byte-identical to
  // llama-quantize's (build-identity tests), made once for the tests below
  let q4km: Promise<string> | undefined;
  const q4kmModel = () =>
    (q4km ??= (async () => {
      const out = path.join(tmp, "tiny-q4km.gguf");
      await build({ input: BASE, output: out, hquant: false, schedule: { ftype: "Q4_K_M" }, threads: 2 });
      return out;
    })());
  it("winogrande on the Q4_K_M, the first 10 tasks: llama-perplexity's first 10 lines (both choices' scores)", { timeout: 600_000 }, async () => {
    // the task file cut after 10 tasks (llama-perplexity does not read the last line: 11 lines)
    const cut = path.join(tmp, "winogrande-10.csv");
    fs.writeFileSync(cut, fs.readFileSync(path.join(FIX, "winogrande.csv"), "utf8").split("\n").slice(0, 11).join("\n") + "\n");
    const score = await scoreTaskFile(await q4kmModel(), { kind: "winogrande", file: cut, threads: 2 });
    const ref = recordedLines("winogrande.q4km.log").slice(0, 10);
    expect(score.lines).toEqual(ref);
    // the Q4_K_M's scores, not the F16's
    expect(ref).not.toEqual(recordedLines("winogrande.f16.log").slice(0, 10));
  });
  // the whole files: minutes on a loaded 2-core machine, so opt-in
  const full = process.env.HQUANT_TASKS_FULL === "1";
  const cases = [
    ["hellaswag", "hellaswag.txt"],
    ["winogrande", "winogrande.csv"],
    ["multiple-choice", "multiple-choice.bin"],
  ] as const;
  for (const [kind, file] of cases) {
    for (const model of ["f16", "q4km"] as const) {
      const log = `${kind}.${model}.log`;
      it.runIf(full)(`${kind} on the ${model === "f16" ? "F16" : "Q4_K_M"}: every per-task line and the final accuracy (HQUANT_TASKS_FULL=1)`, { timeout: 600_000 }, async () => {
        const score = await scoreTaskFile(model === "f16" ? BASE : await q4kmModel(), { kind, file: path.join(FIX, file), threads: 2 });
        const ref = recordedLines(log);
        expect(score.lines).toEqual(ref);
        const text = fs.readFileSync(path.join(FIX, log), "utf8");
        if (kind === "hellaswag") {
          // the last line: "32\t25.00000000%\t[13.2524%, 42.1066%]"
          const [, acc, lo, hi] = /^\d+\t([\d.]+)%\t\[([\d.]+)%, ([\d.]+)%\]$/.exec(ref[ref.length - 1])!;
          expect(score.accuracy.toFixed(8)).toBe(acc);
          expect([score.interval![0].toFixed(4), score.interval![1].toFixed(4)]).toEqual([lo, hi]);
        } else {
          const m = /(?:Final Winogrande score\(\d+ tasks\)|Final result): ([\d.]+) \+\/- ([\d.]+)/.exec(text)!;
          expect([score.accuracy.toFixed(4), score.error!.toFixed(4)]).toEqual([m[1], m[2]]);
        }
      });
    }
  }
});

describe("task files with bad formats", () => {
  it("hellaswag: one line naming the line", () => {
    const good = fs.readFileSync(path.join(FIX, "hellaswag.txt"), "utf8").split("\n").slice(0, 12);
    expect(() => parseHellaswag(good.slice(0, 10).join("\n") + "\n", "h.txt")).toThrow("h.txt: line 7: an incomplete task (10 lines, not a multiple of 6)");
    const bad = [...good];
    bad[7] = "four";
    expect(() => parseHellaswag(bad.join("\n") + "\n", "h.txt")).toThrow('h.txt: line 8: the gold ending must be 0, 1, 2 or 3 (got "four")');
    expect(() => parseHellaswag("", "h.txt")).toThrow("h.txt: no tasks (a HellaSwag task is 6 lines)");
  });
  it("winogrande: one line naming the line; a header is skipped; the last line is not read, as in llama-perplexity", () => {
    const body = "0,The ship left _ behind.,the port,the whale,1\n1,A _ sank.,boat,stone,1\n2,last,a,b,1\n";
    expect(parseWinogrande(`index,sentence,option1,option2,answer\n${body}`, "w.csv").map((t) => t.line)).toEqual([2, 3]);
    expect(() => parseWinogrande(`${body.replace("A _ sank.", "A sank.")}`, "w.csv")).toThrow("w.csv: line 2: the sentence has no _ (the blank the choices fill)");
    expect(() => parseWinogrande(`${body.replace(",boat,stone,1", ",boat,stone,3")}`, "w.csv")).toThrow('w.csv: line 2: the answer must be 1 or 2 (got "3")');
    expect(() => parseWinogrande(`${body.replace("1,A _ sank.,boat,stone,1", "1;A _ sank.")}`, "w.csv")).toThrow("w.csv: line 2: not 5 comma-separated fields (index,sentence,choice 1,choice 2,answer)");
  });
  it("multiple-choice: one line naming the task", () => {
    const file = serializeMultipleChoice([
      { question: "Q1?", mc1: { answers: ["a", "b"], labels: [1, 0] } },
      { question: "Q2?", mc1: { answers: ["c", "d"], labels: [0, 1] } },
    ]);
    expect(parseMultipleChoice(file, "m.bin").map((t) => t.mc1.answers)).toEqual([["a", "b"], ["c", "d"]]);
    expect(() => parseMultipleChoice(file.subarray(0, file.length - 3), "m.bin")).toThrow("m.bin: task 2 of 2 (byte 45): truncated or malformed");
    expect(() => parseMultipleChoice(Buffer.alloc(4), "m.bin")).toThrow("m.bin: no tasks (not a multiple-choice task file)");
    const empty = serializeMultipleChoice([{ question: "Q?", mc1: { answers: ["a", ""], labels: [1, 0] } }]);
    expect(() => parseMultipleChoice(empty, "m.bin")).toThrow("m.bin: task 1: an empty answer");
  });
  it("prompt suite: one line naming the entry", () => {
    expect(() => parsePromptSuite("[", "p.json")).toThrow(/^p\.json: not JSON \(/);
    expect(() => parsePromptSuite('[{"prompt": "a", "expect": []}]', "p.json")).toThrow('p.json: entry 1: "expect" must be a non-empty list of strings');
    expect(() => parsePromptSuite('[{"prompt": "a", "expect": ["b"], "max": 3}]', "p.json")).toThrow('p.json: entry 1: unknown field "max" (prompt, expect, reject, maxTokens)');
  });
});

describe("prompt suite", () => {
  it("passes and fails where the greedy continuation says", { timeout: 600_000 }, async () => {
    // continuations observed with llama.cpp's greedy sampler on the bundled model
    const cases = parsePromptSuite(
      JSON.stringify([
        { prompt: "Call me", expect: ["palpable"], maxTokens: 16 },
        { prompt: "The whale", expect: ["the other"], reject: ["harpoon"], maxTokens: 16 },
        { prompt: "Stubb and Flask", expect: ["Ahab"], maxTokens: 16 },
        { prompt: "CHAPTER 1. Loomings.", expect: ["United States"], reject: ["United"], maxTokens: 16 },
      ]),
      "suite.json",
    );
    // one thread: one-token decodes at 2 threads spend minutes in ggml's spinning barrier on a busy
    // machine (bench/prompts.ts), and the continuations are the same at any thread count
    const r = await scorePromptSuite(BASE, { cases, threads: 1 });
    expect(r.results.map((x) => x.output)).toEqual([
      " to say, and I'm not a palpable, but I",
      ", and the other, and the other, the same, the same, is",
      ", and then, and then, he was a little thing, and he was",
      " The United States and the United States have been in the past year. The United",
    ]);
    expect(r.results.map((x) => x.pass)).toEqual([true, true, false, false]);
    expect(r.results[2].missing).toEqual(["Ahab"]);
    expect(r.results[3].present).toEqual(["United"]);
    expect([r.passed, r.total]).toEqual([2, 4]);
  });
});

/** `hquant ARGS…` with its own TMPDIR, so that what it leaves there can be checked. */
function hquantIn(tmpdir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin/hquant.js"), ...args], { cwd: ROOT, env: { ...process.env, TMPDIR: tmpdir } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("a llama.cpp abort is a one-line error", () => {
  // head size 15: the loader accepts it (n_rot = head size, as it requires for llama), and
  // ggml's CPU rope asserts an even rotation size at the first decode
  const aborting = () => makeModel({ ...SMALL_LLAMA, nEmbd: 60, nHead: 4, nHeadKv: 2, dir: path.join(tmp, "models") });
  const ASSERT = "GGML_ASSERT(n_dims % 2 == 0) failed (killed by SIGABRT)";
  const commands: [string, (model: string, dir: string) => string[]][] = [
    ["bench", (m, d) => ["bench", m, "--text", "test/fixtures/eval-test.txt", "--ctx", "64", "--chunks", "1", "--files", m, "--threads", "2", "--cache-dir", path.join(d, "cache"), "--quiet"]],
    ["bench --task", (m) => ["bench", m, "--task", "hellaswag", path.join(FIX, "hellaswag.txt"), "--tasks", "2", "--threads", "2", "--quiet"]],
    ["scan", (m, d) => ["scan", m, "--text", "test/fixtures/eval-test.txt", "--op", "delete", "--ctx", "64", "--chunks", "1", "--threads", "2", "--cache-dir", path.join(d, "cache"), "--quiet"]],
    // the output named inside the private temp folder, which must be empty afterwards: no imatrix, no temp file
    ["imatrix", (m, d) => ["imatrix", m, "-f", "test/fixtures/eval-test.txt", "--ctx", "64", "--chunks", "2", "-o", path.join(d, "tmp", "imatrix.gguf"), "--threads", "2", "--quiet"]],
    ["tune", (m, d) => ["tune", m, "--budget", "Q8_0", "--text", "test/fixtures/eval-test.txt", "--ctx", "64", "--chunks", "1", "--out", path.join(d, "out"), "--threads", "2", "--cache-dir", path.join(d, "cache"), "--quiet"]],
  ];
  for (const [name, args] of commands) {
    it(`${name}: exit 1, the file and the GGML_ASSERT line, no core dump, no temp file`, { timeout: 600_000 }, async () => {
      const model = await aborting();
      const dir = fs.mkdtempSync(path.join(tmp, "run-"));
      const tmpdir = path.join(dir, "tmp");
      fs.mkdirSync(tmpdir);
      const r = await hquantIn(tmpdir, args(model, dir));
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^hquant: .*llama-2l-e60-h4-2-f128-v96-f16-untied-s1\.gguf: llama\.cpp aborted: ggml\/src\/ggml-cpu\/ops\.cpp:\d+: /);
      expect(lines[0].endsWith(ASSERT)).toBe(true);
      expect(r.stderr + r.stdout).not.toMatch(/core dumped/i);
      // nothing left behind: the temp folder, the cache (its <name>.<pid>.tmp files) and --out
      const left = (d: string): string[] => (fs.existsSync(d) ? fs.readdirSync(d, { recursive: true }).map(String) : []);
      expect(left(tmpdir)).toEqual([]);
      expect(left(path.join(dir, "cache")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
      expect(left(path.join(dir, "out"))).toEqual([]);
    });
  }

  it("scan --laco: the abort in LaCo's hidden states (the base's distributions served from the cache) is the same one line", { timeout: 600_000 }, async () => {
    const model = await aborting();
    const dir = fs.mkdtempSync(path.join(tmp, "run-"));
    const tmpdir = path.join(dir, "tmp");
    fs.mkdirSync(tmpdir);
    const cacheDir = path.join(dir, "cache");
    // the base evaluation decodes, and would abort before LaCo: its cache is taken from the same
    // factory model with an even head size (same vocabulary, so the same tokens), stored under the
    // aborting model's key. scan then loads and tokenizes only, and the first decode is LaCo's.
    const text = fs.readFileSync("test/fixtures/eval-test.txt", "utf8");
    const good = await makeModel({ ...SMALL_LLAMA, dir: path.join(tmp, "models") });
    const base = await evaluateBase(good, text, "eval-test.txt", { ctx: 64, chunks: 1, threads: 2, cacheDir });
    const key = cachePath(cacheDir, { modelSha256: await sha256File(model), textSha256: sha256Text(text), ctx: 64, nChunk: base.plan.nChunk });
    for (const ext of [".kld", ".json"]) fs.copyFileSync(base.cacheFile + ext, key + ext);
    const r = await hquantIn(tmpdir, ["scan", model, "--text", "test/fixtures/eval-test.txt", "--laco", "--merge-count", "2", "--laco-lowest", "0", "--ctx", "64", "--chunks", "1", "--threads", "2", "--cache-dir", cacheDir]);
    expect(r.code).toBe(1);
    // the progress lines, then the one error line (after the base evaluation passed)
    const lines = r.stderr.trim().split("\n");
    expect(r.stderr.match(/^hquant: /gm)).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^hquant: .*llama-2l-e60-h4-2-f128-v96-f16-untied-s1\.gguf: llama\.cpp aborted: ggml\/src\/ggml-cpu\/ops\.cpp:\d+: /);
    expect(lines.at(-1)!.endsWith(ASSERT)).toBe(true);
    expect(r.stderr + r.stdout).not.toMatch(/core dumped/i);
    expect(fs.readdirSync(tmpdir)).toEqual([]);
    expect(fs.readdirSync(cacheDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("LaCo's hidden states: an abort rejects with the one line, and the next call runs in a fresh evaluation process", { timeout: 600_000 }, async () => {
    const model = await aborting();
    const good = await makeModel({ ...SMALL_LLAMA, dir: path.join(tmp, "models") });
    const plan = { ctx: 64, nChunk: 1, first: 32, scoredPerChunk: 31 };
    const tokens = Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 96);
    const err = await hiddenStates(model, { tokens, plan, threads: 2 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const message = (err as Error).message;
    expect(message.startsWith(`${model}: llama.cpp aborted: ggml/src/ggml-cpu/ops.cpp:`)).toBe(true);
    expect(message.endsWith(ASSERT)).toBe(true);
    expect(message).not.toContain("\n");
    const r = await hiddenStates(good, { tokens, plan, threads: 2 });
    expect(r.nEmbd).toBe(64);
    expect(r.states.map((s) => s.length)).toEqual([64 * 64]);
  });

  it("build --verify: exit 1 naming the output, which is removed", { timeout: 600_000 }, async () => {
    const model = await aborting();
    const dir = fs.mkdtempSync(path.join(tmp, "run-"));
    const out = path.join(dir, "out.gguf");
    const r = await hquantIn(dir, ["build", model, out, "Q8_0", "--verify", "--threads", "2"]);
    expect(r.code).toBe(1);
    // build's summary, then the one error line
    const last = r.stderr.trim().split("\n").at(-1)!;
    expect(last.startsWith(`hquant: ${out}: llama.cpp aborted: ggml/src/ggml-cpu/ops.cpp:`)).toBe(true);
    expect(last.endsWith(ASSERT)).toBe(true);
    expect(r.stderr.match(/^hquant: /gm)).toHaveLength(1);
    expect(r.stderr + r.stdout).not.toMatch(/core dumped/i);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
