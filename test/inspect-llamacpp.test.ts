// `hquant inspect` on a real llama.cpp Q4_K_M build of the bundled model (made here with
// llama.cpp's own llama_model_quantize): every tensor's type, as shown by `hquant inspect --json`,
// checked against @huggingface/gguf's independent parse of the same file.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gguf } from "@huggingface/gguf";
import { afterAll, expect, it } from "vitest";
import { typeName } from "../src/gguf/ggml-types.js";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { llamaQuantize } from "./oracle/llama.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLED = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-inspect-q4km-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Report {
  fileSize: number;
  tensorCount: number;
  parameterCount: number;
  layers: { layer: number; types: Record<string, string> }[];
  otherTensors: { name: string; type: string }[];
  types: { type: string; tensors: number }[];
}

it("every tensor's type of a llama.cpp Q4_K_M build matches an independent parse", async () => {
  const q4km = path.join(tmp, "tinyllama-16l-Q4_K_M.gguf");
  llamaQuantize(BUNDLED, q4km, { ftype: "Q4_K_M", threads: 2 });

  const r = spawnSync(process.execPath, [path.join(ROOT, "bin/hquant.js"), "inspect", q4km, "--json"], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const report = JSON.parse(r.stdout) as Report;

  // tensor name → type name, rebuilt from the report's layer map and other-tensor list
  const shown = new Map<string, string>();
  for (const l of report.layers) for (const [kind, type] of Object.entries(l.types)) shown.set(`blk.${l.layer}.${kind}.weight`, type);
  for (const t of report.otherTensors) shown.set(t.name, t.type);

  const hf = await gguf(q4km, { allowLocalFile: true });
  expect(hf.tensorInfos).toHaveLength(147);
  expect(shown.size).toBe(hf.tensorInfos.length);
  for (const t of hf.tensorInfos) expect(`${t.name}: ${shown.get(t.name)}`).toBe(`${t.name}: ${typeName(t.dtype)}`);

  // a real mixture: Q4_K_M keeps norms F32 and uses several k-quant types
  const kinds = new Set(hf.tensorInfos.map((t) => typeName(t.dtype)));
  expect(kinds.has("f32")).toBe(true);
  expect(kinds.has("q4_K")).toBe(true);
  expect([...kinds].some((k) => k === "q6_K" || k === "q5_K")).toBe(true);
  expect(report.tensorCount).toBe(147);
  expect(report.parameterCount).toBe(14_688_512);
  expect(report.fileSize).toBe(statSync(q4km).size);
  const counted = new Map(report.types.map((t) => [t.type, t.tensors]));
  for (const k of kinds) expect(counted.get(k)).toBe(hf.tensorInfos.filter((t) => typeName(t.dtype) === k).length);

  // and llama.cpp's quantized file reads and re-writes byte for byte
  const model = await openModel(q4km);
  const h = model.files[0];
  const copy = path.join(tmp, "copy.gguf");
  const w = await GGUFFileWriter.create(copy, h.kv, h.tensors, { alignment: h.alignment, version: h.version });
  const reader = new TensorReader(model);
  for (const t of model.tensors) await w.writeTensor(await reader.read(t));
  await reader.close();
  await w.finish();
  expect(Buffer.compare(readFileSync(copy), readFileSync(q4km))).toBe(0);
});
