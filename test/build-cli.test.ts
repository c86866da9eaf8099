// `hquant build` from the command line: bad input gives exactly one line on stderr, exit code 1,
// and no file; Ctrl-C mid-build leaves nothing behind; a good build writes what `plan` promised.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MODEL, IMATRIX_GGUF } from "./build-util.js";
import { hquant } from "./cli-util.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-build-cli-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));


/** A fresh, empty output folder. */
function outDir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d);
  return d;
}

function expectOneLineError(r: ReturnType<typeof hquant>, message: string, dir?: string): void {
  expect(r.stderr).toBe(`hquant: ${message}\n`);
  expect(r.code).toBe(1);
  if (dir) expect(fs.readdirSync(dir)).toEqual([]);
}

describe("hquant build failures", () => {
  it("missing input", () => {
    const dir = outDir("missing");
    const input = path.join(tmp, "no-such-model.gguf");
    expectOneLineError(hquant("build", input, path.join(dir, "out.gguf"), "--ftype", "Q4_K_M"), `${input}: no such file`, dir);
  });

  it("truncated input", () => {
    const dir = outDir("truncated");
    const input = path.join(tmp, "truncated.gguf");
    fs.writeFileSync(input, fs.readFileSync(MODEL).subarray(0, 20_000_000));
    const r = hquant("build", input, path.join(dir, "out.gguf"), "--ftype", "Q4_K_M");
    expectOneLineError(r, `${input}: tensor 'blk.11.ffn_gate.weight': data [19919136, 20312352) runs past the end of the file (size 20000000)`, dir);
  });

  it("an imatrix whose entry does not fit the tensor", () => {
    const dir = outDir("wrong-imatrix");
    // legacy .dat: one entry for blk.0.attn_q.weight with 128 values (the row has 256)
    const name = Buffer.from("blk.0.attn_q.weight");
    const head = Buffer.alloc(8);
    head.writeInt32LE(1, 0);
    head.writeInt32LE(name.length, 4);
    const counts = Buffer.alloc(8);
    counts.writeInt32LE(1, 0);
    counts.writeInt32LE(128, 4);
    const values = Buffer.from(new Float32Array(128).fill(1).buffer);
    const imatrix = path.join(tmp, "wrong.dat");
    fs.writeFileSync(imatrix, Buffer.concat([head, name, counts, values]));
    const r = hquant("build", MODEL, path.join(dir, "out.gguf"), "--ftype", "Q4_K_M", "--imatrix", imatrix);
    expectOneLineError(r, `${imatrix}: entry blk.0.attn_q.weight has 128 values, the tensor needs 256`, dir);
  });

  it("an imatrix that is not one", () => {
    const dir = outDir("not-imatrix");
    const r = hquant("build", MODEL, path.join(dir, "out.gguf"), "--ftype", "Q4_K_M", "--imatrix", MODEL);
    expectOneLineError(r, `${MODEL}: not an imatrix file: key 'imatrix.datasets' is missing`, dir);
  });

  it("unwritable output folder", () => {
    const folder = path.join(tmp, "no-such-folder");
    const out = path.join(folder, "out.gguf");
    expectOneLineError(hquant("build", MODEL, out, "--ftype", "Q4_K_M"), `${out}: output folder ${folder} does not exist`);
  });

  it("unknown preset lists the valid ones", () => {
    const dir = outDir("preset");
    const presets = fs
      .readdirSync(path.join(ROOT, "presets"))
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
    expect(presets).toContain("Q4_K_H");
    const r = hquant("build", MODEL, path.join(dir, "out.gguf"), "--preset", "Q4_K_X");
    expectOneLineError(r, `unknown preset "Q4_K_X"; valid: ${presets.join(", ")}`, dir);
  });

  it("bad thread count", () => {
    const dir = outDir("threads");
    expectOneLineError(hquant("build", MODEL, path.join(dir, "out.gguf"), "--ftype", "Q8_0", "-t", "1025"), `--threads: "1025" is not a thread count (1–1024, or 0 for every core)`, dir);
  });

  it("Ctrl-C mid-build leaves no file and exits non-zero", async () => {
    const dir = outDir("sigint");
    // one thread and an imatrix IQ4_XS build: several seconds, long enough to interrupt mid-way
    const child = spawn(process.execPath, [BIN, "build", MODEL, path.join(dir, "out.gguf"), "--ftype", "IQ4_XS", "--imatrix", IMATRIX_GGUF, "-t", "1"], {
      cwd: ROOT,
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // wait until the temp file exists: the build is under way
    const t0 = Date.now();
    while (fs.readdirSync(dir).length === 0 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
    expect(fs.readdirSync(dir)[0]).toMatch(/^\.out\.gguf\.hquant-tmp-/);
    child.kill("SIGINT");
    const code = await exited;
    expect(code).toBe(130);
    expect(stderr.trimEnd().split("\n").at(-1)).toBe("hquant: interrupted, no output written");
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe("hquant build", () => {
  it("writes the size `hquant plan` promised, with a summary", () => {
    const dir = outDir("ok");
    const out = path.join(dir, "q4kh.gguf");
    const plan = hquant("plan", MODEL, "--preset", "Q4_K_H", "--json");
    expect(plan.code).toBe(0);
    const promised = JSON.parse(plan.stdout) as { fileBytes: number };
    const r = hquant("build", MODEL, out, "--preset", "Q4_K_H", "-t", "2", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { fileBytes: number; schedule: string; tensors: number };
    expect(summary.schedule).toBe("Q4_K_H");
    expect(summary.tensors).toBe(147);
    expect(fs.statSync(out).size).toBe(summary.fileBytes);
    expect(summary.fileBytes).toBe(promised.fileBytes);
    expect(fs.readdirSync(dir)).toEqual(["q4kh.gguf"]);
  });
});
