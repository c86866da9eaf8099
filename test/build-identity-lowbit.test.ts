// Whole-file identity with llama_model_quantize for the low-bit file types: tiny synthetic GQA and
// MoE models, every low-bit file type with an imatrix and, where llama.cpp allows it, without (the
// MoE ones only with HQUANT_LOWBIT_FULL=1); the bundled model for IQ2_M with an imatrix
// (HQUANT_LOWBIT_FULL=1: every run, minutes). `hquant build` must write llama.cpp's file byte for byte.
// Also: the one-line refusals (low-bit file type without imatrix, imatrix missing an entry),
// requantizing from a low-bit file (--allow-requantize), and `inspect` of one.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { UserError } from "../src/errors.js";
import { typeName } from "../src/gguf/ggml-types.js";
import { inspectModel } from "../src/gguf/inspect.js";
import { openModel, readHeaderAt } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { build } from "../src/index.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { planModel } from "../src/plan/planner.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { firstDifference } from "./build-util.js";
import { makeModel, syntheticImatrix, SMALL_LLAMA, type FactoryOptions } from "./factory.js";
import { BUNDLED_IMATRIX, BUNDLED_MODEL, LOWBIT_FILE_TYPES } from "./lowbit-models.js";
import { llamaQuantize, oracleLoadImatrix } from "./oracle/llama.js";

const FULL = process.env.HQUANT_LOWBIT_FULL === "1";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-lowbit-identity-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** llama.cpp makes these without an imatrix (no tensor of theirs needs one). */
const PLAIN_OK: FileTypeName[] = ["IQ3_S", "IQ3_M", "TQ1_0", "TQ2_0", "MXFP4_MOE", "Q1_0", "Q2_0"];

const TINY_GQA: FactoryOptions = { ...SMALL_LLAMA, nLayer: 2, nEmbd: 256, nHead: 8, nHeadKv: 2, nFf: 384, nVocab: 32, tied: false, seed: 141, dir: tmp };
const TINY_MOE: FactoryOptions = { ...SMALL_LLAMA, arch: "qwen3", nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 2, nFf: 256, nVocab: 32, nExpert: 4, seed: 142, dir: tmp };

function scheduleFor(model: { kv: Parameters<typeof mixtureHParams>[0] }, ftype: FileTypeName, imatrix?: string) {
  return uniformSchedule(ftype, mixtureHParams(model.kv).nLayer, imatrix ? { imatrix } : {});
}

/** llama.cpp's file against hquant's, byte for byte. */
async function expectLowbitSameAsLlama(input: string, ftype: FileTypeName, tag: string, imatrix?: string): Promise<void> {
  const ref = path.join(tmp, `${tag}.llama.gguf`);
  const ours = path.join(tmp, `${tag}.hquant.gguf`);
  try {
    llamaQuantize(input, ref, { ftype, threads: 2, imatrixFile: imatrix });
    await buildModel({ input, output: ours, pool, imatrix, schedule: (m) => scheduleFor(m, ftype, imatrix) });
    const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
    expect(same, same ? "" : `${tag}: ${firstDifference(ref, ours)}`).toBe(true);
  } finally {
    fs.rmSync(ref, { force: true });
    fs.rmSync(ours, { force: true });
  }
}

interface IdentityRun {
  ftype: FileTypeName;
  imatrix: boolean;
}
/** every low-bit file type with an imatrix, and without where llama.cpp allows it */
const ALL_RUNS: IdentityRun[] = LOWBIT_FILE_TYPES.flatMap((ftype) => [
  { ftype, imatrix: true },
  ...(PLAIN_OK.includes(ftype) ? [{ ftype, imatrix: false }] : []),
]);

const models: { label: string; make: () => Promise<{ model: string; imatrix: string }>; runs: IdentityRun[] }[] = [
  {
    label: "tiny GQA 4",
    make: async () => {
      const model = await makeModel(TINY_GQA);
      return { model, imatrix: await syntheticImatrix(model, 141, tmp) };
    },
    runs: ALL_RUNS,
  },
  {
    label: "tiny MoE 4 experts",
    make: async () => {
      const model = await makeModel(TINY_MOE);
      return { model, imatrix: await syntheticImatrix(model, 142, tmp) };
    },
    runs: FULL ? ALL_RUNS : ALL_RUNS.filter((r) => r.imatrix),
  },
  {
    label: "bundled",
    make: async () => ({ model: BUNDLED_MODEL, imatrix: BUNDLED_IMATRIX }),
    runs: FULL ? ALL_RUNS : [{ ftype: "IQ2_M", imatrix: true }],
  },
];

for (const m of models) {
  describe(`hquant build = llama_model_quantize, low-bit file types, ${m.label}`, () => {
    let files: { model: string; imatrix: string };
    beforeAll(async () => {
      files = await m.make();
    });
    for (const run of m.runs) {
      it(`${run.ftype}${run.imatrix ? " imatrix" : " without imatrix"}`, async () => {
        const tag = `${m.label.replace(/\W+/g, "-")}-${run.ftype}${run.imatrix ? "-imat" : ""}`;
        await expectLowbitSameAsLlama(files.model, run.ftype, tag, run.imatrix ? files.imatrix : undefined);
      }, 120_000);
    }
  });
}

describe("low-bit refusals, requantizing and inspect", () => {
  let model: string;
  let imatrix: string;
  beforeAll(async () => {
    model = await makeModel(TINY_GQA);
    imatrix = await syntheticImatrix(model, 141, tmp);
  });

  const refused = async (output: string, o: { ftype: FileTypeName; imatrix?: string; excludeWeights?: string[] }) => {
    const err = await buildModel({ input: model, output, pool, imatrix: o.imatrix, excludeWeights: o.excludeWeights, schedule: (m) => scheduleFor(m, o.ftype, o.imatrix) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(fs.existsSync(output)).toBe(false);
    return (err as Error).message;
  };

  it("a low-bit file type without an imatrix: llama.cpp and hquant refuse, naming the same tensor", async () => {
    for (const ftype of LOWBIT_FILE_TYPES.filter((f) => !PLAIN_OK.includes(f))) {
      expect(() => llamaQuantize(model, path.join(tmp, "refused.llama.gguf"), { ftype, threads: 1 })).toThrow(/offending tensor: blk\.0\.attn_k\.weight/);
      const plan = planModel(await readHeaderAt(model), scheduleFor(await readHeaderAt(model), ftype));
      const first = plan.tensors.find((t) => t.requiresImatrix)!;
      expect(first.name).toBe("blk.0.attn_k.weight");
      expect(await refused(path.join(tmp, "refused.gguf"), { ftype })).toBe(
        `blk.0.attn_k.weight: type ${typeName(first.dstType)} (file type ${ftype}) needs an importance matrix (--imatrix)`,
      );
    }
  });

  it("an imatrix without the entry of a tensor that needs one: llama.cpp and hquant refuse", async () => {
    const vectors = oracleLoadImatrix(imatrix).vectors;
    vectors.delete("blk.1.attn_q.weight");
    expect(() => llamaQuantize(model, path.join(tmp, "missing.llama.gguf"), { ftype: "IQ2_XS", threads: 1, imatrix: vectors })).toThrow(
      /Missing importance matrix for tensor blk\.1\.attn_q\.weight in a very low-bit quantization/,
    );
    expect(await refused(path.join(tmp, "missing.gguf"), { ftype: "IQ2_XS", imatrix, excludeWeights: ["blk.1.attn_q.weight"] })).toBe(
      `${imatrix}: no entry for tensor blk.1.attn_q.weight, which type iq2_xs (file type IQ2_XS) needs`,
    );
  });

  // a low-bit file from llama.cpp, requantized to Q4_K_M: needs the dequantize kernels of its types
  for (const ftype of ["IQ3_S", "TQ2_0", "Q2_0", "MXFP4_MOE"] as const) {
    it(`--allow-requantize from a ${ftype} file`, async () => {
      const low = path.join(tmp, `${ftype}.src.gguf`);
      const ref = path.join(tmp, `${ftype}.requant.llama.gguf`);
      const ours = path.join(tmp, `${ftype}.requant.hquant.gguf`);
      llamaQuantize(model, low, { ftype, threads: 2 });
      llamaQuantize(low, ref, { ftype: "Q4_K_M", threads: 2, allowRequantize: true });
      await buildModel({ input: low, output: ours, pool, allowRequantize: true, schedule: (m) => scheduleFor(m, "Q4_K_M") });
      const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
      expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
      // and without --allow-requantize, both refuse
      expect(() => llamaQuantize(low, path.join(tmp, "no.llama.gguf"), { ftype: "Q4_K_M", threads: 1 })).toThrow(/requantizing from type \S+ is disabled/);
      for (const f of [low, ref, ours]) fs.rmSync(f, { force: true });
    }, 120_000);
  }

  it("COPY of a low-bit file without general.file_type records the loader's guess as llama.cpp does", async () => {
    const low = path.join(tmp, "copy.IQ3_S.gguf");
    const stripped = path.join(tmp, "copy.IQ3_S.noft.gguf");
    const ref = path.join(tmp, "copy.llama.gguf");
    const ours = path.join(tmp, "copy.hquant.gguf");
    llamaQuantize(model, low, { ftype: "IQ3_S", threads: 2 });
    const h = await readHeaderAt(low);
    const bytes = fs.readFileSync(low);
    const w = await GGUFFileWriter.create(stripped, h.kv.filter((e) => e.key !== "general.file_type"), h.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type })));
    for (const t of h.tensors) await w.writeTensor(bytes.subarray(h.dataOffset + t.offset, h.dataOffset + t.offset + t.bytes));
    await w.finish();
    llamaQuantize(stripped, ref, { ftype: "F32", onlyCopy: true, threads: 1 });
    await build({ input: stripped, output: ours, schedule: { ftype: "COPY" }, hquant: false });
    // iq3_s is the most common type: LLAMA_FTYPE_MOSTLY_IQ3_S (26) marked LLAMA_FTYPE_GUESSED (1024)
    expect((await readHeaderAt(ref)).kv.find((e) => e.key === "general.file_type")!.value).toBe(1050);
    const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
    expect(same, same ? "" : firstDifference(ref, ours)).toBe(true);
    for (const f of [low, stripped, ref, ours]) fs.rmSync(f);
  });

  it("inspect reads a low-bit file llama.cpp wrote: its file type and tensor types", async () => {
    const file = path.join(tmp, "inspect.IQ2_M.gguf");
    llamaQuantize(model, file, { ftype: "IQ2_M", threads: 2, imatrixFile: imatrix });
    const r = inspectModel(await openModel(file));
    expect(r.fileType).toEqual({ id: 29, name: "IQ2_M" });
    const header = await readHeaderAt(file);
    const types = new Set(header.tensors.map((t) => typeName(t.type)));
    expect(types).toEqual(new Set(["f32", "iq2_s", "iq3_s", "iq4_nl", "q4_K", "q5_K"]));
    expect(r.tensorBytes).toBe(header.tensors.reduce((n, t) => n + t.bytes, 0));
    fs.rmSync(file);
  });
});
