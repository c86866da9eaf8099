// `hquant plan` on the bundled model, and the planner against the live llama.cpp (llama_model_quantize
// of the prebuilt libllama): same tensor types and offsets, and — metadata sized as llama.cpp writes
// it — the same output file size to the byte, on the benchmark model and on synthetic GQA/MoE models.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { main } from "../src/cli/main.js";
import { openModel } from "../src/gguf/reader.js";
import { outputFileSize } from "../src/gguf/writer.js";
import { outputMetadata, outputTensors } from "../src/plan/metadata.js";
import { listPresets } from "../src/plan/options.js";
import { planModel } from "../src/plan/planner.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { llamaQuantize, oracleReadHeader } from "./oracle/llama.js";

const MODEL = "models/tinyllama-16l-f16.gguf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-plan-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(["node", "hquant", ...args]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe("hquant plan", () => {
  it("prints the grid, the type table and the sizes for --preset Q4_K_H", async () => {
    const { code, out } = await run(["plan", MODEL, "--preset", "Q4_K_H"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^models\/tinyllama-16l-f16\.gguf: llama, 16 layers, \d+ tensors$/m);
    expect(out).toMatch(/^0 +Q4_K_M /m);
    expect(out).toMatch(/^15 +Q6_K /m);
    expect(out).toMatch(/^output file: \d+ bytes/m);
    expect(out).toMatch(/^bits per weight: \d+\.\d{4}$/m);
  });

  it("--json agrees with the planner and sizes the file from header + data", async () => {
    const { code, out } = await run(["plan", MODEL, "--preset", "Q4_K_H", "--json"]);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.layers).toBe(16);
    expect(j.schedule.layerFtypes[0]).toBe("Q4_K_M");
    expect(j.schedule.layerFtypes[15]).toBe("Q6_K");
    const last = j.tensors.at(-1);
    expect(j.fileBytes).toBeGreaterThanOrEqual(j.headerBytes + last.offset + last.bytes);
    expect(j.fileBytes - j.headerBytes - last.offset - last.bytes).toBeLessThan(32);
    expect(j.tensors.find((t: { name: string }) => t.name === "token_embd.weight").dstType).toBe("q4_K");
    expect(j.tensors.find((t: { name: string }) => t.name === "output.weight").dstType).toBe("q6_K");
  });

  it("user errors are one line", async () => {
    const bad = await run(["plan", MODEL, "--preset", "Q4_K_Z"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe(`hquant: unknown preset "Q4_K_Z"; valid: ${listPresets().join(", ")}\n`);
    const none = await run(["plan", MODEL]);
    expect(none.err).toBe("hquant: one of --preset, --schedule, --ftype or --layer-types is required\n");
    const badType = await run(["plan", MODEL, "--ftype", "Q4_K_M", "--tensor-type", "attn_q=q9_k"]);
    expect(badType.err).toBe(
      'hquant: --tensor-type attn_q=q9_k: unknown tensor type "q9_k"; valid: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, ' +
        "iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, tq1_0, tq2_0, mxfp4, nvfp4, q1_0, q2_0\n",
    );
    const lowBit = await run(["plan", MODEL, "IQ2_XXS"]);
    expect([lowBit.code, lowBit.err]).toEqual([1, "hquant: blk.0.attn_k.weight: type iq2_xxs (file type IQ2_XXS) needs an importance matrix (--imatrix)\n"]);
    const nvfp4 = await run(["plan", MODEL, "--ftype", "nvfp4"]);
    expect([nvfp4.code, nvfp4.err]).toEqual([
      1,
      "hquant: --ftype: file type NVFP4 (llama_ftype 39): llama.cpp v0.4.0 has no default tensor type for it and refuses it; name nvfp4 tensors with --tensor-type instead\n",
    ]);
    const badRe = await run(["plan", MODEL, "--ftype", "Q4_K_M", "--tensor-type", "attn_(q=f16"]);
    expect(badRe.err).toBe('hquant: --tensor-type attn_(q=f16: bad regular expression "attn_(q" (missing \')\' at position 7)\n');
  });

  it("reads a schedule file holding only a LAYER_TYPES array", async () => {
    const file = path.join(tmp, "layers.json");
    fs.writeFileSync(file, JSON.stringify(Array.from({ length: 16 }, (_, i) => [i, i < 8 ? "Q4_K_M" : "Q5_K_S"])));
    const { code, out } = await run(["plan", MODEL, "--schedule", file, "--json"]);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.schedule.layerFtypes).toEqual(Array.from({ length: 16 }, (_, i) => (i < 8 ? "Q4_K_M" : "Q5_K_S")));
    const wrong = path.join(tmp, "wrong.json");
    fs.writeFileSync(wrong, JSON.stringify([[0, "Q4_K_M"], [1, "Q4_K_M"]]));
    const w = await run(["plan", MODEL, "--schedule", wrong]);
    expect(w.err).toBe(
      `hquant: ${wrong}: layers: the schedule lists 2 layers (0-1) but the model has 16; use depth entries or set "resample": true\n`,
    );
  });
});

// --- against llama.cpp itself -------------------------------------------------------------------

async function compareWithLlama(input: string, ftype: FileTypeName, extra: Parameters<typeof llamaQuantize>[2] = { ftype }) {
  const model = await openModel(input);
  const nLayer = mixtureHParams(model.kv).nLayer;
  const plan = planModel(model, uniformSchedule(ftype, nLayer));
  const out = path.join(tmp, `${path.basename(input)}-${ftype}.gguf`);
  llamaQuantize(input, out, { ...extra, ftype, threads: 2 });
  const ref = oracleReadHeader(out);
  expect(plan.tensors.map((t) => [t.name, t.dstType, t.offset])).toEqual(ref.tensors.map((t) => [t.name, t.type, t.offset]));
  expect(plan.fileType.id).toBe(ref.fileType);
  // llama.cpp's metadata is ours without the hquant.* keys: the size must match to the byte
  expect(outputFileSize(outputMetadata(model.kv, plan), outputTensors(plan))).toBe(fs.statSync(out).size);
  fs.rmSync(out);
}

describe("planner == llama_model_quantize (live)", () => {
  it("bundled tinyllama: Q4_K_M, Q3_K_M", async () => {
    await compareWithLlama(MODEL, "Q4_K_M");
    await compareWithLlama(MODEL, "Q3_K_M");
  });

  it("synthetic GQA llama and 8-expert MoE: Q4_K_M, Q2_K, IQ4_XS", async () => {
    const gqa = await makeModel({ ...SMALL_LLAMA, nLayer: 9, nEmbd: 256, nHead: 8, nHeadKv: 2, nFf: 256, nVocab: 64 });
    const moe = await makeModel({ ...SMALL_LLAMA, nLayer: 4, nEmbd: 256, nHead: 4, nHeadKv: 4, nFf: 256, nVocab: 64, nExpert: 8, nExpertUsed: 2 });
    for (const f of ["Q4_K_M", "Q2_K", "IQ4_XS"] as const) {
      await compareWithLlama(gqa, f);
      await compareWithLlama(moe, f);
    }
  });
});
