// Everything is checked before the work starts (bench and scan outputs, preset names, a text too
// short for the context), what a build uses is visible (the imatrix entries used and unused, a
// warning for an imatrix matching nothing, inspect's file type and quantize.imatrix.* keys), and
// the one progress bar fits the terminal with its ETA, drawing nothing off a terminal.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { registerBench } from "../src/cli/commands/bench.js";
import { registerScan } from "../src/cli/commands/scan.js";
import { formatDuration, progressBar, renderProgress } from "../src/cli/progress.js";
import { IMATRIX_GGUF, MODEL } from "./build-util.js";
import { hquantAsync, runCommand } from "./cli-util.js";

const TEXT = "test/fixtures/eval-test.txt";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-checks-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A legacy .dat imatrix with one entry of `n` ones. */
function datImatrix(file: string, name: string, n: number): string {
  const nameBytes = Buffer.from(name);
  const head = Buffer.alloc(8);
  head.writeInt32LE(1, 0);
  head.writeInt32LE(nameBytes.length, 4);
  const counts = Buffer.alloc(8);
  counts.writeInt32LE(1, 0);
  counts.writeInt32LE(n, 4);
  fs.writeFileSync(file, Buffer.concat([head, nameBytes, counts, Buffer.from(new Float32Array(n).fill(1).buffer)]));
  return file;
}

describe("bench and scan check everything before the first evaluation or build", () => {
  const existingFile = path.join(tmp, "a-file");
  fs.writeFileSync(existingFile, "x");

  it("--out that is a file, --json that is a folder", async () => {
    const bench = (args: string[]) => runCommand(registerBench, "bench", args);
    const scan = (args: string[]) => runCommand(registerScan, "scan", args);
    expect(await bench([MODEL, "--text", TEXT, "--presets", "Q4_K_M", "--out", existingFile])).toBe(`--out ${existingFile}: exists and is not a folder`);
    expect(await scan([MODEL, "--text", TEXT, "--op", "delete", "--out", existingFile])).toBe(`--out ${existingFile}: exists and is not a folder`);
    expect(await scan([MODEL, "--text", TEXT, "--op", "delete", "--json", tmp])).toBe(`${tmp}: output is a directory; hquant writes only regular files`);
    expect(await bench([MODEL, "--text", TEXT, "--files", MODEL, "--json", tmp])).toBe(`${tmp}: output is a directory; hquant writes only regular files`);
  });

  it("an unknown preset among several is found before any build (and --out is not even made)", async () => {
    const out = path.join(tmp, "bench-out");
    const r = await runCommand(registerBench, "bench", [MODEL, "--text", TEXT, "--presets", "Q4_K_M,NOPE", "--out", out]);
    expect(r).toMatch(/^unknown preset "NOPE"; valid: /);
    expect(fs.existsSync(out)).toBe(false);
  });

  it("a text too short for --ctx fails before the builds", { timeout: 120_000 }, async () => {
    const short = path.join(tmp, "short.txt");
    fs.writeFileSync(short, "Once upon a time there was a whale.\n");
    const out = path.join(tmp, "short-out");
    const r = await runCommand(registerBench, "bench", [MODEL, "--text", short, "--ctx", "256", "--presets", "Q4_K_M", "--out", out, "--cache-dir", path.join(tmp, "cache"), "--quiet"]);
    expect(r).toMatch(/^short\.txt: tokenizes to only \d+ tokens; a context of 256 needs at least 512$/);
    expect(fs.existsSync(out) ? fs.readdirSync(out) : []).toEqual([]);
  });

  it("-t is --threads, and --quiet is accepted, on bench and scan", async () => {
    expect(await runCommand(registerBench, "bench", [MODEL, "--text", TEXT, "-t", "2000", "--quiet", "--files", MODEL])).toBe(`--threads: "2000" is not a thread count (1–1024, or 0 for every core)`);
    expect(await runCommand(registerScan, "scan", [MODEL, "--text", TEXT, "--op", "delete", "-t", "x", "--quiet"])).toBe(`--threads: "x" is not a thread count (1–1024, or 0 for every core)`);
  });
});

describe("what a build used is visible", () => {
  it("the summary names the imatrix with the entries used and unused", async () => {
    const r = await hquantAsync("build", MODEL, path.join(tmp, "imat.gguf"), "Q4_K_M", "--imatrix", IMATRIX_GGUF);
    expect(r.code).toBe(0);
    const line = r.stderr.split("\n").find((l) => l.startsWith("imatrix "));
    // every entry of the fixture belongs to a quantized 2-D weight; output.weight's is not in it
    expect(line).toMatch(new RegExp(`^imatrix ${IMATRIX_GGUF.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: (\\d+) entries, \\1 used, 0 unused$`));
  });

  it("an imatrix that matches no tensor is a warning, or an error where a type needs it", async () => {
    const im = datImatrix(path.join(tmp, "nothing.dat"), "blk.99.attn_q.weight", 256);
    const r = await hquantAsync("build", MODEL, path.join(tmp, "nothing.gguf"), "Q4_K_M", "--imatrix", im);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hquant: warning: ${im}: none of its 1 entries matches a quantized tensor of ${MODEL}; the build uses no importance matrix\n`);
    expect(r.stderr).toContain(`imatrix ${im}: 1 entries, 0 used, 1 unused\n`);
    const s = await hquantAsync("plan", MODEL, "Q2_K_S", "--imatrix", im);
    expect(s.code).toBe(1);
    expect(s.stderr.split("\n").at(-2)).toBe(`hquant: ${im}: no entry for tensor blk.0.attn_k.weight, which type q2_K (file type Q2_K_S) needs`);
  });

  it("plan refuses what build refuses, with the same message", async () => {
    const p = await hquantAsync("plan", MODEL, "--preset", "Q2_K_S");
    const b = await hquantAsync("build", MODEL, path.join(tmp, "q2ks.gguf"), "--preset", "Q2_K_S");
    expect(p.stderr).toBe("hquant: blk.0.attn_k.weight: type q2_K (file type Q2_K_S) needs an importance matrix (--imatrix)\n");
    expect(b.stderr).toBe(p.stderr);
    expect([p.code, b.code]).toEqual([1, 1]);
  });

  it("plan refuses a quantized input as build does, unless --allow-requantize", async () => {
    const q8 = path.join(tmp, "q8.gguf");
    expect((await hquantAsync("build", MODEL, q8, "Q8_0", "--quiet")).code).toBe(0);
    const message = `hquant: ${q8}: tensor output.weight is q8_0: requantizing is disabled (use --allow-requantize)\n`;
    expect((await hquantAsync("plan", q8, "Q4_K_M")).stderr).toBe(message);
    expect((await hquantAsync("build", q8, path.join(tmp, "rq.gguf"), "Q4_K_M")).stderr).toBe(message);
    const allowed = await hquantAsync("plan", q8, "Q4_K_M", "--allow-requantize");
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toBe("hquant: warning: re-quantizing q8_0 tensors: quality is lower than quantizing from F16/F32\n");
  });

  it("inspect shows the file type, the quantize.imatrix.* and the hquant.* keys", async () => {
    const out = path.join(tmp, "imat.gguf");
    const text = (await hquantAsync("inspect", out)).stdout;
    expect(text).toMatch(/^file type +Q4_K_M \(15\)$/m);
    expect(text).toMatch(new RegExp(`^quantize\\.imatrix\\.file +${JSON.stringify(IMATRIX_GGUF).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    expect(text).toMatch(/^quantize\.imatrix\.entries_count +\d+$/m);
    expect(text).toMatch(/^hquant\.schedule\.name +"Q4_K_M"$/m);
    const json = JSON.parse((await hquantAsync("inspect", out, "--json")).stdout) as { fileType: unknown; quantize: Record<string, unknown> };
    expect(json.fileType).toEqual({ id: 15, name: "Q4_K_M" });
    expect(json.quantize["quantize.imatrix.file"]).toBe(IMATRIX_GGUF);
  });
});

/** A writable that records what it got, posing as a terminal of `columns` columns (or not a terminal). */
function fakeStream(columns: number | undefined): NodeJS.WriteStream & { text: string } {
  const s = new Writable({
    write(chunk, _enc, cb) {
      s.text += String(chunk);
      cb();
    },
  }) as unknown as NodeJS.WriteStream & { text: string };
  s.text = "";
  if (columns !== undefined) Object.assign(s, { isTTY: true, columns });
  return s;
}

describe("the progress bar", () => {
  it("fits any width and always keeps the ETA", async () => {
    for (const width of [20, 40, 60, 80, 200]) {
      const line = renderProgress({ label: "[3/17] build Q4_K_M", detail: "blk.12.ffn_down.weight", done: 12e6, total: 48e6, seconds: 4, unit: "bytes", width });
      expect(line.length).toBeLessThanOrEqual(width);
      expect(line).toContain("ETA 0:12");
    }
    const wide = renderProgress({ label: "quantizing", detail: "blk.1.attn_q.weight", done: 1, total: 4, seconds: 1, unit: "count", width: 100 });
    expect(wide).toBe(`quantizing [${"#".repeat(8)}${"-".repeat(22)}]  25% 1/4 ETA 0:03 blk.1.attn_q.weight`);
    expect(formatDuration(3725)).toBe("1:02:05");
  });

  it("draws nothing when the stream is not a terminal, and only log lines when quiet is off", async () => {
    const pipe = fakeStream(undefined);
    const bar = progressBar({ stream: pipe, label: "x" });
    bar.update(1, 2);
    bar.log("a line");
    bar.done();
    expect(pipe.text).toBe("a line\n");
    const quiet = fakeStream(80);
    const q = progressBar({ stream: quiet, enabled: false });
    q.update(1, 2);
    q.log("hidden");
    expect(quiet.text).toBe("");
    const tty = fakeStream(40);
    const t = progressBar({ stream: tty, label: "scan", intervalMs: 0 });
    t.update(1, 4);
    t.done();
    expect(tty.text.startsWith("\rscan [")).toBe(true);
    expect(tty.text.endsWith("\r\x1b[K")).toBe(true);
    for (const l of tty.text.split("\r").filter(Boolean)) expect(l.replace("\x1b[K", "").length).toBeLessThanOrEqual(39);
  });
});
