// The planner against llama-quantize's recorded choices on every architecture family of
// test/arch-models.ts (test/fixtures/mixtures/arch-families-llamacpp-v0.4.0.json, made by
// make_arch_goldens.ts with the live oracle): for every file type × {no imatrix, imatrix} and the
// option runs, the same type for every tensor in the same order and the exact output file size —
// or hquant refuses where llama.cpp refused (or wrote a file its own header contradicts). Header
// only, so the whole sweep runs in the default suite.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { GGMLType, typeName } from "../src/gguf/ggml-types.js";
import { outputFileSize } from "../src/gguf/writer.js";
import { UserError } from "../src/errors.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { outputMetadata, outputTensors } from "../src/plan/metadata.js";
import { planModel, OUTPUT_ALIGNMENT, type PlannerModel } from "../src/plan/planner.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { archFamilies, refusedInputs, resolvedOptions, type ArchModel, type RunOptions } from "./arch-models.js";
import { customTensorType, u32kv } from "./factory.js";

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

const golden = JSON.parse(
  fs.readFileSync(new URL("./fixtures/mixtures/arch-families-llamacpp-v0.4.0.json", import.meta.url), "utf8"),
) as Golden;

/** The family's header as makeCustomModel writes it (the alignment key last). */
function header(f: ArchModel): PlannerModel {
  const kv = f.alignment && f.alignment !== 32 ? [...f.kv, u32kv("general.alignment", f.alignment)] : f.kv;
  return { kv, tensors: f.tensors.map((t) => ({ name: t.name, shape: t.shape, type: customTensorType(t) })) };
}

/** make_arch_goldens.ts's imatrix: an entry for every matrix but token_embd and the routers. */
function imatrixEntries(f: ArchModel): number {
  return f.tensors.filter((t) => t.shape.length >= 2 && t.name !== "token_embd.weight" && !t.name.includes("ffn_gate_inp")).length;
}

type Outcome = { ok: true; types: [string, string][]; size: number } | { ok: false; error: string };

function planned(f: ArchModel, run: GoldenRun): Outcome {
  const model = header(f);
  try {
    const hp = mixtureHParams(model.kv, "model");
    const schedule = uniformSchedule(run.ftype, hp.nLayer, { ...resolvedOptions(run.options), ...(run.imatrix && { imatrix: golden.imatrix_file }) });
    const plan = planModel(model, schedule);
    if (!run.imatrix && plan.tensors.some((t) => t.requiresImatrix)) return { ok: false, error: "requires an imatrix" };
    const kv = outputMetadata(model.kv, plan, run.imatrix ? { imatrix: { file: golden.imatrix_file, datasets: [], entries: imatrixEntries(f), chunks: 0 } } : {});
    const size = outputFileSize(kv, outputTensors(plan), OUTPUT_ALIGNMENT);
    return { ok: true, types: plan.tensors.map((t) => [t.name, typeName(t.dstType)]), size };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { ok: false, error: err.message };
  }
}

describe("planner == llama-quantize v0.4.0 on every architecture family (golden mixtures)", () => {
  const families = archFamilies();

  it("the golden was made from these very models", () => {
    expect(golden.families.map((g) => g.label)).toEqual(families.map((f) => f.label));
    for (const [i, f] of families.entries()) expect(golden.families[i]!.tensors).toEqual(f.tensors.map((t) => [t.name, t.shape]));
    expect(golden.refused.map((r) => r.label)).toEqual(refusedInputs().map((r) => r.label));
  });

  for (const [i, f] of families.entries()) {
    const runs = golden.families[i]?.runs ?? [];
    const order = golden.families[i]?.order ?? [];
    it(`${f.label}: ${runs.length} runs`, () => {
      const problems: string[] = [];
      let quantized = 0;
      for (const run of runs) {
        const label = `${run.ftype}${run.imatrix ? " imatrix" : ""}${Object.keys(run.options).length ? ` ${JSON.stringify(run.options)}` : ""}`;
        const got = planned(f, run);
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
      expect(quantized).toBeGreaterThan(runs.length / 2);
    });
  }

  it("every refused input was refused by llama.cpp when the golden was made", () => {
    const cases = refusedInputs();
    for (const [i, r] of golden.refused.entries()) expect(r.status).toBe(cases[i]!.llamaAborts ? "aborted" : "failed");
  });

  it("the types the golden holds are the ones the planner can produce", () => {
    const names = new Set(golden.families.flatMap((g) => g.runs.flatMap((r) => r.types ?? [])));
    for (const t of names) expect(Object.values(GGMLType).map((v) => (typeof v === "number" ? typeName(v) : "")).includes(t)).toBe(true);
  });
});
