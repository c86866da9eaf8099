// What a new user trying hquant with llama.cpp habits tripped on (issue 26): commander's errors in
// the one-line `hquant:` form, -f FILE for the text, thread counts ≤ 0, one wording for a missing
// file, MiB in build's summary, the schedule's imatrix said when build uses it, `hquant cache`,
// tune and imatrix in the library.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseThreads } from "../src/cli/args.js";
import { registerBench } from "../src/cli/commands/bench.js";
import { registerImatrix } from "../src/cli/commands/imatrix.js";
import { registerScan } from "../src/cli/commands/scan.js";
import { registerTune } from "../src/cli/commands/tune.js";
import { commanderErrorLine } from "../src/cli/main.js";
import { cleanCache, listCache } from "../src/cache/index.js";
import { hquantAsync, runCommand } from "./cli-util.js";
import { makeModel, SMALL_LLAMA, syntheticImatrix } from "./factory.js";

const MODEL = "models/tinyllama-16l-f16.gguf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-frictions-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("the argument parser's errors", () => {
  it("are one `hquant:` line with exit code 1", async () => {
    const missing = await hquantAsync("scan", MODEL);
    expect([missing.code, missing.stderr]).toEqual([1, "hquant: required option '-f, --text <file>' not specified\n"]);
    const unknown = await hquantAsync("plan", MODEL, "--ftype", "Q4_K_M", "--no-such-option");
    expect([unknown.code, unknown.stderr]).toEqual([1, "hquant: unknown option '--no-such-option'\n"]);
    expect(commanderErrorLine("error: missing required argument 'base'\n")).toBe("hquant: missing required argument 'base'\n");
  });
});

describe("llama.cpp's habits", () => {
  it("-f FILE is the text on bench, scan, tune and imatrix; a missing text is `no such file` everywhere", async () => {
    const missing = "missing.txt: no such file";
    expect(await runCommand(registerBench, "bench", [MODEL, "-f", "missing.txt", "--files", MODEL])).toBe(missing);
    expect(await runCommand(registerScan, "scan", [MODEL, "-f", "missing.txt", "--op", "delete"])).toBe(missing);
    expect(await runCommand(registerTune, "tune", [MODEL, "-f", "missing.txt", "--budget", "4.5"])).toBe(missing);
    expect(await runCommand(registerImatrix, "imatrix", [MODEL, "-f", "missing.txt"])).toBe(missing);
    const schedule = await hquantAsync("plan", MODEL, "--schedule", "missing.json");
    expect(schedule.stderr).toBe("hquant: missing.json: no such file\n");
  });

  it("a thread count of 0 or less is every core (llama-quantize's NTHREADS rule)", () => {
    const all = Math.max(1, os.availableParallelism());
    expect([parseThreads("0"), parseThreads("-1"), parseThreads("3"), parseThreads(undefined)]).toEqual([all, all, 3, undefined]);
    expect(() => parseThreads("two")).toThrow('--threads: "two" is not a thread count (1–1024, or 0 for every core)');
  });
});

describe("build's summary", () => {
  it("prints sizes in MiB, and says when the imatrix comes from the schedule", async () => {
    const model = await makeModel({ ...SMALL_LLAMA, nEmbd: 256, nFf: 256, seed: 26 });
    const imatrix = await syntheticImatrix(model, 5, tmp);
    const schedule = path.join(tmp, "tuned.json");
    fs.writeFileSync(schedule, JSON.stringify({ ftype: "Q4_K_M", imatrix: path.basename(imatrix) }));
    const out = path.join(tmp, "out.gguf");
    const r = await hquantAsync("build", model, out, "--schedule", schedule, "-t", "0");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`imatrix ${imatrix} (named by the schedule's "imatrix"): `);
    expect(r.stderr).toMatch(new RegExp(`\\nwrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: ${fs.statSync(out).size} bytes \\(\\d+\\.\\d MiB\\), [\\d.]+ bpw, in [\\d.]+ s \\([\\d.]+ MiB/s of input\\)\\n$`));
    expect(r.stderr).not.toMatch(/\bMB\b/);
    const given = await hquantAsync("build", model, path.join(tmp, "out2.gguf"), "Q4_K_M", "--imatrix", imatrix, "--quiet");
    expect(given.code).toBe(0);
  });
});

describe("hquant cache", () => {
  const dir = path.join(tmp, "cache");
  const day = 86_400_000;
  const make = (name: string, bytes: number, ageDays: number, folder = false) => {
    const p = path.join(dir, name);
    const file = folder ? path.join(p, "data.bin") : p;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.alloc(bytes));
    const t = new Date(Date.now() - ageDays * day);
    fs.utimesSync(file, t, t);
    if (folder) fs.utimesSync(p, t, t);
  };

  it("lists, sizes and cleans only its own entries (base-*, tune-*, scan-*)", async () => {
    make("base-0123", 3000, 10, true);
    make("tune-proxy-abcd.json", 200, 1);
    make("scan-ffff.jsonl", 100, 40);
    make("notes.txt", 50, 100);
    expect(listCache(dir).map((e) => [e.name, e.kind, e.bytes])).toEqual([
      ["base-0123", "base", 3000],
      ["tune-proxy-abcd.json", "tune", 200],
      ["scan-ffff.jsonl", "scan", 100],
    ]);
    const size = await hquantAsync("cache", "size", "--cache-dir", dir);
    expect(size.stdout).toBe(`3300\t${dir}\n`);
    const list = await hquantAsync("cache", "--cache-dir", dir);
    expect(list.stdout.split("\n")[0]).toBe(`${dir}: 3 entries, 0.0 MiB`);
    expect(cleanCache(dir, { olderThanDays: 30, dryRun: true }).map((e) => e.name)).toEqual(["scan-ffff.jsonl"]);
    expect(fs.existsSync(path.join(dir, "scan-ffff.jsonl"))).toBe(true);
    const old = await hquantAsync("cache", "clean", "--older-than", "5", "--cache-dir", dir);
    expect(old.stdout.split("\n").at(-2)).toBe(`removed 2 entries, 0.0 MiB, from ${dir}`);
    expect(fs.readdirSync(dir).sort()).toEqual(["notes.txt", "tune-proxy-abcd.json"]);
    await hquantAsync("cache", "clean", "--cache-dir", dir);
    expect(fs.readdirSync(dir)).toEqual(["notes.txt"]);
    const bad = await hquantAsync("cache", "clean", "--kind", "tunes", "--cache-dir", dir);
    expect([bad.code, bad.stderr]).toEqual([1, 'hquant: --kind: "tunes" is not one of base, tune, scan\n']);
    expect(listCache(path.join(tmp, "no-such-cache"))).toEqual([]);
  });
});

describe("the library", () => {
  it("exports tune, imatrix and the cache functions", async () => {
    const lib = await import("../src/index.js");
    expect([typeof lib.tune, typeof lib.imatrix, typeof lib.listCache, typeof lib.cleanCache, typeof lib.defaultCacheDir]).toEqual(Array(5).fill("function"));
  });
});
