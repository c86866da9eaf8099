// `hquant scan` on the bundled 16-layer model: argument errors (one line, before any model is
// loaded), and a real delete scan over one 256-token chunk — one row per layer, ranked by KLD,
// with deleting layer 0 far more harmful than the median layer (measured: KLD 3.22 vs a median of
// 0.027 with --chunks 1; 3.09 vs 0.028 over 16 chunks).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { registerScan } from "../src/cli/commands/scan.js";
import { runCommand } from "./cli-util.js";
import type { ScanReport } from "../src/scan/index.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/eval-test.txt";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-scan-cli-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const run = (args: string[]) => runCommand(registerScan, "scan", args);

describe("hquant scan arguments", () => {
  it("rejects bad input with a one-line message", async () => {
    expect(await run([BASE, "--op", "delete"])).toBe("commander: commander.missingMandatoryOptionValue");
    expect(await run([BASE, "--text", TEXT])).toBe("--op is required (or --laco)");
    expect(await run([BASE, "--text", TEXT, "--op", "prune"])).toBe('--op must be delete, duplicate, swap, interpolate, merge or all (got "prune")');
    expect(await run([BASE, "--text", TEXT, "--op", "merge", "--merge-count", "1"])).toBe("--merge-count must be an integer ≥ 2 (got 1)");
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--greedy", "0"])).toBe('--greedy must be a positive integer (got "0")');
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--max-kld", "0.1"])).toBe("--max-kld bounds a greedy search: give --greedy K or --target-layers N too");
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--greedy", "2", "--max-kld", "x"])).toBe('--max-kld must be a number (got "x")');
    expect(await run([BASE, "--text", TEXT, "--laco", "--greedy", "2"])).toBe("--laco is its own procedure: it does not take --greedy, --target-layers or --max-kld");
    expect(await run([BASE, "--text", TEXT, "--op", "swap", "--schedule-out", "s.json"])).toBe("--schedule-out needs a search (--greedy, --target-layers or --laco)");
    expect(await run(["nope.gguf", "--text", TEXT, "--op", "delete", "--greedy", "1"])).toBe("nope.gguf: no such file");
    // checked against the model's 16 layers before anything is evaluated
    expect(await run([BASE, "--text", TEXT, "--laco", "--laco-highest", "14"])).toBe("--laco-highest 14: a merge of 3 layers from there needs layers up to 16; the model has 16");
    expect(await run([BASE, "--text", TEXT, "--laco", "--laco-threshold", "2"])).toBe("--laco-threshold must be a cosine similarity between -1 and 1 (got 2)");
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--target-layers", "16"])).toBe("--target-layers 16: the model already has 16 layers");
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--top", "0"])).toBe('--top must be a positive integer (got "0")');
    expect(await run([BASE, "--text", TEXT, "--op", "delete", "--ftype", "Q9_K"])).toMatch(/^--ftype: unknown file type "Q9_K"; valid: /);
    expect(await run(["nope.gguf", "--text", TEXT, "--op", "delete"])).toBe("nope.gguf: no such file");
    expect(await run([BASE, "--text", "missing.txt", "--op", "delete"])).toBe("missing.txt: no such file");
  });
});

describe("hquant scan --op delete on the bundled model", () => {
  it("ranks every layer; deleting layer 0 is the most harmful, far above the median", { timeout: 600_000 }, async () => {
    const json = path.join(tmp, "scan.json");
    const out = path.join(tmp, "out");
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => (printed.push(s), true)) as typeof process.stdout.write;
    let result: string;
    try {
      result = await run([BASE, "--text", TEXT, "--op", "delete", "--ctx", "256", "--chunks", "1", "--threads", "2",
        "--json", json, "--out", out, "--cache-dir", path.join(tmp, "cache"), "--no-progress"]);
    } finally {
      process.stdout.write = write;
    }
    expect(result).toBe("ok");
    const report = JSON.parse(fs.readFileSync(json, "utf8")) as ScanReport;
    expect(report.op).toBe("delete");
    expect(report.ftype).toBe("F16");
    expect(report.chunks).toBe(1);
    expect(report.base.layers).toBe(16);
    expect(report.rows.length).toBe(16);
    expect(report.rows.map((r) => r.layer).sort((a, b) => a - b)).toEqual([...Array(16).keys()]);
    for (let i = 1; i < report.rows.length; i++) expect(report.rows[i]!.kld).toBeGreaterThanOrEqual(report.rows[i - 1]!.kld);
    for (const r of report.rows) expect(r.dPpl).toBeCloseTo(r.ppl - report.base.ppl, 9);
    // a 15-layer F16 file: one layer's 9 tensors fewer than the input
    const inputBytes = fs.statSync(BASE).size;
    for (const r of report.rows) expect(r.bytes).toBeLessThan(inputBytes);

    const worst = report.rows[report.rows.length - 1]!;
    expect(worst.layer).toBe(0);
    const median = [...report.rows].sort((a, b) => a.kld - b.kld)[8]!.kld;
    expect(worst.kld).toBeGreaterThan(10 * median);
    expect(worst.topTokenPct).toBeLessThan(report.rows[0]!.topTokenPct);

    const table = printed.join("").split("\n").filter((l) => /^\| \d+ \| delete \d+ \|/.test(l));
    expect(table.length).toBe(16);
    expect(table[15]).toMatch(/^\| 16 \| delete 0 \|/);
    expect(fs.readdirSync(out).sort()).toEqual(["scan.json", "scan.md", "scan.svg"]);
    expect(fs.readFileSync(path.join(out, "scan.svg"), "utf8").match(/<rect [^>]*fill="#(2a9d8f|e76f51)"/g)?.length).toBe(16);
  });
});
