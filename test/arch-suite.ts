// The two checks every set of architecture families goes through (test/arch-models.ts in
// arch-identity / plan-arch-golden, test/arch-rule-models.ts in arch-rules):
// - against llama-quantize's recorded choices (a golden made by make_arch_goldens.ts): for every
//   file type × {no imatrix, imatrix} and the option runs, the same type for every tensor in the
//   same order and the exact output size, or hquant refuses where llama.cpp refused;
// - against llama_model_quantize itself (child processes, it aborts on some inputs): a few runs per
//   family byte for byte (HQUANT_ARCH_SWEEP=1: every file type × {no imatrix, imatrix}), and the
//   refused inputs: llama.cpp refuses each, hquant with the line the case names.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { UserError } from "../src/errors.js";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { outputFileSize } from "../src/gguf/writer.js";
import { FILE_TYPE_NAMES, type FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { outputMetadata, outputTensors } from "../src/plan/metadata.js";
import { planModel, OUTPUT_ALIGNMENT, type PlannerModel } from "../src/plan/planner.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { OPTION_RUNS, resolvedOptions, writeArchModel, type ArchModel, type RefusedInput, type RunOptions } from "./arch-models.js";
import { firstDifference } from "./build-util.js";
import { customTensorType, syntheticImatrix, u32kv } from "./factory.js";
import { llamaQuantizeIsolated, type IsolatedJob, type IsolatedResult } from "./oracle/llama-isolated.js";
import { oracleReadHeader } from "./oracle/llama.js";

export const SWEEP = process.env.HQUANT_ARCH_SWEEP === "1";

interface GoldenRun {
  ftype: FileTypeName;
  imatrix: boolean;
  options: RunOptions;
  status: "ok" | "failed" | "aborted" | "unreadable";
  error?: string;
  /** in the family's output order */
  types?: string[];
  output_size?: number;
}
interface Golden {
  imatrix_file: string;
  families: { label: string; arch: string; tensors: [string, number[]][]; order: string[]; runs: GoldenRun[] }[];
  refused: { label: string; status: string; error?: string }[];
}

/** The family's header as makeCustomModel writes it (the alignment key last). */
function header(f: ArchModel): PlannerModel {
  const kv = f.alignment && f.alignment !== 32 ? [...f.kv, u32kv("general.alignment", f.alignment)] : f.kv;
  return { kv, tensors: f.tensors.map((t) => ({ name: t.name, shape: t.shape, type: customTensorType(t) })) };
}

/** make_arch_goldens.ts's imatrix (syntheticImatrix): an entry for every matrix but token_embd and the routers. */
function imatrixEntries(f: ArchModel): number {
  return f.tensors.filter((t) => t.shape.length >= 2 && t.name !== "token_embd.weight" && !t.name.includes("ffn_gate_inp")).length;
}

type Planned = { ok: true; types: [string, string][]; size: number } | { ok: false; error: string };

function planned(f: ArchModel, run: GoldenRun, imatrixFile: string): Planned {
  const model = header(f);
  try {
    const hp = mixtureHParams(model.kv, "model");
    const schedule = uniformSchedule(run.ftype, hp.nLayer, { ...resolvedOptions(run.options), ...(run.imatrix && { imatrix: imatrixFile }) });
    const plan = planModel(model, schedule);
    if (!run.imatrix && plan.tensors.some((t) => t.requiresImatrix)) return { ok: false, error: "requires an imatrix" };
    const kv = outputMetadata(model.kv, plan, run.imatrix ? { imatrix: { file: imatrixFile, datasets: [], entries: imatrixEntries(f), chunks: 0 } } : {});
    return { ok: true, types: plan.tensors.map((t) => [t.name, typeName(t.dstType)]), size: outputFileSize(kv, outputTensors(plan), OUTPUT_ALIGNMENT) };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { ok: false, error: err.message };
  }
}

const runLabel = (r: { ftype: string; imatrix?: unknown; options: RunOptions }) =>
  `${r.ftype}${r.imatrix ? " imatrix" : ""}${Object.keys(r.options).length ? ` ${JSON.stringify(r.options)}` : ""}`;

/** The planner against a golden of llama-quantize's choices on `families` (header only: every run). */
export function checkPlanGoldens(title: string, goldenFile: URL, families: ArchModel[], refused: RefusedInput[]): void {
  const golden = JSON.parse(fs.readFileSync(goldenFile, "utf8")) as Golden;
  describe(title, () => {
    it("the golden was made from these very models", () => {
      expect(golden.families.map((g) => g.label)).toEqual(families.map((f) => f.label));
      for (const [i, f] of families.entries()) expect(golden.families[i]!.tensors).toEqual(f.tensors.map((t) => [t.name, t.shape]));
      expect(golden.refused.map((r) => r.label)).toEqual(refused.map((r) => r.label));
    });

    for (const [i, f] of families.entries()) {
      const runs = golden.families[i]?.runs ?? [];
      const order = golden.families[i]?.order ?? [];
      it(`${f.label}: ${runs.length} runs`, () => {
        const problems: string[] = [];
        let quantized = 0;
        for (const run of runs) {
          const label = runLabel(run);
          const got = planned(f, run, golden.imatrix_file);
          if (run.status === "ok") {
            quantized++;
            if (!got.ok) problems.push(`${label}: llama.cpp quantizes, hquant refuses (${got.error})`);
            else if (JSON.stringify(got.types) !== JSON.stringify(run.types!.map((t, k) => [order[k], t]))) {
              const at = got.types.findIndex((t, k) => JSON.stringify(t) !== JSON.stringify([order[k], run.types![k]]));
              problems.push(`${label}: ${JSON.stringify([order[at], run.types![at]])} vs hquant ${JSON.stringify(got.types[at])}`);
            } else if (got.size !== run.output_size) problems.push(`${label}: size ${run.output_size} vs hquant ${got.size}`);
          } else if (got.ok) {
            problems.push(`${label}: llama.cpp ${run.status} (${run.error}), hquant plans it`);
          } else if (run.status === "unreadable" && !got.error.includes("general.alignment")) {
            problems.push(`${label}: llama.cpp writes an unreadable file, hquant refuses for another reason (${got.error})`);
          }
        }
        expect(problems).toEqual([]);
        // the golden is not mostly refusals (a quarter at least: llama.cpp refuses the low-bit file
        // types without an imatrix, and with alignment 64 every imatrix run writes an unreadable file)
        expect(quantized).toBeGreaterThan(runs.length / 4);
      });
    }

    it(`the ${refused.length} refused inputs: llama.cpp refused each when the golden was made, hquant refuses with its line`, () => {
      for (const [i, r] of golden.refused.entries()) expect(r.status, `${r.label}: ${r.error}`).toBe(refused[i]!.llamaAborts ? "aborted" : "failed");
      const run: GoldenRun = { ftype: "Q4_K_M", imatrix: false, options: {}, status: "failed" };
      const seen = refused.map((c) => {
        const got = planned(c, run, golden.imatrix_file);
        return `${c.label}: ${got.ok ? "planned" : got.error}`;
      });
      // a tensor's layer out of range is the planner's error (it names the tensor), the rest the loader's
      expect(seen).toEqual(refused.map((c) => `${c.label}: ${c.error.startsWith("blk.") ? c.error : `model: ${c.error}`}`));
    });

    it("the types the golden holds are the ones the planner can produce", () => {
      const names = new Set(golden.families.flatMap((g) => g.runs.flatMap((r) => r.types ?? [])));
      for (const t of names) expect(Object.values(GGMLType).map((v) => (typeof v === "number" ? typeName(v) : "")).includes(t)).toBe(true);
    });
  });
}

/**
 * The default suite's byte checks per family: a mixture-heavy k-quant, the imatrix-only Q2_K_S
 * (3-D tensors get one importance slice per expert), and the option runs.
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
  const plain = SWEEP ? FILE_TYPE_NAMES.flatMap((ftype) => [{ ftype, imatrix: false }, { ftype, imatrix: true }]) : DEFAULT_RUNS;
  return [
    ...plain.map((r) => ({ ftype: r.ftype, imatrix: r.imatrix ? imatrix : undefined, options: {} })),
    ...OPTION_RUNS.map((r) => ({ ...r, imatrix: undefined })),
  ].map((r, i) => ({ ...r, tag: `${index}-${i}-${r.ftype}${r.imatrix ? "-imat" : ""}` }));
}

export interface Outcome {
  ok: boolean;
  /** hquant's message */
  error?: string;
}

export async function hquantBuild(pool: QuantizePool, input: string, output: string, ftype: FileTypeName, imatrix?: string, options: RunOptions = {}): Promise<Outcome> {
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
  return outHeader.tensors
    .filter((t) => t.type === 0)
    .some((t) => {
      const src = inHeader.tensors.find((s) => s.name === t.name)!;
      const a = inBytes.subarray(inHeader.dataOffset + src.offset, inHeader.dataOffset + src.offset + src.size);
      const b = outBytes.subarray(outHeader.dataOffset + t.offset, outHeader.dataOffset + t.offset + t.size);
      return !a.equals(b);
    });
}

/**
 * Every family built by hquant and by llama_model_quantize: identical files, or both refuse; and the
 * refused inputs. `base` numbers the model files (and seeds their data) apart from other sets.
 */
export function checkAgainstLlamaQuantize(families: ArchModel[], refused: RefusedInput[], base: number): { pool: QuantizePool; tmp: string } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-arch-"));
  const pool = new QuantizePool(2);
  afterAll(async () => {
    await pool.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** every family's model, imatrix, runs and llama.cpp's results: one batch of child processes for all */
  let prepared: { model: string; runs: Run[]; jobs: IsolatedJob[]; reference: IsolatedResult[] }[] = [];
  beforeAll(async () => {
    const setups = await Promise.all(
      families.map(async (family, i) => {
        const model = await writeArchModel(family, tmp, base + i);
        const runs = runsOf(base + i, await syntheticImatrix(model, 40 + base + i, tmp));
        const jobs = runs.map((r) => ({ input: model, output: path.join(tmp, `${r.tag}.llama.gguf`), opts: { ftype: r.ftype, threads: 2, imatrixFile: r.imatrix, ...r.options } }));
        return { model, runs, jobs };
      }),
    );
    const reference = await llamaQuantizeIsolated(setups.flatMap((s) => s.jobs));
    let at = 0;
    prepared = setups.map((s) => ({ ...s, reference: reference.slice(at, (at += s.jobs.length)) }));
  }, SWEEP ? 7_200_000 : 600_000); // the sweep runs every file type on 80-layer models: up to an hour

  describe("every file type on every architecture family: identical to llama_model_quantize, or both refuse", () => {
    families.forEach((family, index) => {
      const what = SWEEP ? "every file type × {no imatrix, imatrix}" : DEFAULT_RUNS.map((r) => r.ftype + (r.imatrix ? " imatrix" : "")).join(", ");
      it(`${family.label} (${family.arch}): ${what}, ${OPTION_RUNS.length} option runs`, async () => {
        const { model, runs, jobs, reference } = prepared[index]!;
        const problems: string[] = [];
        let identical = 0;
        let refusedRuns = 0;
        for (const [i, r] of runs.entries()) {
          const ref = jobs[i]!.output;
          const ours = path.join(tmp, `${r.tag}.hquant.gguf`);
          const got = await hquantBuild(pool, model, ours, r.ftype, r.imatrix, r.options);
          const want = reference[i]!;
          const label = runLabel(r);
          if (want.status === "ok" && got.ok) {
            if (fs.readFileSync(ref).equals(fs.readFileSync(ours))) identical++;
            else problems.push(`${label}: ${firstDifference(ref, ours)}`);
          } else if (want.status === "ok" && !got.ok && got.error!.includes("general.alignment") && misplacedData(model, ref)) {
            // llama.cpp wrote a file whose data is not where its own general.alignment says
            refusedRuns++;
          } else if (want.status !== "ok" && !got.ok) {
            refusedRuns++;
            if (got.error!.includes("\n")) problems.push(`${label}: hquant's error is not one line`);
            expect(fs.existsSync(ours), `${label}: no partial output`).toBe(false);
          } else {
            problems.push(`${label}: llama.cpp ${want.status === "ok" ? "quantizes" : `refuses (${want.error})`}, hquant ${got.ok ? "quantizes" : `refuses (${got.error})`}`);
          }
          fs.rmSync(ref, { force: true });
          fs.rmSync(ours, { force: true });
        }
        expect(problems).toEqual([]);
        expect(identical + refusedRuns).toBe(runs.length);
        // the comparison is not vacuous: a quarter of the runs at least produce a file (see above)
        expect(identical).toBeGreaterThanOrEqual(runs.length / 4);
      });
    });
  });

  describe("inputs llama.cpp refuses", () => {
    it(`${refused.length} inputs: llama.cpp refuses each, hquant refuses with one line`, async () => {
      const models = await Promise.all(refused.map((c, i) => writeArchModel(c, tmp, base + 100 + i)));
      const reference = await llamaQuantizeIsolated(models.map((m, i) => ({ input: m, output: path.join(tmp, `refused-${i}.llama.gguf`), opts: { ftype: "Q4_K_M", threads: 1 } })));
      const seen: string[] = [];
      for (const [i, c] of refused.entries()) {
        const want = reference[i]!;
        expect(want.status, `${c.label}: llama.cpp ${JSON.stringify(want)}`).toBe(c.llamaAborts ? "aborted" : "failed");
        const ours = path.join(tmp, `refused-${i}.hquant.gguf`);
        const got = await hquantBuild(pool, models[i]!, ours, "Q4_K_M");
        expect(fs.existsSync(ours), `${c.label}: no partial output`).toBe(false);
        seen.push(`${c.label}: ${got.ok ? "quantized" : got.error}`);
      }
      expect(seen).toEqual(refused.map((c, i) => `${c.label}: ${c.error.startsWith("blk.") ? c.error : `${models[i]}: ${c.error}`}`));
    });
  });
  return { pool, tmp };
}
