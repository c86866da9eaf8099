// `hquant tune` end to end on the bundled model, kept small (proxy mode, three candidate types,
// one 64-token chunk): the schedule it writes is schema-valid, `hquant plan --schedule` sizes it
// exactly as the tune did, within the IQ4_XS budget; the report and its charts are written.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { registerTune } from "../src/cli/commands/tune.js";
import { planWithOptions, planSizes } from "../src/cli/commands/plan.js";
import { openModel } from "../src/gguf/reader.js";
import { readImatrixInfo } from "../src/imatrix/index.js";
import { parseSchedule } from "../src/plan/schedule.js";
import { fileTypeBytes } from "../src/tune/index.js";
import { runCommand } from "./cli-util.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-cli-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("hquant tune --method proxy", () => {
  it("writes a schedule that plans to the tuned size within the budget, and the report", { timeout: 600_000 }, async () => {
    const out = path.join(tmp, "out");
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => (printed.push(s), true)) as typeof process.stdout.write;
    let result: string;
    try {
      result = await runCommand(registerTune, "tune", [
        BASE, "--budget", "IQ4_XS", "--text", "test/fixtures/calib.txt", "--eval-text", "test/fixtures/eval-test.txt",
        "--imatrix", IMATRIX, "--method", "proxy", "--types", "q3_K,q4_K,q6_K", "--ctx", "64", "--chunks", "1", "--eval-chunks", "1",
        "--out", out, "--threads", "2", "--cache-dir", path.join(tmp, "cache"), "--quiet",
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(result).toBe("ok");
    const scheduleFile = path.join(out, "tune-IQ4_XS.schedule.json");
    const schedule = parseSchedule(fs.readFileSync(scheduleFile, "utf8"), scheduleFile);
    expect(schedule.name).toBe("tune-IQ4_XS");
    expect(schedule.description).toContain("method proxy");
    expect(schedule.imatrix).toBe(path.relative(out, path.resolve(IMATRIX)));
    const model = await openModel(BASE);
    const { plan } = planWithOptions(model, { schedule: scheduleFile }, BASE);
    const sizes = planSizes(model, plan, await readImatrixInfo(plan.schedule.imatrix!));
    const budget = fileTypeBytes(model, "IQ4_XS", 16, await readImatrixInfo(IMATRIX));
    expect(sizes.fileBytes).toBeLessThanOrEqual(budget);
    // every quantized tensor has one of the candidate types
    expect(new Set(plan.tensors.filter((t) => t.shape.length > 1 && !t.name.includes("norm")).map((t) => t.dstType)).size).toBeGreaterThan(1);
    const text = printed.join("");
    expect(text).toContain(`| IQ4_XS | IQ4_XS (${budget} bytes`);
    expect(text).toContain(`| ${sizes.fileBytes} |`);
    for (const f of ["tune.md", "tune.svg", "sensitivity.svg", "predicted-vs-measured.svg", "types-IQ4_XS.svg"]) expect(fs.existsSync(path.join(out, f))).toBe(true);
    // no tuned GGUF left behind without --keep-files, no temporary file in --out
    expect(fs.readdirSync(out).filter((f) => f.endsWith(".gguf") || f.endsWith(".tmp"))).toEqual([]);
  });

  it("--no-verify: the report has no empty results table, no NaN and no evaluation it did not make", { timeout: 600_000 }, async () => {
    const out = path.join(tmp, "no-verify");
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => (printed.push(s), true)) as typeof process.stdout.write;
    let result: string;
    try {
      // the same measurements as above (cached): only the allocation runs again
      result = await runCommand(registerTune, "tune", [
        BASE, "--budget", "IQ4_XS", "-f", "test/fixtures/calib.txt", "--eval-text", "test/fixtures/eval-test.txt",
        "--imatrix", IMATRIX, "--method", "proxy", "--types", "q3_K,q4_K,q6_K", "--ctx", "64", "--chunks", "1",
        "--out", out, "--threads", "2", "--cache-dir", path.join(tmp, "cache"), "--quiet", "--no-verify",
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(result).toBe("ok");
    const md = fs.readFileSync(path.join(out, "tune.md"), "utf8");
    expect(printed.join("")).toContain(md);
    expect(md).not.toContain("NaN");
    expect(md).not.toContain("eval-test.txt");
    expect(md).toContain("; evaluation none (not verified: planned only);");
    expect(md).not.toContain("| | file | type |"); // bench's results table, which would be empty
    expect(md).toMatch(/\n\| IQ4_XS \| IQ4_XS \(\d+ bytes, [\d.]+ MiB\) \| /);
  });
});
