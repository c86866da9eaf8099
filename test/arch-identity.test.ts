// Byte identity with llama_model_quantize on every architecture family whose tensor naming or
// hyper-parameters change a mixture rule (test/arch-models.ts), for every file type with and
// without an importance matrix: the same file, or both refuse (hquant with one line). And the
// inputs llama.cpp refuses or aborts on: hquant refuses them with the line the test names.
// llama.cpp runs in child processes (test/oracle/llama-isolated.ts) since it aborts on some inputs.
// The default suite checks a few runs per family byte for byte (the whole sweep's types and sizes
// are checked against llama.cpp's recorded choices by plan-arch-golden.test.ts);
// HQUANT_ARCH_SWEEP=1 runs every family × every file type × {no imatrix, imatrix} here (minutes).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { UserError } from "../src/errors.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { archFamilies, OPTION_RUNS, refusedInputs, resolvedOptions, writeArchModel, type RunOptions } from "./arch-models.js";
import { firstDifference } from "./build-util.js";
import { syntheticImatrix } from "./factory.js";
import { FILE_TYPE_NAMES } from "../src/plan/ftypes.js";
import { llamaQuantizeIsolated, type IsolatedJob, type IsolatedResult } from "./oracle/llama-isolated.js";
import { oracleReadHeader } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-arch-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const SWEEP = process.env.HQUANT_ARCH_SWEEP === "1";
/**
 * The default suite's byte checks per family (types and sizes of the whole sweep are checked at
 * plan level by plan-arch-golden.test.ts): a mixture-heavy k-quant, the imatrix-only Q2_K_S
 * (3-D tensors get one importance slice per expert), and the three option runs.
 */
const DEFAULT_RUNS: { ftype: FileTypeName; imatrix: boolean }[] = [
  { ftype: "Q4_K_M", imatrix: false },
  { ftype: "Q2_K_S", imatrix: true },
];

interface Run {
  ftype: FileTypeName;
  imatrix?: string;
  options: RunOptions;
  tag: string;
}

function runsOf(index: number, imatrix: string): Run[] {
  const plain = SWEEP
    ? FILE_TYPE_NAMES.flatMap((ftype) => [{ ftype, imatrix: false }, { ftype, imatrix: true }])
    : DEFAULT_RUNS;
  return [
    ...plain.map((r) => ({ ftype: r.ftype, imatrix: r.imatrix ? imatrix : undefined, options: {} })),
    ...OPTION_RUNS.map((r) => ({ ...r, imatrix: undefined })),
  ].map((r, i) => ({ ...r, tag: `${index}-${i}-${r.ftype}${r.imatrix ? "-imat" : ""}` }));
}

const families = archFamilies();
/** every family's model, imatrix, runs and llama.cpp's results: one batch of child processes for all */
let prepared: { model: string; runs: Run[]; jobs: IsolatedJob[]; reference: IsolatedResult[] }[] = [];
beforeAll(async () => {
  const setups = await Promise.all(
    families.map(async (family, index) => {
      const model = await writeArchModel(family, tmp, index);
      const runs = runsOf(index, await syntheticImatrix(model, 40 + index, tmp));
      const jobs = runs.map((r) => ({ input: model, output: path.join(tmp, `${r.tag}.llama.gguf`), opts: { ftype: r.ftype, threads: 2, imatrixFile: r.imatrix, ...r.options } }));
      return { model, runs, jobs };
    }),
  );
  const reference = llamaQuantizeIsolated(setups.flatMap((s) => s.jobs));
  let at = 0;
  prepared = setups.map((s) => ({ ...s, reference: reference.slice(at, (at += s.jobs.length)) }));
}, 600_000);

interface Outcome {
  ok: boolean;
  /** llama.cpp's reason, or hquant's message */
  error?: string;
}

async function hquantBuild(input: string, output: string, ftype: FileTypeName, imatrix?: string, options: RunOptions = {}): Promise<Outcome> {
  try {
    await buildModel({ input, output, pool, imatrix, schedule: (m) => uniformSchedule(ftype, mixtureHParams(m.kv, input).nLayer, resolvedOptions(options)) });
    return { ok: true };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { ok: false, error: err.message };
  }
}

/**
 * true when a reader following the output's general.alignment finds other bytes than the input's
 * for a tensor llama.cpp copies unchanged (the F32 norms): its layout does not match the key.
 */
function misplacedData(input: string, output: string): boolean {
  const inHeader = oracleReadHeader(input);
  const outHeader = oracleReadHeader(output);
  const inBytes = fs.readFileSync(input);
  const outBytes = fs.readFileSync(output);
  const kept = outHeader.tensors.filter((t) => t.type === 0);
  return kept.some((t) => {
    const src = inHeader.tensors.find((s) => s.name === t.name)!;
    const a = inBytes.subarray(inHeader.dataOffset + src.offset, inHeader.dataOffset + src.offset + src.size);
    const b = outBytes.subarray(outHeader.dataOffset + t.offset, outHeader.dataOffset + t.offset + t.size);
    return !a.equals(b);
  });
}

describe("every file type on every architecture family: identical to llama_model_quantize, or both refuse", () => {
  families.forEach((family, index) => {
    it(`${family.label} (${family.arch}): ${SWEEP ? "every file type × {no imatrix, imatrix}" : DEFAULT_RUNS.map((r) => r.ftype + (r.imatrix ? " imatrix" : "")).join(", ")}, ${OPTION_RUNS.length} option runs`, async () => {
      const { model, runs, jobs, reference } = prepared[index]!;
      const problems: string[] = [];
      let identical = 0;
      let refused = 0;
      for (const [i, r] of runs.entries()) {
        const ref = jobs[i]!.output;
        const ours = path.join(tmp, `${r.tag}.hquant.gguf`);
        const got = await hquantBuild(model, ours, r.ftype, r.imatrix, r.options);
        const want = reference[i]!;
        const label = `${r.ftype}${r.imatrix ? " imatrix" : ""}${Object.keys(r.options).length ? ` ${JSON.stringify(r.options)}` : ""}`;
        if (want.status === "ok" && got.ok) {
          const same = fs.readFileSync(ref).equals(fs.readFileSync(ours));
          if (same) identical++;
          else problems.push(`${label}: ${firstDifference(ref, ours)}`);
        } else if (want.status === "ok" && !got.ok && got.error!.includes("general.alignment") && misplacedData(model, ref)) {
          // llama.cpp wrote a file whose data is not where its own general.alignment says
          refused++;
        } else if (want.status !== "ok" && !got.ok) {
          refused++;
          if (got.error!.includes("\n")) problems.push(`${label}: hquant's error is not one line`);
          expect(fs.existsSync(ours), `${label}: no partial output`).toBe(false);
        } else {
          problems.push(`${label}: llama.cpp ${want.status === "ok" ? "quantizes" : `refuses (${want.error})`}, hquant ${got.ok ? "quantizes" : `refuses (${got.error})`}`);
        }
        fs.rmSync(ref, { force: true });
        fs.rmSync(ours, { force: true });
      }
      expect(problems).toEqual([]);
      expect(identical + refused).toBe(runs.length);
      // the comparison is not vacuous: most runs produce a file
      expect(identical).toBeGreaterThanOrEqual(runs.length / 2);
    });
  });
});

describe("inputs llama.cpp refuses", () => {
  const cases = refusedInputs();
  it(`${cases.length} inputs: llama.cpp refuses each, hquant refuses with one line`, async () => {
    const models = await Promise.all(cases.map((c, i) => writeArchModel(c, tmp, 100 + i)));
    const reference = llamaQuantizeIsolated(models.map((m, i) => ({ input: m, output: path.join(tmp, `refused-${i}.llama.gguf`), opts: { ftype: "Q4_K_M", threads: 1 } })));
    const seen: string[] = [];
    for (const [i, c] of cases.entries()) {
      const want = reference[i]!;
      expect(want.status, `${c.label}: llama.cpp ${JSON.stringify(want)}`).toBe(c.llamaAborts ? "aborted" : "failed");
      const got = await hquantBuild(models[i]!, path.join(tmp, `refused-${i}.hquant.gguf`), "Q4_K_M");
      seen.push(`${c.label}: ${got.ok ? "quantized" : got.error}`);
    }
    expect(seen).toEqual(cases.map((c, i) => `${c.label}: ${c.error.startsWith("blk.") ? c.error : `${models[i]}: ${c.error}`}`));
  });

  it("clip: the file types whose attn_v rule reads n_gqa abort in llama.cpp; hquant refuses them, the others are identical", async () => {
    // covered in the family sweep too; this pins the message
    const clip = archFamilies().find((f) => f.arch === "clip")!;
    const model = await writeArchModel(clip, tmp, 200);
    const got = await hquantBuild(model, path.join(tmp, "clip-q2k.gguf"), "Q2_K");
    expect(got.error).toBe("v.blk.0.attn_v.weight: file type Q2_K reads the attention head counts, which a clip model does not have (llama.cpp aborts)");
  });

  it("general.alignment 64 when llama.cpp's 32-byte layout does not fit it: llama.cpp writes an unreadable file, hquant refuses", async () => {
    const base = archFamilies().find((f) => f.alignment === 64)!;
    // a 1-D tensor of 16 bytes: padded to 32 by llama.cpp, to 64 by a reader that follows the key
    const odd = { ...base, label: "alignment 64 odd", tensors: [...base.tensors, { name: "blk.0.attn_q_norm.weight", shape: [4] }] };
    const model = await writeArchModel(odd, tmp, 201);
    const ref = path.join(tmp, "align-odd.llama.gguf");
    expect(llamaQuantizeIsolated([{ input: model, output: ref, opts: { ftype: "Q4_K_M", threads: 1 } }])[0]!.status).toBe("ok");
    expect(() => oracleReadHeader(ref)).toThrow("gguf_init_from_file failed");
    const got = await hquantBuild(model, path.join(tmp, "align-odd.hquant.gguf"), "Q4_K_M");
    expect(got.error).toMatch(/^\S+align-odd\.hquant\.gguf: the input's general\.alignment 64: llama-quantize keeps this key but pads the output to 32 bytes, so tensor \S+ would be at offset \d+, not \d+; refusing to write an unreadable file$/);
  });
});
