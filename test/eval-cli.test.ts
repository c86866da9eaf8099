// `hquant bench` argument errors: one line naming the option or file, exit code 1, before any
// model is loaded.
import { describe, expect, it } from "vitest";
import { registerBench } from "../src/cli/commands/bench.js";
import { runCommand } from "./cli-util.js";

const run = (args: string[]) => runCommand(registerBench, "bench", args);

const BASE = "models/tinyllama-16l-f16.gguf";
const TEXT = "test/fixtures/eval-test.txt";

describe("hquant bench arguments", () => {
  it("rejects bad input with a one-line message", async () => {
    expect(await run([BASE])).toBe("bench needs --text FILE (PPL and KLD), --task KIND FILE or --prompts FILE");
    expect(await run([BASE, "--text", TEXT])).toBe("nothing to evaluate: give --files, --presets or --schedule");
    expect(await run([BASE, "--text", TEXT, "--ctx", "0", "--files", BASE])).toBe('--ctx must be a positive integer (got "0")');
    expect(await run([BASE, "--text", TEXT, "--chunks", "2.5", "--files", BASE])).toBe('--chunks must be a positive integer (got "2.5")');
    expect(await run([BASE, "--text", TEXT, "--metric", "bleu", "--files", BASE])).toBe('--metric must be kld or ppl (got "bleu")');
    expect(await run(["nope.gguf", "--text", TEXT, "--files", BASE])).toBe("nope.gguf: no such file");
    expect(await run([BASE, "--text", TEXT, "--files", "missing.gguf"])).toBe("missing.gguf: no such file");
    expect(await run([BASE, "--text", "missing.txt", "--files", BASE])).toBe("missing.txt: no such file");
    expect(await run([BASE, "--text", TEXT, "--presets", "Q4_K_H"])).toBe("--presets and --schedule need --out DIR for the files they build");
  });
});

describe("hquant bench on ready files", () => {
  it("evaluates, prints the table and writes bench.md / bench.svg / bench.json and --json", async () => {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { llamaQuantize } = await import("./oracle/llama.js");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-cli-"));
    try {
      const q8 = path.join(dir, "q8.gguf");
      const q2 = path.join(dir, "q2.gguf");
      llamaQuantize(BASE, q8, { ftype: "Q8_0", threads: 2 });
      llamaQuantize(BASE, q2, { ftype: "Q2_K", threads: 2 });
      const out = path.join(dir, "out");
      const json = path.join(dir, "rows.json");
      const chunks: string[] = [];
      const write = process.stdout.write;
      process.stdout.write = ((s: string) => (chunks.push(s), true)) as typeof process.stdout.write;
      let result: string;
      try {
        result = await run([BASE, "--text", TEXT, "--ctx", "256", "--chunks", "1", "--threads", "2", "--files", q2, q8, "--out", out, "--json", json, "--cache-dir", path.join(dir, "cache"), "--no-progress"]);
      } finally {
        process.stdout.write = write;
      }
      expect(result).toBe("ok");
      const report = JSON.parse(fs.readFileSync(json, "utf8"));
      expect(report).toMatchObject({ ctx: 256, chunks: 1, positions: 127, text: "eval-test.txt" });
      expect(report.rows.map((r: { ftype: string; bytes: number }) => [r.ftype, r.bytes])).toEqual([
        ["Q2_K", fs.statSync(q2).size],
        ["Q8_0", fs.statSync(q8).size],
      ]);
      const [r2, r8] = report.rows;
      expect(r8.kld).toBeLessThan(r2.kld);
      expect(r2.pareto && r8.pareto).toBe(true);
      expect(r8.bpw).toBeCloseTo(8.51, 2); // llama-quantize's quant size line for Q8_0 (anchors.json)
      expect(r2.bpw).toBeCloseTo(3.18, 2);
      expect(chunks.join("")).toContain("| ★ | q2 | Q2_K | no |");
      expect(fs.readFileSync(path.join(out, "bench.svg"), "utf8").match(/<circle class="point"/g)).toHaveLength(2);
      expect(fs.readdirSync(out).sort()).toEqual(["bench.json", "bench.md", "bench.svg"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("hquant bench building what it evaluates (--presets, --schedule, --imatrix)", () => {
  it("builds each preset and schedule into --out with the imatrix, exactly as hquant build does, and evaluates them", async () => {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { buildModel } = await import("../src/build/index.js");
    const { scheduleFromOptions } = await import("../src/plan/options.js");
    const { archNumber } = await import("../src/gguf/model.js");
    const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-bench-build-"));
    try {
      const schedule = path.join(dir, "late-q6.json");
      fs.writeFileSync(schedule, JSON.stringify({ ftype: "Q5_K_M", layers: [{ depth: [0, 0.75], ftype: "Q5_K_M" }, { depth: [0.75, 1], ftype: "Q6_K" }] }));
      const out = path.join(dir, "out");
      const json = path.join(dir, "rows.json");
      const write = process.stdout.write;
      process.stdout.write = (() => true) as typeof process.stdout.write;
      let result: string;
      try {
        result = await run([BASE, "--text", TEXT, "--ctx", "256", "--chunks", "1", "--threads", "2", "--presets", "Q4_K_H", "--schedule", schedule, "--imatrix", IMATRIX, "--out", out, "--json", json, "--cache-dir", path.join(dir, "cache"), "--no-progress"]);
      } finally {
        process.stdout.write = write;
      }
      expect(result).toBe("ok");
      const builtQ4KH = path.join(out, "tinyllama-16l-f16-Q4_K_H-imat.gguf");
      const builtSchedule = path.join(out, "tinyllama-16l-f16-late-q6-imat.gguf");
      expect(fs.readdirSync(out).sort()).toEqual(["bench.json", "bench.md", "bench.svg", path.basename(builtQ4KH), path.basename(builtSchedule)].sort());

      // the same file `hquant build --preset Q4_K_H --imatrix …` writes
      const direct = path.join(dir, "direct.gguf");
      await buildModel({
        input: BASE,
        output: direct,
        threads: 2,
        imatrix: IMATRIX,
        schedule: (m) => scheduleFromOptions({ preset: "Q4_K_H", imatrix: IMATRIX }, archNumber(m.kv, "block_count") ?? 0),
      });
      expect(fs.readFileSync(builtQ4KH).equals(fs.readFileSync(direct))).toBe(true);

      const report = JSON.parse(fs.readFileSync(json, "utf8"));
      expect(report).toMatchObject({ ctx: 256, chunks: 1, positions: 127 });
      const rows = Object.fromEntries(report.rows.map((r: { label: string }) => [r.label, r]));
      expect(Object.keys(rows).sort()).toEqual(["Q4_K_H-imat", "late-q6-imat"]);
      expect(rows["Q4_K_H-imat"]).toMatchObject({ file: builtQ4KH, bytes: fs.statSync(builtQ4KH).size, preset: "Q4_K_H", ftype: "Q4_K_M", imatrix: true, producer: "hquant" });
      expect(rows["late-q6-imat"]).toMatchObject({ file: builtSchedule, bytes: fs.statSync(builtSchedule).size, preset: "late-q6", ftype: "Q5_K_M", imatrix: true, producer: "hquant" });
      // Q5_K_M with Q6_K late layers is larger and closer to F16 than the ~4.6 bpw Q4_K_H
      expect(rows["late-q6-imat"].bytes).toBeGreaterThan(rows["Q4_K_H-imat"].bytes);
      expect(rows["late-q6-imat"].kld).toBeLessThan(rows["Q4_K_H-imat"].kld);
      expect(rows["Q4_K_H-imat"].kld).toBeGreaterThan(0);
      expect(fs.readFileSync(path.join(out, "bench.svg"), "utf8").match(/<circle class="point"/g)).toHaveLength(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
