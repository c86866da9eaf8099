// The planner against llama-quantize v0.4.0's own choices: for every run recorded in
// test/fixtures/mixtures (synthetic qwen3 and llama models, every file type, the per-tensor
// options), every tensor's type, the output order and the data offsets must be the same.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { GGMLType, typeByName, typeName } from "../src/gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { mustFileType } from "../src/plan/ftypes.js";
import { planModel, type PlannerModel, type ResolvedSchedule } from "../src/plan/planner.js";
import { parseTargetType, splitTensorTypeArg, uniformSchedule } from "../src/plan/schedule.js";

interface GoldenRun {
  cmd: string;
  input: string;
  ftype: string;
  options: string[];
  rc: number;
  output_size?: number;
  kv?: Record<string, number>;
  tensors?: [name: string, type: string, ne: number[], offset: number][];
}

const golden = JSON.parse(
  fs.readFileSync(new URL("./fixtures/mixtures/mixtures-llamacpp-v0.4.0.json", import.meta.url), "utf8"),
) as { runs: GoldenRun[] };

/** Hyper-parameters of make_synth.py's models (test/fixtures/mixtures/make_synth.py). */
const SYNTH = {
  "synth-qwen3-f16.gguf": { arch: "qwen3", nLayer: 28, nEmbd: 256, nHead: 4, nHeadKv: 2 },
  "synth-llama-f16.gguf": { arch: "llama", nLayer: 32, nEmbd: 320, nHead: 5, nHeadKv: 1 },
} as const;

const u32 = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.UINT32, value });

/** The synthetic input model, header only: the golden's tensor list with its input types. */
function synthModel(run: GoldenRun): PlannerModel {
  const hp = SYNTH[run.input as keyof typeof SYNTH];
  // every run of one input lists the same tensors; take them from the first successful one
  const ref = golden.runs.find((r) => r.input === run.input && r.tensors)!;
  return {
    kv: [
      { key: "general.architecture", type: GGUFValueType.STRING, value: hp.arch },
      u32(`${hp.arch}.block_count`, hp.nLayer),
      u32(`${hp.arch}.attention.head_count`, hp.nHead),
      u32(`${hp.arch}.attention.head_count_kv`, hp.nHeadKv),
      u32(`${hp.arch}.context_length`, 2048),
      u32(`${hp.arch}.embedding_length`, hp.nEmbd),
      { key: `${hp.arch}.attention.layer_norm_rms_epsilon`, type: GGUFValueType.FLOAT32, value: Math.fround(1e-6) },
    ],
    // file order of make_synth.py is irrelevant: the planner sorts; reverse to prove it
    tensors: ref.tensors!
      .map(([name, , ne]) => ({ name, shape: ne, type: ne.length === 1 ? GGMLType.F32 : GGMLType.F16 }))
      .reverse(),
  };
}

/** llama-quantize's command-line options → the equivalent resolved schedule. */
function scheduleOf(run: GoldenRun, nLayer: number): ResolvedSchedule {
  const s = uniformSchedule(run.ftype as FileTypeName, nLayer);
  const o = run.options;
  for (let i = 0; i < o.length; i++) {
    switch (o[i]) {
      case "--pure":
        s.pure = true;
        break;
      case "--leave-output-tensor":
        s.leaveOutputTensor = true;
        break;
      case "--token-embedding-type":
        s.tokenEmbeddingType = parseTargetType(o[++i]!, "test");
        break;
      case "--output-tensor-type":
        s.outputTensorType = parseTargetType(o[++i]!, "test");
        break;
      case "--tensor-type": {
        const { pattern, type } = splitTensorTypeArg(o[++i]!, "test");
        s.tensorTypes.push({ pattern: pattern.toLowerCase(), type: parseTargetType(type, "test") });
        break;
      }
      default:
        throw new Error(`option ${o[i]} not handled by the test`);
    }
  }
  return s;
}

const runLabel = (r: GoldenRun) => `${r.input} ${r.ftype} ${r.options.join(" ")}`.trim();

describe("planner == llama-quantize v0.4.0 (golden mixtures)", () => {
  it("has the runs the issue names", () => {
    expect(golden.runs.length).toBe(44);
    expect(new Set(golden.runs.map((r) => r.input))).toEqual(new Set(Object.keys(SYNTH)));
  });

  for (const run of golden.runs.filter((r) => r.rc === 0)) {
    it(runLabel(run), () => {
      const model = synthModel(run);
      const nLayer = SYNTH[run.input as keyof typeof SYNTH].nLayer;
      const plan = planModel(model, scheduleOf(run, nLayer));
      const expected = run.tensors!;
      const got = plan.tensors.map((t) => [t.name, typeName(t.dstType).toLowerCase(), t.shape]);
      expect(got).toEqual(expected.map(([name, type, ne]) => [name, type, ne]));
      // data offsets: golden offsets are absolute; the first tensor starts the data section
      const dataStart = expected[0]![3];
      expect(plan.tensors.map((t) => t.offset)).toEqual(expected.map((t) => t[3] - dataStart));
      expect(plan.fileType.id).toBe(run.kv!["general.file_type"]);
      expect(mustFileType(run.ftype).id).toBe(run.kv!["general.file_type"]);
      // the output file is header + data: the data section ends at the file's end
      const last = plan.tensors.at(-1)!;
      expect(dataStart + last.offset + last.bytes).toBeLessThanOrEqual(run.output_size!);
      expect(dataStart + plan.dataBytes).toBeGreaterThanOrEqual(run.output_size!);
    });
  }

  // llama-quantize takes a user-given output type as it is; q6_K does not fit 320-element rows and
  // the quantization fails. The planner says so up front.
  for (const run of golden.runs.filter((r) => r.rc !== 0)) {
    it(`${runLabel(run)} fails as in llama.cpp`, () => {
      const nLayer = SYNTH[run.input as keyof typeof SYNTH].nLayer;
      expect(() => planModel(synthModel(run), scheduleOf(run, nLayer))).toThrow(
        "output.weight: output tensor type q6_K needs rows of a multiple of 256 elements, the row has 320",
      );
    });
  }

  it("records llama-quantize's fallbacks", () => {
    const run = golden.runs.find((r) => r.input === "synth-llama-f16.gguf" && r.ftype === "Q4_K_M" && r.options.length === 0)!;
    const plan = planModel(synthModel(run), scheduleOf(run, 32));
    const first = plan.fallbacks.find((f) => f.name === "token_embd.weight")!;
    expect([typeName(first.from), typeName(first.to)]).toEqual(["q4_K", "q5_0"]);
    expect(typeByName("q5_0")!.id).toBe(first.to);
  });
});
