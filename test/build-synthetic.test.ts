// Byte identity with llama.cpp beyond the bundled model: synthetic models from the factory (GQA
// llama in BF16 and F32, a qwen3 MoE whose 3-D expert tensors get one importance slice per expert,
// row lengths that force llama.cpp's shape fallbacks), and the Q4_K_H hybrid, which llama.cpp
// reproduces when given every tensor's type as a --tensor-type override.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { GGMLType } from "../src/gguf/ggml-types.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { scheduleFromOptions } from "../src/plan/options.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { firstDifference, MODEL } from "./build-util.js";
import { makeLegacyImatrix, makeModel, SMALL_LLAMA, type FactoryOptions } from "./factory.js";
import { llamaQuantize } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-synthetic-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A legacy .dat imatrix with seeded positive values for every matrix but token_embd. */
const syntheticImatrix = (model: string, seed: number) => makeLegacyImatrix(model, seed, path.join(tmp, `imatrix-${seed}.dat`));

async function expectSame(model: string, tag: string, ftype: FileTypeName, opts: { imatrix?: string; tensorTypes?: [string, string][]; schedule?: Parameters<typeof buildModel>[0]["schedule"] } = {}) {
  const ref = path.join(tmp, `${tag}.llama.gguf`);
  const ours = path.join(tmp, `${tag}.hquant.gguf`);
  llamaQuantize(model, ref, { ftype, threads: 2, imatrixFile: opts.imatrix, tensorTypes: opts.tensorTypes });
  await buildModel({
    input: model,
    output: ours,
    pool,
    imatrix: opts.imatrix,
    schedule: opts.schedule ?? ((m) => uniformSchedule(ftype, mixtureHParams(m.kv).nLayer)),
  });
  const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
  expect(same, same ? "" : `${tag}: ${firstDifference(ref, ours)}`).toBe(true);
}

const GQA_BF16: FactoryOptions = { ...SMALL_LLAMA, nLayer: 3, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 512, nVocab: 320, dtype: "bf16", seed: 3, dir: tmp };
// rows of 96: no k-quant fits, llama.cpp falls back to Q5_0/Q8_0/… per tensor
const ODD_ROWS_F32: FactoryOptions = { ...SMALL_LLAMA, nLayer: 2, nEmbd: 96, nHead: 2, nHeadKv: 1, nFf: 288, nVocab: 200, dtype: "f32", seed: 5, dir: tmp };
const QWEN3_MOE: FactoryOptions = { ...SMALL_LLAMA, arch: "qwen3", nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 256, nVocab: 300, nExpert: 4, dtype: "f16", seed: 9, dir: tmp };

describe("synthetic models", () => {
  for (const ftype of ["Q4_K_M", "Q3_K_S", "IQ4_XS"] as const) {
    it(`llama GQA BF16 ${ftype}, with and without imatrix`, async () => {
      const model = await makeModel(GQA_BF16);
      await expectSame(model, `gqa-${ftype}`, ftype);
      await expectSame(model, `gqa-${ftype}-imat`, ftype, { imatrix: await syntheticImatrix(model, 21) });
    });
  }

  it("F32 rows that fit no k-quant (shape fallbacks), Q4_K_M and Q6_K with imatrix", async () => {
    const model = await makeModel(ODD_ROWS_F32);
    const imatrix = await syntheticImatrix(model, 22);
    await expectSame(model, "odd-q4km", "Q4_K_M", { imatrix });
    await expectSame(model, "odd-q6k", "Q6_K", { imatrix });
  });

  it("qwen3 MoE: 3-D expert tensors with one importance slice per expert", async () => {
    const model = await makeModel(QWEN3_MOE);
    const imatrix = await syntheticImatrix(model, 23);
    await expectSame(model, "moe-q4km-imat", "Q4_K_M", { imatrix });
    await expectSame(model, "moe-q2k-imat", "Q2_K", { imatrix });
    await expectSame(model, "moe-q5km", "Q5_K_M");
  });
});

describe("hybrid", () => {
  it("Q4_K_H equals llama.cpp given the same per-tensor types as overrides", async () => {
    const schedule = (m: { kv: Parameters<typeof mixtureHParams>[0] }) => scheduleFromOptions({ preset: "Q4_K_H" }, mixtureHParams(m.kv).nLayer);
    const plan = await buildModel({ input: MODEL, output: path.join(tmp, "plan-only.gguf"), pool, schedule }).then((r) => r.plan);
    fs.rmSync(path.join(tmp, "plan-only.gguf"));
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const tensorTypes = plan.tensors
      .filter((t) => t.srcType !== t.dstType)
      .map((t): [string, string] => [`^${escape(t.name)}$`, GGMLType[t.dstType]!.toLowerCase()]);
    expect(new Set(tensorTypes.map(([, type]) => type)).size).toBeGreaterThan(2);
    await expectSame(MODEL, "q4kh", plan.schedule.ftype, { tensorTypes, schedule });
  });
});
