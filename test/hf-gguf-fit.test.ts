// Why hquant's own header reader (src/gguf/reader.ts, source.ts, split.ts) parses every input and
// @huggingface/gguf is a test oracle only: on hostile headers it answers with a parse where
// llama.cpp (and hquant) refuse the file. Shown on two headers of the bundled model that
// bench/hf-gguf.ts's fuzz run finds among the ~8 % of mutated headers it accepts. Where it is fit
// (every value type, byte-exact metadata re-serialisation) it checks hquant's reader and writer.
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf, serializeGgufMetadata } from "@huggingface/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { readHeader } from "../src/gguf/reader.js";
import { memorySource } from "../src/gguf/source.js";
import { makeModel, SMALL_LLAMA } from "./factory.js";
import { memoryFetch } from "./memory-fetch.js";

const MODEL = path.resolve(import.meta.dirname, "../models/tinyllama-16l-f16.gguf");
const HEADER_BYTES = 102688; // the bundled model's data offset
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-hf-gguf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function head(n: number): Uint8Array {
  const fd = openSync(MODEL, "r");
  try {
    const buf = new Uint8Array(n);
    readSync(fd, buf, 0, n, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** hquant's verdict (its one-line error) and @huggingface/gguf's on the same bytes, served over "http". */
async function bothParsers(bytes: Uint8Array, size: number): Promise<{ hquant: string; hf: string }> {
  let hquant = "parsed";
  try {
    await readHeader(memorySource(bytes, "x.gguf", size), "x.gguf");
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    hquant = (err as Error).message;
  }
  let hf = "parsed";
  try {
    const r = await gguf("https://example.invalid/x.gguf", { fetch: memoryFetch(bytes, size), typedMetadata: true });
    hf = `parsed: ${r.tensorInfos.length} tensors, data at ${r.tensorDataOffset}`;
  } catch (err) {
    hf = (err as Error).message;
  }
  return { hquant, hf };
}

describe("@huggingface/gguf on hostile headers (why it does not parse hquant's inputs)", () => {
  it("parses a file cut inside its metadata (it reads zeros past the end)", async () => {
    const size = 1371; // 1.3 % of the header
    expect(await bothParsers(head(size), size)).toEqual({
      hquant: "x.gguf: tensor count 147 is impossible in a file of 1371 bytes",
      // the vocabulary and the tensor infos it "read" are zeros: no such header exists in the file
      hf: "parsed: 147 tensors, data at 37440",
    });
  });

  it("parses a header whose tensors lie past the end of the file", async () => {
    const size = HEADER_BYTES + 64; // the whole header, 64 bytes of the 29 MB of tensor data
    expect(await bothParsers(head(size), size)).toEqual({
      hquant: "x.gguf: tensor 'token_embd.weight': data [102688, 2199840) runs past the end of the file (size 102752)",
      hf: `parsed: 147 tensors, data at ${HEADER_BYTES}`,
    });
  });
});

describe("@huggingface/gguf where it is fit: an oracle for hquant's reader and writer", () => {
  it("re-serialises every value type's metadata byte for byte", async () => {
    const extraKV: GGUFKV[] = [
      { key: "t.u8", type: GGUFValueType.UINT8, value: 255 },
      { key: "t.i8", type: GGUFValueType.INT8, value: -128 },
      { key: "t.u16", type: GGUFValueType.UINT16, value: 65535 },
      { key: "t.i16", type: GGUFValueType.INT16, value: -32768 },
      { key: "t.u32", type: GGUFValueType.UINT32, value: 4294967295 },
      { key: "t.i32", type: GGUFValueType.INT32, value: -2147483648 },
      { key: "t.f32", type: GGUFValueType.FLOAT32, value: Math.fround(-1.5e-7) },
      { key: "t.bool", type: GGUFValueType.BOOL, value: true },
      { key: "t.str", type: GGUFValueType.STRING, value: "héllo ✓ 🦙" },
      { key: "t.u64", type: GGUFValueType.UINT64, value: 18446744073709551615n },
      { key: "t.i64", type: GGUFValueType.INT64, value: -9223372036854775808n },
      { key: "t.f64", type: GGUFValueType.FLOAT64, value: Math.PI },
      { key: "t.arr.u64", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.UINT64, value: [1n, 2n ** 60n] },
      { key: "t.arr.str", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: ["", "ü", "日本"] },
    ];
    for (const file of [MODEL, await makeModel({ ...SMALL_LLAMA, extraKV, seed: 5, dir: tmp })]) {
      const r = await gguf(file, { allowLocalFile: true, typedMetadata: true });
      const kvBytes = readFileSync(file).subarray(0, r.tensorInfoByteRange[0]);
      const serialised = serializeGgufMetadata(r.typedMetadata, { littleEndian: true, alignment: 1 });
      expect(Buffer.from(serialised).equals(kvBytes), path.basename(file)).toBe(true);
      expect(statSync(file).size).toBeGreaterThan(kvBytes.length);
    }
  });
});
