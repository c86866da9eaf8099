// Byte identity with llama_model_quantize on every architecture family whose tensor naming or
// hyper-parameters change a mixture rule (test/arch-models.ts), for every file type with and
// without an importance matrix: the same file, or both refuse (hquant with one line). And the
// inputs llama.cpp refuses or aborts on: hquant refuses them with the line the test names.
// llama.cpp runs in child processes (test/oracle/llama-isolated.ts) since it aborts on some inputs.
// The default suite checks a few runs per family byte for byte (the whole sweep's types and sizes
// are checked against llama.cpp's recorded choices by plan-arch-golden.test.ts);
// HQUANT_ARCH_SWEEP=1 runs every family × every file type × {no imatrix, imatrix} here (minutes).
import path from "node:path";
import { describe, expect, it } from "vitest";
import { archFamilies, refusedInputs, writeArchModel } from "./arch-models.js";
import { checkAgainstLlamaQuantize, hquantBuild } from "./arch-suite.js";
import { llamaQuantizeIsolated } from "./oracle/llama-isolated.js";
import { oracleReadHeader } from "./oracle/llama.js";

const { pool, tmp } = checkAgainstLlamaQuantize(archFamilies(), refusedInputs(), 0);

describe("inputs llama.cpp refuses or writes wrongly", () => {
  it("clip: the file types whose attn_v rule reads n_gqa abort in llama.cpp; hquant refuses them, the others are identical", async () => {
    // covered in the family sweep too; this pins the message
    const clip = archFamilies().find((f) => f.arch === "clip")!;
    const model = await writeArchModel(clip, tmp, 200);
    const got = await hquantBuild(pool, model, path.join(tmp, "clip-q2k.gguf"), "Q2_K");
    expect(got.error).toBe("v.blk.0.attn_v.weight: file type Q2_K reads the attention head counts, which a clip model does not have (llama.cpp aborts)");
  });

  it("general.alignment 64 when llama.cpp's 32-byte layout does not fit it: llama.cpp writes an unreadable file, hquant refuses", async () => {
    const base = archFamilies().find((f) => f.alignment === 64)!;
    // a 1-D tensor of 16 bytes: padded to 32 by llama.cpp, to 64 by a reader that follows the key
    const odd = { ...base, label: "alignment 64 odd", tensors: [...base.tensors, { name: "blk.0.attn_q_norm.weight", shape: [4] }] };
    const model = await writeArchModel(odd, tmp, 201);
    const ref = path.join(tmp, "align-odd.llama.gguf");
    expect((await llamaQuantizeIsolated([{ input: model, output: ref, opts: { ftype: "Q4_K_M", threads: 1 } }]))[0]!.status).toBe("ok");
    expect(() => oracleReadHeader(ref)).toThrow("gguf_init_from_file failed");
    const got = await hquantBuild(pool, model, path.join(tmp, "align-odd.hquant.gguf"), "Q4_K_M");
    expect(got.error).toMatch(/^\S+align-odd\.hquant\.gguf: the input's general\.alignment 64: llama-quantize keeps this key but pads the output to 32 bytes, so tensor \S+ would be at offset \d+, not \d+; refusing to write an unreadable file$/);
  });
});
