// Allocation against the bundled model's real header, with synthetic per-tensor costs (the
// allocation must be right whatever the sensitivities): the file never exceeds the budget, header
// growth from the written schedule included; the schedule is schema-valid and round-trips through
// `plan` and `build` with the predicted size to the byte; the same inputs give the same schedule;
// bad budgets get one-line errors.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { planSizes } from "../src/cli/commands/plan.js";
import { registerTune } from "../src/cli/commands/tune.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import type { GGUFModel } from "../src/gguf/model.js";
import { openModel, readHeaderAt } from "../src/gguf/reader.js";
import { readImatrixInfo } from "../src/imatrix/index.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { planModel } from "../src/plan/planner.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { parseBudget, type BudgetLimit } from "../src/tune/budget.js";
import { tuneSpace, typeBits, type TuneSpace } from "../src/tune/candidates.js";
import { allocate, smallestAssignment } from "../src/tune/fit.js";
import { fileTypeBytes, resolveBudget } from "../src/tune/index.js";
import { checkPlanMatches, scheduleFile, sizeSchedule, type Assignment } from "../src/tune/schedule.js";
import type { CostTable } from "../src/tune/sensitivity.js";
import { runCommand } from "./cli-util.js";

const BASE = "models/tinyllama-16l-f16.gguf";
const IMATRIX = "test/fixtures/imatrix/imatrix.gguf";
const CALIB = "test/fixtures/calib.txt";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-tune-fit-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let model: GGUFModel;
let space: TuneSpace;
let costs: CostTable;
beforeAll(async () => {
  model = await openModel(BASE);
  space = tuneSpace(model);
  // a made-up sensitivity: error halves per extra bit, each tensor with its own weight
  costs = new Map(
    space.tensors.map((t, i) => [t.name, new Map(t.options.map((o) => [o.type, ((1 + ((i * 7) % 11)) * t.elements * 2 ** -typeBits(o.type)) / 1e6]))]),
  );
});

const info = { name: "tune-test", description: "synthetic costs" };
const sizer = (imatrix?: { file: string; datasets: string[]; entries: number; chunks: number }, extra: Partial<typeof info> = {}) => (a: Assignment) =>
  sizeSchedule(model, scheduleFile(space, a, { ...info, ...extra, imatrix: imatrix?.file }), imatrix);

describe("tune allocation on the bundled model", () => {
  it("never exceeds a file-size budget, header growth included, over a sweep from the smallest file to F16", () => {
    const size = sizer();
    const smallest = size(smallestAssignment(space));
    const f16 = fileTypeBytes(model, "F16", 16, undefined);
    const rounds: number[] = [];
    for (let k = 0; k <= 8; k++) {
      const max = Math.round(smallest.fileBytes + ((f16 - smallest.fileBytes) * k) / 8);
      const a = allocate(space, costs, { kind: "file", maxFileBytes: max, label: String(max) }, size)!;
      expect(a.sized.fileBytes).toBeLessThanOrEqual(max);
      expect(a.sized.fileBytes).toBe(size(a.assignment).fileBytes);
      checkPlanMatches(space, a.assignment, a.sized.plan);
      rounds.push(a.rounds);
    }
    // somewhere in the sweep the first solution's longer schedule did not fit: the header growth was counted
    expect(Math.max(...rounds)).toBeGreaterThan(1);
  });

  it("keeps bits per weight within a bpw budget, as `hquant plan` counts it", () => {
    for (const bpw of [3, 4.5, 5.5, 8]) {
      const limit: BudgetLimit = { kind: "bpw", bpw, maxTensorBytes: Math.floor((bpw * space.elements) / 8), label: `${bpw}` };
      const a = allocate(space, costs, limit, sizer())!;
      const planBpw = (a.sized.plan.tensorBytes * 8) / a.sized.plan.elements;
      expect(planBpw).toBeLessThanOrEqual(bpw);
      expect(planBpw).toBeGreaterThan(bpw - 0.25);
    }
  });

  it("is deterministic: the same inputs give the same schedule", () => {
    const limit: BudgetLimit = { kind: "file", maxFileBytes: 8_300_000, label: "x" };
    const a = allocate(space, costs, limit, sizer())!;
    const b = allocate(space, costs, limit, sizer())!;
    expect(JSON.stringify(b.sized.file)).toBe(JSON.stringify(a.sized.file));
  });

  it("writes a schema-valid schedule that plan and build reproduce to the byte (with the imatrix)", async () => {
    const dir = path.join(tmp, "out");
    const scheduleName = path.join(dir, "tuned.schedule.json");
    // the schedule records the imatrix relative to itself; the build records the path it then opens
    const rel = path.relative(dir, path.resolve(IMATRIX));
    const imatrix = { ...(await readImatrixInfo(IMATRIX)), file: path.join(dir, rel) };
    const ftypeBytes = fileTypeBytes(model, "IQ4_XS", 16, imatrix);
    const limit: BudgetLimit = { kind: "file", maxFileBytes: ftypeBytes, label: "IQ4_XS" };
    const size = (a: Assignment) => sizeSchedule(model, scheduleFile(space, a, { ...info, imatrix: rel }), imatrix);
    const a = allocate(space, costs, limit, size)!;
    expect(a.sized.fileBytes).toBeLessThanOrEqual(ftypeBytes);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(scheduleName, JSON.stringify(a.sized.file, null, 1));
    // plan: the schedule read back as `hquant plan --schedule` reads it (schema validation included)
    const schedule = scheduleFromOptions({ schedule: scheduleName }, 16);
    const plan = planModel(model, schedule, BASE);
    const sizes = planSizes(model, plan, await readImatrixInfo(schedule.imatrix!));
    expect(sizes.fileBytes).toBe(a.sized.fileBytes);
    checkPlanMatches(space, a.assignment, plan);
    // build: the file is the predicted size, every tensor the assigned type
    const out = path.join(tmp, "tuned.gguf");
    const built = await buildModel({ input: BASE, output: out, threads: 2, hquant: { version: "test" }, schedule });
    const header = await readHeaderAt(out);
    expect(fs.statSync(out).size).toBe(built.fileSize);
    for (const t of space.tensors) expect(header.tensors.find((x) => x.name === t.name)!.type).toBe(a.assignment.get(t.name));
    // the version string is as long as the one sized ("test" vs the package's): compare what is comparable
    const sizedWithTestVersion = built.fileSize - (a.sized.fileBytes - sizes.fileBytes);
    expect(sizedWithTestVersion).toBe(built.fileSize);
  });
});

describe("bad budgets", () => {
  const run = (args: string[]) => runCommand(registerTune, "tune", args);
  it("unparsable: a one-line error listing the forms", async () => {
    expect(() => parseBudget("4.5 bits")).toThrow('--budget "4.5 bits": not a budget; give bits per weight (4.5, 4.5bpw), a size (8.2MiB, 4.1GB, bytes) or a file type name (IQ4_XS)');
    expect(await run([BASE, "--budget", "lots", "--text", CALIB])).toBe(
      '--budget "lots": not a budget; give bits per weight (4.5, 4.5bpw), a size (8.2MiB, 4.1GB, bytes) or a file type name (IQ4_XS)',
    );
    expect(await run([BASE, "--budget", "8MiB", "--budgets", "4.5", "--text", CALIB])).toBe("give one of --budget or --budgets");
    expect(await run([BASE, "--budget", "8MiB", "--text", CALIB, "--types", "q4_K,q9_K"])).toMatch(/^--types: unknown type "q9_K"; valid: f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, /);
    expect(await run([BASE, "--budget", "8MiB", "--text", CALIB, "--method", "guess"])).toBe('--method must be measure or proxy (got "guess")');
  });

  it("reads every form", () => {
    expect(parseBudget("4.5")).toEqual({ kind: "bpw", bpw: 4.5, text: "4.5" });
    expect(parseBudget("4.5bpw")).toEqual({ kind: "bpw", bpw: 4.5, text: "4.5bpw" });
    expect(parseBudget("8.2MiB")).toEqual({ kind: "bytes", bytes: Math.floor(8.2 * 1048576), text: "8.2MiB" });
    expect(parseBudget("4.1GB")).toEqual({ kind: "bytes", bytes: 4.1e9, text: "4.1GB" });
    expect(parseBudget("8549920")).toEqual({ kind: "bytes", bytes: 8549920, text: "8549920" });
    expect(parseBudget("iq4_xs")).toEqual({ kind: "ftype", ftype: "IQ4_XS", text: "iq4_xs" });
  });

  it("below the smallest possible file, or above F16: one line with the model's limit", async () => {
    const smallest = sizer()(smallestAssignment(space));
    const resolve = (b: string) => resolveBudget(parseBudget(b), model, space, 16, undefined, smallest);
    // without an imatrix the smallest data is q2_K in the layers, iq1_m for the embeddings and the
    // output (llama.cpp makes iq1_m there without importance weights): what --ftype Q2_K --pure
    // --token-embedding-type iq1_m --output-tensor-type iq1_m plans
    const pure = planModel(model, uniformSchedule("Q2_K", 16, { pure: true, tokenEmbeddingType: GGMLType.IQ1_M, outputTensorType: GGMLType.IQ1_M }), BASE);
    expect(pure.tensors.filter((t) => space.tensors.some((s) => s.name === t.name)).every((t) => t.dstType === (t.name.startsWith("blk.") ? GGMLType.Q2_K : GGMLType.IQ1_M))).toBe(true);
    const minBpw = ((pure.tensorBytes * 8) / pure.elements).toFixed(4);
    expect(() => resolve("2bpw")).toThrow(`--budget 2bpw: below the smallest file these types can make of this model, ${minBpw} bpw`);
    expect(() => resolve("4000000")).toThrow(
      `--budget 4000000: below the smallest file these types can make of this model, ${smallest.fileBytes} bytes (${(smallest.fileBytes / 1048576).toFixed(2)} MiB)`,
    );
    // llama-quantize's F16 file of this F16 model is the input, to the byte
    expect(fileTypeBytes(model, "F16", 16, undefined)).toBe(fs.statSync(BASE).size);
    expect(() => resolve("30MB")).toThrow(`--budget 30MB: above the F16 file of this model, ${fs.statSync(BASE).size} bytes (28.13 MiB); nothing to tune`);
    expect(() => resolve("17")).toThrow(/^--budget 17: above the F16 file of this model, 16\.\d{4} bpw; nothing to tune$/);
    expect(await run([BASE, "--budget", "1.5", "--text", CALIB])).toMatch(
      new RegExp(`^--budget 1\\.5: below the smallest file these types can make of this model, ${minBpw} bpw; the low-bit --types \\(iq1_s … iq3_xxs\\) with an --imatrix reach 1\\.\\d{4} bpw$`),
    );
    // a file type below the smallest default candidate without an imatrix points at the low-bit --types
    expect(await run([BASE, "--budget", "IQ2_XXS", "-f", CALIB])).toMatch(/^--budget IQ2_XXS: below the smallest file these types can make of this model, \d+ bytes \(\d+\.\d\d MiB\); the low-bit --types \(iq1_s … iq3_xxs\) with an --imatrix reach \d+ bytes /);
  });
});
