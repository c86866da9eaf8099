// The planner against llama_model_quantize on the low-bit file types (lowbit-llamacpp-v0.4.0.json,
// made by test/fixtures/mixtures/make_lowbit_goldens.ts with the live oracle): the bundled model and
// the synthetic GQA and MoE models of test/lowbit-models.ts, every low-bit file type × {no imatrix,
// imatrix} and the option runs. Every tensor's type in the same order, the exact output size, the
// same header bytes (metadata and tensor infos) — or a refusal where llama.cpp refused, with
// hquant's one-line message naming the tensor llama.cpp names. Header only: fast.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importanceFor } from "../src/build/importance.js";
import { UserError } from "../src/errors.js";
import { typeName } from "../src/gguf/ggml-types.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { serializeHeader } from "../src/gguf/writer.js";
import { loadImatrix, readImatrixInfo, type Imatrix } from "../src/imatrix/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { outputMetadata, outputTensors, type ImatrixInfo } from "../src/plan/metadata.js";
import { planModel, type PlannerModel } from "../src/plan/planner.js";
import { parseFileType, uniformSchedule } from "../src/plan/schedule.js";
import { resolvedOptions, type RunOptions } from "./arch-models.js";
import { LOWBIT_FILE_TYPES, LOWBIT_MODELS, lowbitModelFiles, lowbitRuns } from "./lowbit-models.js";

interface GoldenRun {
  ftype: string;
  imatrix: boolean;
  options: RunOptions;
  status: "ok" | "failed" | "aborted";
  error?: string;
  types?: string[];
  output_size?: number;
  header_size?: number;
  header_sha256?: string;
}
interface Golden {
  models: { label: string; imatrix_file: string; order: string[]; shapes: number[][]; runs: GoldenRun[] }[];
}

const golden = JSON.parse(fs.readFileSync(new URL("./fixtures/mixtures/lowbit-llamacpp-v0.4.0.json", import.meta.url), "utf8")) as Golden;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-lowbit-plan-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Prepared {
  model: PlannerModel;
  imatrix: ImatrixInfo;
  vectors: Imatrix;
}
const prepared: Prepared[] = [];
beforeAll(async () => {
  for (const [i, m] of LOWBIT_MODELS.entries()) {
    const files = await lowbitModelFiles(m, path.join(tmp, `m${i}`));
    const h = await readHeaderAt(files.model);
    const info = await readImatrixInfo(files.imatrix);
    const vectors = await loadImatrix(files.imatrix);
    prepared.push({ model: { kv: h.kv, tensors: h.tensors }, imatrix: { ...info, file: golden.models[i]!.imatrix_file }, vectors });
  }
});

type Outcome =
  | { ok: true; types: string[]; names: string[]; shapes: number[][]; size: number; headerSize: number; headerSha: string }
  | { ok: false; error: string };

/** What hquant makes of one run: its plan and header, or its one-line refusal (as plan/build print it). */
function planned(p: Prepared, run: GoldenRun): Outcome {
  try {
    const ftype = parseFileType(run.ftype, "--ftype");
    const hp = mixtureHParams(p.model.kv);
    const schedule = uniformSchedule(ftype, hp.nLayer, { ...resolvedOptions(run.options), ...(run.imatrix && { imatrix: p.imatrix.file }) });
    const plan = planModel(p.model, schedule);
    // the build's importance check, before any data is read: the first quantized tensor without the vector it needs
    for (const t of plan.tensors) if (t.dstType !== t.srcType) importanceFor(t, run.imatrix ? p.vectors : undefined);
    const kv = outputMetadata(p.model.kv, plan, run.imatrix ? { imatrix: p.imatrix } : {});
    const { header, dataSize } = serializeHeader(kv, outputTensors(plan));
    return {
      ok: true,
      types: plan.tensors.map((t) => typeName(t.dstType)),
      names: plan.tensors.map((t) => t.name),
      shapes: plan.tensors.map((t) => t.shape),
      size: header.length + dataSize,
      headerSize: header.length,
      headerSha: crypto.createHash("sha256").update(header).digest("hex"),
    };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { ok: false, error: err.message };
  }
}

/** Whether hquant's one line refuses for llama.cpp's reason (and names the tensor llama.cpp names). */
function refusalReason(llama: string, hquant: string): string {
  const offending = /offending tensor: (\S+)\s+- target type: (\S+)/.exec(llama);
  if (offending) {
    const [, tensor, type] = offending;
    return new RegExp(`^${tensor!.replace(/\./g, "\\.")}: type ${type} \\(file type \\w+\\) needs an importance matrix \\(--imatrix\\)$`).test(hquant) ? "same" : hquant;
  }
  if (/GGML_ASSERT\(imatrix != NULL\)/.test(llama)) return /cannot be made without importance weights, .* \(llama\.cpp aborts\)$/.test(hquant) ? "same" : hquant;
  const fallback = /no tensor type fallback is defined for type (\S+)/.exec(llama);
  if (fallback) return hquant.includes(`no tensor type fallback is defined for type ${fallback[1]}`) ? "same" : hquant;
  if (/invalid output file type 39/.test(llama)) return hquant.startsWith("--ftype: file type NVFP4 (llama_ftype 39)") ? "same" : hquant;
  return `unexpected llama.cpp refusal: ${llama}`;
}

const label = (r: GoldenRun) => `${r.ftype}${r.imatrix ? " imatrix" : ""}${Object.keys(r.options).length ? ` ${JSON.stringify(r.options)}` : ""}`;

describe("planner == llama_model_quantize v0.4.0 on the low-bit file types (golden mixtures)", () => {
  it("the golden holds every model × run of test/lowbit-models.ts", () => {
    expect(golden.models.map((m) => m.label)).toEqual(LOWBIT_MODELS.map((m) => m.label));
    const runs = lowbitRuns().map((r) => label({ ...r, status: "ok" }));
    for (const m of golden.models) expect(m.runs.map(label)).toEqual(runs);
    // every low-bit file type is made by llama.cpp on at least one model
    for (const f of LOWBIT_FILE_TYPES) expect(golden.models.some((m) => m.runs.some((r) => r.ftype === f && r.status === "ok"))).toBe(true);
  });

  for (const [i, m] of LOWBIT_MODELS.entries()) {
    const g = golden.models[i]!;
    for (const run of g.runs) {
      it(`${m.label}: ${label(run)} (${run.status})`, () => {
        const got = planned(prepared[i]!, run);
        if (run.status !== "ok") {
          if (got.ok) throw new Error(`llama.cpp ${run.status} (${run.error}), hquant plans it`);
          expect(refusalReason(run.error!, got.error)).toBe("same");
          return;
        }
        if (!got.ok) throw new Error(`llama.cpp quantizes, hquant refuses: ${got.error}`);
        expect(got.names).toEqual(g.order);
        expect(got.shapes).toEqual(g.shapes);
        expect(got.names.map((n, k) => `${n} ${got.types[k]}`)).toEqual(g.order.map((n, k) => `${n} ${run.types![k]}`));
        expect(got.size).toBe(run.output_size);
        expect(got.headerSize).toBe(run.header_size);
        expect(got.headerSha).toBe(run.header_sha256);
      });
    }
  }
});
