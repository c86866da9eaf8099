// hquant imatrix against llama-imatrix. The references in test/fixtures/imatrix were made with
// llama-imatrix built from the llama.cpp source bundled in node-llama-cpp@3.21.1:
//   imatrix.gguf                 -m tinyllama-16l-f16.gguf -f calib.txt -c 256 -t 2 -o imatrix.gguf
//   llama-imatrix-24chunks.gguf  the same with --chunks 24
//   llama-imatrix-combined.gguf  --in-file llama-imatrix-24chunks.gguf --in-file imatrix.dat -c 256
//   imatrix.dat                  --in-file imatrix.gguf --output-format dat (default -c 512)
//   moe/llama-imatrix-moe.gguf   -m <the factory MoE model below> -f moe/letters.txt -c 128 -t 2
//   llama-imatrix-statistics.txt --show-statistics --in-file imatrix.gguf (the table rows)
// hquant runs the prebuilt libllama of @node-llama-cpp/linux-x64; the files must be the same bytes.
// The references were recorded on an AVX2 CPU, and the sums differ in the last bits between ggml's
// CPU variants, so the prebuilt's AVX2 variant is pinned (on an AVX-512 CPU ggml would pick another).
process.env.HQUANT_GGML_CPU ??= "haswell";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readHeaderAt } from "../src/gguf/reader.js";
import { ImatrixCollector } from "../src/imatrix/collect.js";
import { loadRawImatrix } from "../src/imatrix/index.js";
import { makeImatrix } from "../src/imatrix/run.js";
import { statisticsTable, tensorStatistics } from "../src/imatrix/stats.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { hquant } from "./cli-util.js";

const FIXTURES = path.resolve(__dirname, "fixtures");
const IMATRIX = path.join(FIXTURES, "imatrix");
const MODEL = path.resolve(__dirname, "../models/tinyllama-16l-f16.gguf");
const CALIB = fs.readFileSync(path.join(FIXTURES, "calib.txt"), "utf8");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-imatrix-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bytes = (f: string) => fs.readFileSync(f);

describe("hquant imatrix reproduces llama-imatrix", () => {
  it("on the first 24 chunks of the calibration text: the same file, byte for byte", async () => {
    const out = path.join(tmp, "24.gguf");
    const r = await makeImatrix({ model: MODEL, text: { content: CALIB, name: "calib.txt" }, output: out, ctx: 256, chunks: 24, threads: 2 });
    expect(r.entries).toBe(112);
    expect(r.chunks).toBe(24);
    // llama-imatrix printed "Final estimate: PPL = 116.3919 +/- 5.44200" on these chunks
    expect(r.compute!.ppl.toFixed(4)).toBe("116.3919");
    expect(r.compute!.pplErr.toFixed(5)).toBe("5.44200");
    expect(bytes(out).equals(bytes(path.join(IMATRIX, "llama-imatrix-24chunks.gguf")))).toBe(true);
  }, 600_000);

  it("the CLI computes in the evaluation process: the same bytes as the library in this process", async () => {
    const direct = path.join(tmp, "direct-2.gguf");
    const isolated = path.join(tmp, "isolated-2.gguf");
    // the dataset recorded is the text's name as the user typed it
    await makeImatrix({ model: MODEL, text: { content: CALIB, name: path.join(FIXTURES, "calib.txt") }, output: direct, ctx: 256, chunks: 2, threads: 2 });
    const r = hquant("imatrix", MODEL, "--text", path.join(FIXTURES, "calib.txt"), "-c", "256", "--chunks", "2", "-t", "2", "-o", isolated, "--quiet");
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^Final estimate: PPL = \d+\.\d{4} \+\/- \d+\.\d{5}\n/);
    expect(bytes(isolated).equals(bytes(direct))).toBe(true);
  }, 600_000);

  it.runIf(process.env.HQUANT_IMATRIX_FULL === "1")("on the whole calibration text (the bundled imatrix.gguf)", async () => {
    const out = path.join(tmp, "full.gguf");
    await makeImatrix({ model: MODEL, text: { content: CALIB, name: "calib.txt" }, output: out, ctx: 256, threads: 2 });
    expect(bytes(out).equals(bytes(path.join(IMATRIX, "imatrix.gguf")))).toBe(true);
  }, 600_000);

  it("on an MoE model: per-expert sums and counts of every MUL_MAT_ID", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, nLayer: 2, nEmbd: 256, nFf: 64, nExpert: 4, nExpertUsed: 2, dtype: "f16", seed: 7, dir: tmp });
    const out = path.join(tmp, "moe.gguf");
    const text = fs.readFileSync(path.join(IMATRIX, "moe", "letters.txt"), "utf8");
    await makeImatrix({ model, text: { content: text, name: "letters.txt" }, output: out, ctx: 128, threads: 2 });
    const raw = await loadRawImatrix(out);
    const experts = raw.entries.filter((e) => e.name.includes("_exps"));
    expect(experts.length).toBe(6);
    for (const e of experts) expect(e.counts.length).toBe(4);
    expect(bytes(out).equals(bytes(path.join(IMATRIX, "moe", "llama-imatrix-moe.gguf")))).toBe(true);
  }, 600_000);

  it("--in-file merging (a GGUF and a legacy .dat), without a text", async () => {
    const out = path.join(tmp, "combined.gguf");
    const r = hquant("imatrix", "--in-file", path.join(IMATRIX, "llama-imatrix-24chunks.gguf"), "--in-file", path.join(IMATRIX, "imatrix.dat"), "-c", "256", "-o", out);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(bytes(out).equals(bytes(path.join(IMATRIX, "llama-imatrix-combined.gguf")))).toBe(true);
  });

  it("--output-format dat writes the legacy format as llama-imatrix does", () => {
    const out = path.join(tmp, "conv.dat");
    const r = hquant("imatrix", "--in-file", path.join(IMATRIX, "imatrix.gguf"), "--output-format", "dat", "-o", out);
    expect(r.code).toBe(0);
    expect(bytes(out).equals(bytes(path.join(IMATRIX, "imatrix.dat")))).toBe(true);
  });

  it("--show-statistics prints llama-imatrix's figures", async () => {
    const ours = statisticsTable(tensorStatistics((await loadRawImatrix(path.join(IMATRIX, "imatrix.gguf"))).entries));
    const rows = new Map(ours.split("\n").map((l) => l.trim().split(/\s+/)).filter((c) => c.length === 13).map((c) => [`${c[0]} ${c[1]}`, c.slice(2)]));
    const reference = fs.readFileSync(path.join(IMATRIX, "llama-imatrix-statistics.txt"), "utf8").trim().split("\n");
    expect(reference.length).toBeGreaterThan(100);
    for (const line of reference) {
      const c = line.trim().split(/\s+/);
      expect(rows.get(`${c[0]} ${c[1]}`), line).toEqual(c.slice(2));
    }
  });

  it("quantizing with the hquant imatrix gives llama-imatrix's tensors (Q4_K_M, IQ4_XS)", async () => {
    const ours = path.join(tmp, "ours24.gguf");
    await makeImatrix({ model: MODEL, text: { content: CALIB, name: "calib.txt" }, output: ours, ctx: 256, chunks: 24, threads: 2 });
    for (const ftype of ["Q4_K_M", "IQ4_XS"]) {
      const a = path.join(tmp, `a-${ftype}.gguf`);
      const b = path.join(tmp, `b-${ftype}.gguf`);
      expect(hquant("build", MODEL, a, "--ftype", ftype, "--imatrix", ours, "--quiet").code).toBe(0);
      expect(hquant("build", MODEL, b, "--ftype", ftype, "--imatrix", path.join(IMATRIX, "llama-imatrix-24chunks.gguf"), "--quiet").code).toBe(0);
      // the headers differ in quantize.imatrix.file only; the tensor data must be identical
      const [ha, hb] = await Promise.all([readHeaderAt(a), readHeaderAt(b)]);
      expect(ha.tensors.map((t) => [t.name, t.type, t.offset])).toEqual(hb.tensors.map((t) => [t.name, t.type, t.offset]));
      expect(bytes(a).subarray(ha.dataOffset).equals(bytes(b).subarray(hb.dataOffset))).toBe(true);
    }
  }, 600_000);
});

describe("hquant imatrix refuses bad input in one line", () => {
  it("a text shorter than two chunks", () => {
    const short = path.join(tmp, "short.txt");
    fs.writeFileSync(short, "Call me Ishmael.");
    const r = hquant("imatrix", MODEL, "--text", short, "-c", "256", "-o", path.join(tmp, "x.gguf"));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`hquant: ${short}: 10 tokens; an imatrix at --ctx 256 needs at least 512\n`);
    expect(fs.existsSync(path.join(tmp, "x.gguf"))).toBe(false);
  });

  it("an output folder that does not exist, before the model runs", () => {
    const out = path.join(tmp, "no-such-dir", "x.gguf");
    const r = hquant("imatrix", MODEL, "--text", path.join(FIXTURES, "calib.txt"), "-o", out);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`hquant: ${out}: output folder ${path.dirname(out)} does not exist\n`);
  });

  it("a file llama.cpp cannot load as a model", () => {
    const notModel = path.join(IMATRIX, "imatrix.gguf");
    const r = hquant("imatrix", notModel, "--text", path.join(FIXTURES, "calib.txt"), "-o", path.join(tmp, "y.gguf"));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`hquant: ${notModel}: llama.cpp cannot load this model (llama_model_load_from_file_impl: failed to load model)\n`);
    expect(fs.existsSync(path.join(tmp, "y.gguf"))).toBe(false);
  });

  it("nothing to do, and a bad --output-format", () => {
    expect(hquant("imatrix", "-o", path.join(tmp, "z.gguf")).stderr).toBe("hquant: no --text and no --in-file: nothing to compute or combine\n");
    expect(hquant("imatrix", "--in-file", "a.gguf", "--output-format", "bin").stderr).toBe('hquant: --output-format must be gguf or dat (got "bin")\n');
  });

  it("Ctrl-C: exit 130; only the last complete --save-frequency save is left", async () => {
    const dir = fs.mkdtempSync(path.join(tmp, "sigint-"));
    const out = path.join(dir, "interrupted.gguf");
    const args = [path.resolve(__dirname, "../bin/hquant.js"), "imatrix", MODEL, "--text", path.join(FIXTURES, "calib.txt"), "-c", "256", "-t", "1", "--save-frequency", "8", "-o", out];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    // the first save (after 8 chunks) shows the computation is under way
    for (let waited = 0; !fs.existsSync(`${out}.at_8`) && waited < 300_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    // the line saying where llama.cpp runs (printed at the first chunk), then the interruption
    expect(stderr).toMatch(/^llama\.cpp: CPU build [^\n]*\n\nhquant: interrupted, no output written\n$/);
    const left = fs.readdirSync(dir);
    expect(left.every((f) => /^interrupted\.gguf\.at_\d+$/.test(f))).toBe(true);
    expect(left).toContain("interrupted.gguf.at_8");
    // every save is a complete imatrix of that many chunks
    for (const f of left) expect((await loadRawImatrix(path.join(dir, f))).chunkCount).toBe(Number(f.split("_").pop()));
  }, 400_000);

  it("the collector checks expert ids", () => {
    const c = new ImatrixCollector(16);
    const ids = new DataView(new Int32Array([5]).buffer);
    expect(() => c.addMatMulId("blk.0.ffn_up_exps.weight", 4, { data: new Float32Array(4), ne: [4, 1, 1, 1], nb: [4, 16, 16, 16] }, { data: ids, ne: [1, 1], nb: [4, 4] })).toThrow(
      "blk.0.ffn_up_exps.weight: expert id 5 outside 0…3",
    );
  });
});
