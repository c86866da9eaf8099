// llama-quantize's conventions, with the same meaning: `IN OUT TYPE [NTHREADS]`, the Q4_K-style
// aliases and numeric file types, COPY, --override-kv, --include-weights / --exclude-weights,
// --keep-split and --prune-layers; checked byte for byte against llama_model_quantize where the
// library has the option. `plan` takes every build option; errors name the option typed.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { createGGUFOutput } from "../src/gguf/split.js";
import { kvValue, findKV, GGUFValueType } from "../src/gguf/model.js";
import { IMATRIX_GGUF, MODEL, firstDifference } from "./build-util.js";
import { hquantAsync } from "./cli-util.js";
import { llamaQuantize, oracleLoadImatrix } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-lq-cli-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const PKG_VERSION = (JSON.parse(fs.readFileSync(path.resolve(__dirname, "../package.json"), "utf8")) as { version: string }).version;

function ok(r: Awaited<ReturnType<typeof hquantAsync>>): Awaited<ReturnType<typeof hquantAsync>> {
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r;
}

function expectSameFile(ref: string, ours: string): void {
  const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
  expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
}

describe("file types as llama-quantize takes them", () => {
  it("positional TYPE and NTHREADS, the Q4_K alias and the numeric id all give the --ftype build", async () => {
    const named = path.join(tmp, "named.gguf");
    ok(await hquantAsync("build", MODEL, named, "--ftype", "Q4_K_M", "-t", "2", "--quiet"));
    for (const [i, type] of ["Q4_K", "q4_k_m", "15"].entries()) {
      const out = path.join(tmp, `positional-${i}.gguf`);
      ok(await hquantAsync("build", MODEL, out, type, "2", "--quiet"));
      expect(fs.readFileSync(out).equals(fs.readFileSync(named))).toBe(true);
    }
  });

  it("a preset name is a TYPE too; giving the type twice is an error", async () => {
    const plan = ok(await hquantAsync("plan", MODEL, "Q4_K_H", "--json"));
    expect((JSON.parse(plan.stdout) as { schedule: { name: string } }).schedule.name).toBe("Q4_K_H");
    const r = await hquantAsync("build", MODEL, path.join(tmp, "twice.gguf"), "Q4_K_M", "--ftype", "Q6_K");
    expect(r.stderr).toBe("hquant: the file type is given twice (Q4_K_M and --ftype)\n");
    expect(r.code).toBe(1);
    const bad = await hquantAsync("build", MODEL, path.join(tmp, "bad.gguf"), "Q9_K");
    expect(bad.stderr).toBe(`hquant: "Q9_K" is neither a file type nor a preset (see hquant build --help)\n`);
  });

  it("--version prints the package's version", async () => {
    expect(ok(await hquantAsync("--version")).stdout).toBe(`${PKG_VERSION}\n`);
  });

  it("COPY: the same bytes as llama_model_quantize's only_copy", async () => {
    const ref = path.join(tmp, "copy.llama.gguf");
    const ours = path.join(tmp, "copy.hquant.gguf");
    llamaQuantize(MODEL, ref, { ftype: "F32", onlyCopy: true, threads: 2 });
    ok(await hquantAsync("build", MODEL, ours, "COPY", "--quiet", "--override-kv", "hquant.version=str:x"));
    // without hquant.* keys: a library build with hquant: false
    const { build } = await import("../src/index.js");
    const plain = path.join(tmp, "copy.plain.gguf");
    await build({ input: MODEL, output: plain, schedule: { ftype: "COPY" }, hquant: false });
    expectSameFile(ref, plain);
    expect(kvValue((await openModel(ours)).kv, "general.file_type")).toBe(1);
  });
});

describe("--override-kv, --include-weights, --exclude-weights: llama_model_quantize's bytes", () => {
  it("int, float, bool and str overrides, set before the quantize.imatrix.* keys", async () => {
    const ref = path.join(tmp, "kv.llama.gguf");
    const ours = path.join(tmp, "kv.hquant.gguf");
    llamaQuantize(MODEL, ref, {
      ftype: "Q4_K_M",
      threads: 2,
      imatrixFile: IMATRIX_GGUF,
      kvOverrides: [
        { key: "general.name", type: "str", value: "renamed" },
        { key: "llama.context_length", type: "int", value: -4096 },
        { key: "test.scale", type: "float", value: 0.1 },
        { key: "test.flag", type: "bool", value: true },
      ],
    });
    const { build } = await import("../src/index.js");
    const { parseKvOverride } = await import("../src/plan/kv-override.js");
    await build({
      input: MODEL,
      output: ours,
      hquant: false,
      schedule: { ftype: "Q4_K_M", imatrix: IMATRIX_GGUF },
      overrides: ["general.name=str:renamed", "llama.context_length=int:-4096", "test.scale=float:0.1", "test.flag=bool:true"].map(parseKvOverride),
    });
    expectSameFile(ref, ours);
    const kv = (await openModel(ours)).kv;
    expect(findKV(kv, "llama.context_length")).toEqual({ key: "llama.context_length", type: GGUFValueType.UINT32, value: 4096 });
    // the CLI sizes it exactly
    const plan = ok(await hquantAsync("plan", MODEL, "Q4_K_M", "--imatrix", IMATRIX_GGUF, "--override-kv", "general.name=str:renamed", "--override-kv", "test.flag=bool:true", "--json"));
    const built = path.join(tmp, "kv.cli.gguf");
    ok(await hquantAsync("build", MODEL, built, "Q4_K_M", "--imatrix", IMATRIX_GGUF, "--override-kv", "general.name=str:renamed", "--override-kv", "test.flag=bool:true", "--quiet"));
    expect(fs.statSync(built).size).toBe((JSON.parse(plan.stdout) as { fileBytes: number }).fileBytes);
  });

  it("bad overrides are one-line errors naming the option", async () => {
    const out = path.join(tmp, "kv-bad.gguf");
    expect((await hquantAsync("build", MODEL, out, "Q8_0", "--override-kv", "general.name")).stderr).toBe(
      "hquant: --override-kv general.name: expected KEY=TYPE:VALUE (TYPE int, float, bool or str)\n",
    );
    expect((await hquantAsync("build", MODEL, out, "Q8_0", "--override-kv", "a=bool:yes")).stderr).toBe("hquant: --override-kv a=bool:yes: a bool is true or false\n");
    expect((await hquantAsync("build", MODEL, out, "Q8_0", "--override-kv", "a=list:1")).stderr).toBe(`hquant: --override-kv a=list:1: unknown type "list"; valid: int, float, bool, str\n`);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.each([
    ["include", ["attn_v", "ffn_down"]],
    ["exclude", ["ffn_"]],
  ])("--%s-weights filters the imatrix as prepare_imatrix does", async (mode, names) => {
    const loaded = oracleLoadImatrix(IMATRIX_GGUF);
    const kept = new Map(
      [...loaded.vectors].filter(([n]) => (mode === "include" ? names.some((x) => n.includes(x)) : !names.some((x) => n.includes(x)))),
    );
    expect(kept.size).toBeGreaterThan(0);
    expect(kept.size).toBeLessThan(loaded.vectors.size);
    const ref = path.join(tmp, `${mode}.llama.gguf`);
    llamaQuantize(MODEL, ref, {
      ftype: "Q4_K_M",
      threads: 2,
      imatrix: kept,
      kvOverrides: [
        { key: "quantize.imatrix.file", type: "str", value: IMATRIX_GGUF },
        { key: "quantize.imatrix.dataset", type: "str", value: loaded.datasets[0]! },
        { key: "quantize.imatrix.entries_count", type: "int", value: kept.size },
        { key: "quantize.imatrix.chunks_count", type: "int", value: loaded.chunkCount },
      ],
    });
    const ours = path.join(tmp, `${mode}.hquant.gguf`);
    const { build } = await import("../src/index.js");
    const result = await build({
      input: MODEL,
      output: ours,
      hquant: false,
      schedule: { ftype: "Q4_K_M", imatrix: IMATRIX_GGUF },
      ...(mode === "include" ? { includeWeights: names } : { excludeWeights: names }),
    });
    expectSameFile(ref, ours);
    expect(result.imatrix).toMatchObject({ entries: kept.size, used: kept.size, unused: 0 });
  });

  it("--include-weights with --exclude-weights, or without an imatrix, is refused", async () => {
    const out = path.join(tmp, "iw.gguf");
    expect((await hquantAsync("build", MODEL, out, "Q8_0", "--imatrix", IMATRIX_GGUF, "--include-weights", "a", "--exclude-weights", "b")).stderr).toBe(
      "hquant: --include-weights and --exclude-weights cannot be used together\n",
    );
    expect((await hquantAsync("plan", MODEL, "Q8_0", "--include-weights", "attn")).stderr).toBe("hquant: --include-weights and --exclude-weights need an importance matrix (--imatrix)\n");
  });
});

describe("--keep-split and --prune-layers", () => {
  let shards: string[];
  beforeAll(async () => {
    const src = await openModel(MODEL);
    const out = await createGGUFOutput(path.join(tmp, "in.gguf"), src.kv, src.tensors, { splitMaxTensors: 50 });
    const reader = new TensorReader(src);
    for (const t of src.tensors) await out.writeTensor(await reader.read(t, 0, t.bytes));
    await reader.close();
    await out.finish();
    shards = out.paths;
    expect(shards.length).toBe(3);
  });

  it("--keep-split: one output shard per input shard, the same bytes as llama_model_quantize", async () => {
    const refPrefix = path.join(tmp, "ks-llama");
    llamaQuantize(shards[0]!, refPrefix, { ftype: "Q4_K_M", threads: 2, keepSplit: true });
    const { build } = await import("../src/index.js");
    const result = await build({ input: shards[0]!, output: path.join(tmp, "ks-hquant.gguf"), keepSplit: true, hquant: false, schedule: { ftype: "Q4_K_M" } });
    expect(result.outputs).toEqual([1, 2, 3].map((i) => path.join(tmp, `ks-hquant-0000${i}-of-00003.gguf`)));
    result.outputs.forEach((ours, i) => expectSameFile(`${refPrefix}-0000${i + 1}-of-00003.gguf`, ours));
  });

  it("--prune-layers removes layers as a surgery delete (plan and build agree)", async () => {
    const plan = ok(await hquantAsync("plan", MODEL, "Q4_K_M", "--prune-layers", "3,4", "--json"));
    const planned = JSON.parse(plan.stdout) as { fileBytes: number; tensors: unknown[] };
    expect(planned.tensors.length).toBe(147 - 2 * 9);
    const out = path.join(tmp, "pruned.gguf");
    ok(await hquantAsync("build", MODEL, out, "Q4_K_M", "--prune-layers", "3,4", "--quiet"));
    expect(fs.statSync(out).size).toBe(planned.fileBytes);
    expect((await hquantAsync("plan", MODEL, "Q4_K_M", "--prune-layers", "3,x")).stderr).toBe(`hquant: --prune-layers: "3,x" is not a comma-separated list of layer numbers\n`);
  });
});

describe("plan takes every build option; one naming across commands", () => {
  it("a build command line re-runs as a plan", async () => {
    const out = path.join(tmp, "replan.gguf");
    const args = [MODEL, out, "Q4_K_M", "2", "--allow-requantize", "--split-max-size", "4M", "--quiet", "--imatrix", IMATRIX_GGUF, "--exclude-weights", "output"];
    const r = ok(await hquantAsync("plan", ...args, "--json"));
    expect(JSON.parse(r.stdout)).toMatchObject({ fileBytes: expect.any(Number) });
    ok(await hquantAsync("plan", ...args));
    expect(fs.existsSync(out)).toBe(false);
  });

  it("--json FILE writes the summary into a file (build, plan, inspect)", async () => {
    const json = path.join(tmp, "plan.json");
    ok(await hquantAsync("plan", MODEL, "Q8_0", "--quiet", "--json", json));
    const stdoutJson = ok(await hquantAsync("plan", MODEL, "Q8_0", "--json")).stdout;
    expect(fs.readFileSync(json, "utf8")).toBe(stdoutJson);
    const inspectJson = path.join(tmp, "inspect.json");
    ok(await hquantAsync("inspect", MODEL, "--json", inspectJson));
    expect(JSON.parse(fs.readFileSync(inspectJson, "utf8"))).toMatchObject({ tensorCount: 147 });
  });

  it("errors name the option the user typed", async () => {
    expect((await hquantAsync("plan", MODEL, "Q4_K_M", "--token-embedding-type", "Q9")).stderr).toMatch(/^hquant: --token-embedding-type: unknown tensor type "Q9"; valid: /);
    expect((await hquantAsync("plan", MODEL, "Q4_K_M", "--output-tensor-type", "Q9")).stderr).toMatch(/^hquant: --output-tensor-type: unknown tensor type "Q9"; valid: /);
    expect((await hquantAsync("build", MODEL, path.join(tmp, "x.gguf"), "Q4_K_M", "--split-max-tensors", "0")).stderr).toBe(`hquant: --split-max-tensors: "0" is not a positive integer\n`);
  });
});
