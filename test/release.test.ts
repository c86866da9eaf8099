// hquant release on the bundled model: four types, one preset and one tuned budget (proxy mode) in
// one read pass. The run is interrupted (aborted, as Ctrl-C does) right after the second file is
// verified, then re-run with the CLI: only the missing files are made. Every file is then compared
// byte for byte with `hquant build` run alone with the command the card prints, the table's figures
// with `hquant bench --files` on the same files, and the card's front matter is read back as YAML.
// Separately: a file llama.cpp refuses (per-layer array one entry short, written with the writer)
// fails verification with one line naming it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { release, verifyOutput, type ReleaseEvent } from "../src/release/index.js";
import { readManifest, type Manifest } from "../src/release/resume.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { hquantAsync } from "./cli-util.js";

const ROOT = path.resolve(__dirname, "..");
const MODEL = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const IMATRIX = path.join(ROOT, "test/fixtures/imatrix/imatrix.gguf");
const CALIB = path.join(ROOT, "test/fixtures/calib.txt");
const EVAL = path.join(ROOT, "test/fixtures/eval-test.txt");
const TYPES = ["Q8_0", "Q6_K", "Q4_K_M", "Q2_K"];
// the tuned budget, kept cheap (≈7 s of CPU instead of ≈40 s): one calibration chunk, 32 rows per
// tensor sampled for the proxy's errors, 2 measurements
const TUNE = { tune: ["4.5"], calibChunks: 1, tuneProxyRows: 32, tuneMaxEvals: 2 };
const KEYS = [...TYPES, "Q4_K_H", "tune-4.5"];
const TUNE_ARGS = ["--tune", "4.5", "--calib", CALIB, "--calib-chunks", "1", "--tune-proxy-rows", "32", "--tune-max-evals", "2"];
const EVAL_ARGS = ["--chunks", "1", "-c", "256", "-t", "2"];

let tmp: string;
let out: string;
let cache: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-release-"));
  out = path.join(tmp, "rel");
  cache = path.join(tmp, "cache");
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ggufs = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith(".gguf") && f !== "imatrix.gguf").sort();

describe("hquant release", () => {
  let first: Manifest;
  const inodes = new Map<string, [number, number]>();

  it("an interrupted release keeps the verified files and nothing partial", async () => {
    const controller = new AbortController();
    const verified: string[] = [];
    const run = release({
      input: MODEL,
      outDir: out,
      name: "tiny",
      types: TYPES,
      presets: ["Q4_K_H"],
      imatrix: IMATRIX,
      ...TUNE,
      calib: { content: fs.readFileSync(CALIB, "utf8"), name: CALIB },
      evalText: { content: fs.readFileSync(EVAL, "utf8"), name: "eval-test.txt" },
      chunks: 1,
      ctx: 256,
      threads: 2,
      cacheDir: cache,
      signal: controller.signal,
      onEvent: (e: ReleaseEvent) => {
        if (e.kind === "file" && e.state === "verified") {
          verified.push(e.file);
          if (verified.length === 2) controller.abort(new Error("interrupted"));
        }
      },
    });
    await expect(run).rejects.toThrow("interrupted");
    expect(ggufs(out)).toEqual([...verified].sort());
    expect(verified).toEqual(["tiny-Q8_0-imat.gguf", "tiny-Q6_K-imat.gguf"]);
    // no staging folder, no temp file
    expect(fs.readdirSync(out).filter((f) => f.startsWith("."))).toEqual([]);
    first = readManifest(out)!;
    expect(Object.keys(first.files)).toEqual(["Q8_0", "Q6_K"]);
    for (const f of verified) {
      const st = fs.statSync(path.join(out, f));
      inodes.set(f, [st.ino, st.mtimeMs]);
    }
  }, 900_000);

  it("re-running makes only the missing files", async () => {
    const r = await hquantAsync("release", MODEL, "--out", out, "--name", "tiny", "--types", TYPES.join(","), "--presets", "Q4_K_H", ...TUNE_ARGS, "--imatrix", IMATRIX, "--eval-text", EVAL, ...EVAL_ARGS, "--cache-dir", cache);
    expect(r.stderr).toContain(`${KEYS.length - 2} made, 2 already done`);
    expect(r.code).toBe(0);
    for (const [f, [ino, mtime]] of inodes) {
      const st = fs.statSync(path.join(out, f));
      expect([st.ino, st.mtimeMs]).toEqual([ino, mtime]);
    }
    const m = readManifest(out)!;
    expect(Object.keys(m.files).sort()).toEqual([...KEYS].sort());
    expect(ggufs(out)).toEqual(KEYS.map((k) => `tiny-${k}-imat.gguf`).sort());
    for (const k of KEYS) {
      expect(m.files[k]!.verified.tensors).toBe(147);
      expect(m.files[k]!.verified.tokens).toBeGreaterThan(10);
    }
  }, 900_000);

  it("every file is byte for byte what `hquant build` writes alone with the card's command", async () => {
    const m = readManifest(out)!;
    const card = fs.readFileSync(path.join(out, "README.md"), "utf8");
    for (const k of KEYS) {
      const f = m.files[k]!;
      expect(card).toContain(["hquant", ...f.build].join(" "));
      const alone = path.join(tmp, `alone-${k}.gguf`);
      const args = [...f.build];
      args[2] = alone;
      const r = await hquantAsync(...args, "--quiet");
      expect(r.stderr).toBe("");
      expect(Buffer.compare(fs.readFileSync(alone), fs.readFileSync(path.join(out, f.files[0]!.name)))).toBe(0);
      fs.rmSync(alone);
    }
  }, 900_000);

  it("the card's table has `hquant bench`'s figures, and its front matter is YAML with the Hub's keys", async () => {
    const m = readManifest(out)!;
    const files = KEYS.map((k) => path.join(out, m.files[k]!.files[0]!.name));
    const r = await hquantAsync("bench", MODEL, "--text", EVAL, ...EVAL_ARGS, "--files", ...files, "--cache-dir", cache, "--json", "--quiet");
    expect(r.code).toBe(0);
    const bench = JSON.parse(r.stdout) as { base: { ppl: number }; rows: { file: string; ppl: number; kld: number; kld99: number; topTokenPct: number; bpw: number; bytes: number }[] };
    expect(m.base!.ppl).toBe(bench.base.ppl);
    const card = fs.readFileSync(path.join(out, "README.md"), "utf8");
    for (const k of KEYS) {
      const row = m.files[k]!.eval!.row;
      const b = bench.rows.find((x) => path.basename(x.file) === m.files[k]!.files[0]!.name)!;
      expect([row.ppl, row.kld, row.kld99, row.topTokenPct, row.bpw, row.bytes]).toEqual([b.ppl, b.kld, b.kld99, b.topTokenPct, b.bpw, b.bytes]);
      const line = card.split("\n").find((l) => l.startsWith(`| ${m.files[k]!.files[0]!.name} |`))!;
      const small = (v: number) => (v === 0 ? "0" : v < 0.001 ? v.toExponential(2) : v.toFixed(5));
      expect(line).toContain(`| ${(b.bytes / 1048576).toFixed(2)} | ${b.bpw.toFixed(2)} | ${b.ppl.toFixed(4)} | ${small(b.kld)} | ${small(b.kld99)} | ${b.topTokenPct.toFixed(2)} |`);
    }
    const front = /^---\n([\s\S]*?)\n---\n/.exec(card)![1]!;
    const yaml = YAML.parse(front) as Record<string, unknown>;
    expect(yaml).toEqual({ base_model: "tiny", base_model_relation: "quantized", quantized_by: "hquant", tags: ["gguf", "llama.cpp", "hquant"] });
    expect(card).toContain("![KL-divergence against size](kld-vs-size.svg)");
    expect(fs.readFileSync(path.join(out, "kld-vs-size.svg"), "utf8")).toMatch(/^<svg/);
    expect(card).toContain("FROM ./tiny-Q4_K_M-imat.gguf");
    expect(card).toContain("--hf-file tiny-Q4_K_M-imat.gguf");
    expect(fs.existsSync(path.join(out, "imatrix.gguf"))).toBe(true);
    expect(fs.existsSync(path.join(out, "schedules/Q4_K_H.json"))).toBe(true);
    expect(fs.existsSync(path.join(out, m.files["tune-4.5"]!.schedule!))).toBe(true);
    expect(card).toContain("--proxy-rows 32 --max-evals 2");
  }, 900_000);
});

describe("verification", () => {
  it("a file llama.cpp refuses (a per-layer array one entry short) fails with one line naming it", async () => {
    const model = await openModel(MODEL);
    const bad = path.join(tmp, "bad-arrays.gguf");
    const heads = model.kv.find((e) => e.key === "llama.attention.head_count")!;
    // what a surgery that forgot one layer's entry would leave: 15 per-layer head counts for 16 layers
    const kv: GGUFKV[] = model.kv.map((e) => (e === heads ? { key: e.key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.UINT32, value: new Array(15).fill(e.value) } : e));
    const w = await GGUFFileWriter.create(bad, kv, model.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type })));
    const reader = new TensorReader(model);
    for (const t of model.tensors) await w.write(await reader.read(t, 0, t.bytes));
    await reader.close();
    await w.finish();
    let message = "";
    await verifyOutput(bad).catch((e: Error) => (message = e.message));
    // llama.cpp logs the array's length before its last line; the runtime keeps the last one
    expect(message).toBe(`${bad}: verification failed: llama.cpp cannot load this model (llama_model_load_from_file_impl: failed to load model)`);
    // the same file checked against the plan of the model it copies: the header check names the array first
    const { plan } = await import("../src/index.js").then((m) => m.plan({ input: MODEL, schedule: { ftype: "F16" } }));
    await expect(verifyOutput(bad, { plan })).rejects.toThrow(`${bad}: verification failed: llama.attention.head_count has 15 entries for 16 layers`);
  }, 120_000);
});

describe("hquant build --verify", () => {
  it("loads the output in llama.cpp and says so", async () => {
    const outFile = path.join(tmp, "verify-Q4_0.gguf");
    const r = await hquantAsync("build", MODEL, outFile, "Q4_0", "--verify");
    expect(r.code).toBe(0);
    // the default prompt is 32 tokens on this model; verification decodes the first 16 (VERIFY_MAX_TOKENS)
    expect(r.stderr).toContain(`verified ${outFile}: 147 tensors as planned, loaded in llama.cpp, 16 prompt tokens decoded, every logit finite`);
  }, 120_000);
});

describe("hquant release, Ctrl-C", () => {
  it("says how many finished files it kept, and they are the folder's files", async () => {
    const dir = path.join(tmp, "sigint");
    const child = spawn(process.execPath, [path.join(ROOT, "bin/hquant.js"), "release", MODEL, "--out", dir, "--name", "tiny", "--types", "Q8_0,Q6_K,Q5_0,Q4_1,Q4_0", "-t", "2"], { cwd: ROOT });
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // interrupted once the first file is verified (the next may finish before the signal is seen;
    // five files leave the signal seconds to arrive before the last)
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (/^verified /m.test(stderr) && child.exitCode === null && !child.killed) child.kill("SIGINT");
    });
    expect(await exited).toBe(130);
    const last = stderr.trimEnd().split("\n").at(-1)!;
    const m = /^hquant: interrupted: (\d+) finished files? kept in (.*), re-run the same command to resume$/.exec(last);
    expect(m, last).not.toBeNull();
    expect(m![2]).toBe(dir);
    expect(ggufs(dir)).toHaveLength(Number(m![1]));
    expect(Number(m![1])).toBeGreaterThanOrEqual(1);
    expect(Object.keys(readManifest(dir)!.files)).toHaveLength(Number(m![1]));
    expect(fs.readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([]);
  }, 120_000);
});
