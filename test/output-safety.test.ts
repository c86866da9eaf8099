// Output safety (issue: never destroy a file): only regular files are replaced, a symlink is
// written through, an existing output keeps its mode, no output shard may be an input shard,
// SIGHUP cancels like Ctrl-C, a SIGKILLed run's temp file is removed by the next run, and the
// library itself never installs signal handlers or exits. All in temp folders.
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { createGGUFOutput } from "../src/gguf/split.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { IMATRIX_GGUF, MODEL } from "./build-util.js";
import { hquantAsync } from "./cli-util.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-safety-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function freshDir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d);
  return d;
}

const sha = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function expectOneLine(r: Awaited<ReturnType<typeof hquantAsync>>, message: string): void {
  expect(r.stderr).toBe(`hquant: ${message}\n`);
  expect(r.code).toBe(1);
}

describe("only regular files are replaced", () => {
  it("a FIFO is refused before any work, and stays a FIFO (build and plan)", async () => {
    const dir = freshDir("fifo");
    const fifo = path.join(dir, "out.gguf");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const message = `${fifo}: output is a FIFO (named pipe); hquant writes only regular files`;
    expectOneLine(await hquantAsync("build", MODEL, fifo, "Q4_K_M"), message);
    expectOneLine(await hquantAsync("plan", MODEL, fifo, "Q4_K_M"), message);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(["out.gguf"]);
  });

  it("a directory is refused before any work", async () => {
    const dir = freshDir("dir");
    const r = await hquantAsync("build", MODEL, dir, "--ftype", "Q4_K_M");
    expectOneLine(r, `${dir}: output is a directory; hquant writes only regular files`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)("a copy of a device node (as root) is refused and stays a device", async () => {
    const dir = freshDir("device");
    const dev = path.join(dir, "null");
    expect(spawnSync("mknod", [dev, "c", "1", "3"]).status).toBe(0);
    expectOneLine(await hquantAsync("build", MODEL, dev, "Q8_0"), `${dev}: output is a character device; hquant writes only regular files`);
    expect(fs.lstatSync(dev).isCharacterDevice()).toBe(true);
  });

  it("a symlink is written through: the file it points to is replaced, keeping its mode; the link stays", async () => {
    const dir = freshDir("symlink");
    const real = path.join(dir, "real.gguf");
    fs.writeFileSync(real, "old");
    fs.chmodSync(real, 0o640);
    const link = path.join(dir, "link.gguf");
    fs.symlinkSync("real.gguf", link);
    const r = await hquantAsync("build", MODEL, link, "Q8_0", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(link)).toBe("real.gguf");
    expect(fs.statSync(real).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(real).subarray(0, 4).toString()).toBe("GGUF");
    expect(fs.readdirSync(dir).sort()).toEqual(["link.gguf", "real.gguf"]);
  });

  it("a symlink to nothing is refused", async () => {
    const dir = freshDir("dangling");
    const link = path.join(dir, "link.gguf");
    fs.symlinkSync("missing.gguf", link);
    expectOneLine(await hquantAsync("build", MODEL, link, "Q8_0"), `${link}: is a symbolic link to a missing file; give the real path`);
  });
});

describe("no output file may be an input file", () => {
  let shards: string[];
  let hashes: string[];
  beforeAll(async () => {
    // a 4-shard copy of the bundled model
    const src = await openModel(MODEL);
    const dir = freshDir("split-in");
    const out = await createGGUFOutput(path.join(dir, "m.gguf"), src.kv, src.tensors, { splitMaxTensors: 40 });
    const reader = new TensorReader(src);
    for (const t of src.tensors) await out.writeTensor(await reader.read(t, 0, t.bytes));
    await reader.close();
    await out.finish();
    shards = out.paths;
    expect(shards.length).toBe(4);
    hashes = shards.map(sha);
  });

  it("the output is a later input shard", async () => {
    const r = await hquantAsync("build", shards[0]!, shards[2]!, "Q4_K_M");
    expectOneLine(r, `${shards[2]}: would overwrite input file ${shards[2]}; choose another output name`);
    expect(shards.map(sha)).toEqual(hashes);
  });

  it("a split output whose shard names are the input's", async () => {
    const prefix = shards[0]!.replace(/-00001-of-00004\.gguf$/, ".gguf");
    const r = await hquantAsync("build", shards[0]!, prefix, "Q8_0", "--split-max-tensors", "40");
    expectOneLine(r, `${shards[0]}: would overwrite input file ${shards[0]}; choose another output name`);
    const keep = await hquantAsync("build", shards[0]!, prefix, "Q8_0", "--keep-split");
    expectOneLine(keep, `${shards[0]}: would overwrite input file ${shards[0]}; choose another output name`);
    expect(shards.map(sha)).toEqual(hashes);
    // plan refuses it the same way
    expectOneLine(await hquantAsync("plan", shards[0]!, prefix, "Q8_0", "--keep-split"), `${shards[0]}: would overwrite input file ${shards[0]}; choose another output name`);
  });

  it("a hard link of the input is the input", async () => {
    const dir = freshDir("hardlink");
    const link = path.join(dir, "same.gguf");
    fs.linkSync(MODEL, link);
    expectOneLine(await hquantAsync("build", MODEL, link, "Q8_0"), `${link}: input and output are the same file`);
  });
});

/** A long build (one thread, IQ4_XS with an imatrix) in a child process, and its temp file once it exists. */
async function startBuild(dir: string, out: string): Promise<{ child: ReturnType<typeof spawn>; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [BIN, "build", MODEL, out, "IQ4_XS", "1", "--imatrix", IMATRIX_GGUF], { cwd: ROOT });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code, sig) => resolve(code ?? (sig ? -1 : null))));
  const t0 = Date.now();
  while (!fs.readdirSync(dir).some((f) => f.includes(".hquant-tmp-")) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
  expect(fs.readdirSync(dir).some((f) => f.includes(".hquant-tmp-"))).toBe(true);
  return { child, exited, stderr: () => stderr };
}

describe("interrupted builds", () => {
  it("SIGHUP (terminal closed) cancels like Ctrl-C: no file, exit 129", async () => {
    const dir = freshDir("sighup");
    const run = await startBuild(dir, path.join(dir, "out.gguf"));
    run.child.kill("SIGHUP");
    expect(await run.exited).toBe(129);
    expect(run.stderr().trimEnd().split("\n").at(-1)).toBe("hquant: interrupted by SIGHUP, no output written");
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("SIGKILL leaves a temp file; the next run of the same output removes it and says so", async () => {
    const dir = freshDir("sigkill");
    const out = path.join(dir, "out.gguf");
    const run = await startBuild(dir, out);
    const pid = run.child.pid!;
    run.child.kill("SIGKILL");
    await run.exited;
    const [stale] = fs.readdirSync(dir);
    expect(stale).toMatch(new RegExp(`^\\.out\\.gguf\\.hquant-tmp-${pid}-[0-9a-f]+$`));
    const r = await hquantAsync("build", MODEL, out, "Q8_0");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hquant: warning: removed ${path.join(dir, stale!)}, a temp file left by an interrupted run (pid ${pid})\n`);
    expect(fs.readdirSync(dir)).toEqual(["out.gguf"]);
  });

  it("a temp file of a process that still runs is reported, not removed", async () => {
    const dir = freshDir("live-temp");
    // this test process is alive: its "temp file" belongs to a running writer
    const live = path.join(dir, `.out.gguf.hquant-tmp-${process.pid}-abcd1234`);
    fs.writeFileSync(live, "");
    const r = await hquantAsync("build", MODEL, path.join(dir, "out.gguf"), "Q8_0");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hquant: warning: ${live}: another process (pid ${process.pid}) is writing ${path.join(dir, "out.gguf")}\n`);
    expect(fs.existsSync(live)).toBe(true);
  });
});

describe("the library cancels through its AbortSignal", () => {
  it("an aborted build rejects with the signal's reason, leaves no file and adds no signal listener", async () => {
    const dir = freshDir("abort");
    const listeners = () => ["SIGINT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s as NodeJS.Signals));
    const before = listeners();
    const controller = new AbortController();
    let seen: number[] = [];
    const reason = new Error("stop");
    const done = buildModel({
      input: MODEL,
      output: path.join(dir, "out.gguf"),
      threads: 1,
      signal: controller.signal,
      schedule: uniformSchedule("Q4_K_M", 16),
      onProgress: (p) => {
        seen = listeners();
        if (p.tensorIndex >= 10) controller.abort(reason);
      },
    });
    await expect(done).rejects.toBe(reason);
    expect(seen).toEqual(before);
    expect(listeners()).toEqual(before);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe("scan's temporary builds", () => {
  /** A scan in a child process whose OS temp dir is `tmpRoot`, and its work folder once it exists. */
  async function startScan(tmpRoot: string, extra: string[] = []) {
    const child = spawn(process.execPath, [BIN, "scan", MODEL, "--text", "test/fixtures/eval-test.txt", "--op", "delete", "--ctx", "256", "--chunks", "1", "-t", "1", "--cache-dir", path.join(tmpRoot, "cache"), ...extra], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmpRoot },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const work = () => fs.readdirSync(tmpRoot).filter((f) => f.startsWith(`hquant-scan-${child.pid}-`));
    const t0 = Date.now();
    while (work().length === 0 && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 50));
    expect(work().length).toBe(1);
    return { child, exited, work, stderr: () => stderr };
  }

  it("Ctrl-C removes the work folder; a SIGKILLed scan's folder is removed by the next scan", { timeout: 300_000 }, async () => {
    const root = freshDir("scan-tmp");
    const first = await startScan(root);
    first.child.kill("SIGINT");
    expect(await first.exited).toBe(130);
    expect(first.work()).toEqual([]);

    const second = await startScan(root);
    second.child.kill("SIGKILL");
    await second.exited;
    const [left] = second.work();
    expect(left).toBeDefined();
    // what the next scan does first (its pid is another one, so it keeps its own folder)
    const { removeStaleScanFolders } = await import("../src/scan/index.js");
    expect(removeStaleScanFolders(root)).toEqual([path.join(root, left!)]);
    expect(second.work()).toEqual([]);
  });

  it("a search (--greedy) stops on Ctrl-C too, and removes its work folder", { timeout: 300_000 }, async () => {
    const root = freshDir("scan-search-tmp");
    const run = await startScan(root, ["--greedy", "2"]);
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(130);
    expect(run.stderr()).toContain("hquant: interrupted, no output written");
    expect(run.work()).toEqual([]);
  });
});
