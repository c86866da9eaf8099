// Byte identity with llama.cpp, no importance matrix: for every plain file type, `hquant build` of
// the bundled model writes exactly the file llama_model_quantize writes (metadata, tensor infos,
// tensor data, padding) when hquant's own keys are left out.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { buildModel } from "../src/build/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { QuantizePool } from "../src/pool/index.js";
import { expectSameAsLlama, MODEL, PLAIN_FILE_TYPES } from "./build-util.js";
import { llamaQuantize } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-identity-"));
const pool = new QuantizePool(2);
afterAll(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("hquant build = llama_model_quantize, no imatrix", () => {
  for (const ftype of PLAIN_FILE_TYPES.filter((f) => f !== "Q2_K_S")) {
    it(ftype, () => expectSameAsLlama(tmp, ftype, pool));
  }

  it("Q2_K_S needs an importance matrix, in llama.cpp and in hquant", async () => {
    expect(() => llamaQuantize(MODEL, path.join(tmp, "q2ks.llama.gguf"), { ftype: "Q2_K_S", threads: 2 })).toThrow(/requires an imatrix/);
    const err = await buildModel({
      input: MODEL,
      output: path.join(tmp, "q2ks.gguf"),
      pool,
      schedule: (m) => uniformSchedule("Q2_K_S", mixtureHParams(m.kv).nLayer),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe("blk.0.attn_k.weight: type q2_K (file type Q2_K_S) needs an importance matrix (--imatrix)");
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
