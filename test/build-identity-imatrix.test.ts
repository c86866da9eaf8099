// Byte identity with llama.cpp with an importance matrix: every plain file type, the bundled
// model and its GGUF imatrix, against llama_model_quantize given the same vectors and the
// quantize.imatrix.* keys llama-quantize adds. The legacy .dat is checked on two types.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { expectSameAsLlama, IMATRIX_DAT, IMATRIX_GGUF, MODEL, PLAIN_FILE_TYPES } from "./build-util.js";
import { llamaQuantize } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-identity-imat-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("hquant build = llama_model_quantize, with imatrix", () => {
  for (const ftype of PLAIN_FILE_TYPES) {
    it(ftype, () => expectSameAsLlama(tmp, ftype, pool, IMATRIX_GGUF));
  }
  for (const ftype of ["Q4_K_M", "IQ4_XS"] as const) {
    it(`${ftype} with the legacy .dat imatrix`, () => expectSameAsLlama(tmp, ftype, pool, IMATRIX_DAT));
  }
});

describe("hquant.* keys", () => {
  it("are the only metadata difference from llama-quantize, and record the schedule", async () => {
    const ref = path.join(tmp, "meta.llama.gguf");
    const ours = path.join(tmp, "meta.hquant.gguf");
    llamaQuantize(MODEL, ref, { ftype: "Q4_K_M", threads: 2, imatrixFile: IMATRIX_GGUF });
    await buildModel({
      input: MODEL,
      output: ours,
      pool,
      imatrix: IMATRIX_GGUF,
      hquant: { version: "test" },
      schedule: (m) => uniformSchedule("Q4_K_M", mixtureHParams(m.kv).nLayer),
    });
    const [a, b] = [await readHeaderAt(ref), await readHeaderAt(ours)];
    const hquantKeys = b.kv.filter((e) => e.key.startsWith("hquant."));
    expect(hquantKeys.map((e) => e.key)).toEqual([
      "hquant.version",
      "hquant.schedule.name",
      "hquant.schedule.file_type",
      "hquant.schedule.layer_file_types",
    ]);
    expect(hquantKeys.find((e) => e.key === "hquant.schedule.layer_file_types")!.value).toEqual(new Array(16).fill("Q4_K_M"));
    expect(b.kv.filter((e) => !e.key.startsWith("hquant."))).toEqual(a.kv);
    expect(a.kv.filter((e) => e.key.startsWith("quantize.imatrix.")).map((e) => [e.key, e.value])).toEqual([
      ["quantize.imatrix.file", IMATRIX_GGUF],
      ["quantize.imatrix.dataset", "calib.txt"],
      ["quantize.imatrix.entries_count", 112],
      ["quantize.imatrix.chunks_count", 210],
    ]);
    // same tensor infos (offsets are relative to the data section) and the same data bytes
    expect(b.tensors).toEqual(a.tensors);
    const fa = fs.readFileSync(ref).subarray(a.dataOffset);
    const fb = fs.readFileSync(ours).subarray(b.dataOffset);
    expect(fb.equals(fa)).toBe(true);
  });
});

