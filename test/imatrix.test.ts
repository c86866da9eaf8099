// Importance matrices: both llama.cpp formats load to the same vectors llama-quantize computes
// (checked against the oracle's independent loader), with llama-quantize's metadata; malformed
// files give one clear error naming the file and the entry.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { serializeHeader } from "../src/gguf/writer.js";
import { loadImatrix } from "../src/imatrix/index.js";
import { lround, normalizeGGUFEntry, normalizeLegacyEntry } from "../src/imatrix/normalize.js";
import { oracleLoadImatrix } from "./oracle/llama.js";

const DAT = path.resolve(__dirname, "fixtures/imatrix/imatrix.dat");
const GGUF = path.resolve(__dirname, "fixtures/imatrix/imatrix.gguf");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-imatrix-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));


const bytesOf = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function writeTmp(name: string, bytes: Uint8Array): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

async function userErrorOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return (err as Error).message;
}

describe("imatrix loading", () => {
  it("reads both formats of the benchmark model's imatrix to the vectors llama-quantize uses", async () => {
    for (const file of [DAT, GGUF]) {
      const ours = await loadImatrix(file);
      const ref = oracleLoadImatrix(file);
      expect(ours.vectors.size).toBe(ref.vectors.size);
      for (const [name, v] of ref.vectors) expect(bytesOf(ours.vectors.get(name)!).equals(bytesOf(v)), `${file} ${name}`).toBe(true);
      expect(ours.datasets).toEqual(ref.datasets);
      expect(ours.chunkCount).toBe(ref.chunkCount);
    }
  });

  it("gives identical vectors for the .dat and the .gguf of the same statistics", async () => {
    const a = await loadImatrix(DAT);
    const b = await loadImatrix(GGUF);
    expect(a.format).toBe("legacy");
    expect(b.format).toBe("gguf");
    expect([...a.vectors.keys()].sort()).toEqual([...b.vectors.keys()].sort());
    for (const [name, v] of a.vectors) expect(bytesOf(b.vectors.get(name)!).equals(bytesOf(v)), name).toBe(true);
  });

  it("normalizes in f32 with llama.cpp's rounding of the counts", () => {
    expect([lround(2.5), lround(-2.5), lround(0.49999997), lround(3.5)]).toEqual([3, -3, 0, 4]);
    const sums = new Float32Array([1, 2, 3, 10, 20, 30]);
    // per-expert counts: 2.5 rounds to 3; an expert never seen (0) gets ones
    expect(Array.from(normalizeGGUFEntry(sums, new Float32Array([2.5, 0])))).toEqual([Math.fround(1 / 3), Math.fround(2 / 3), 1, 1, 1, 1]);
    expect(Array.from(normalizeLegacyEntry(new Float32Array([1, 7]), 3))).toEqual([Math.fround(1 / 3), Math.fround(7 / 3)]);
    expect(Array.from(normalizeLegacyEntry(new Float32Array([1, 7]), 0))).toEqual([1, 7]);
  });
});

describe("imatrix validation", () => {
  it("rejects a missing file", async () => {
    expect(await userErrorOf(loadImatrix(path.join(tmp, "none.dat")))).toBe(`${path.join(tmp, "none.dat")}: no such file`);
  });

  it("rejects a file that is neither format", async () => {
    const p = writeTmp("text.dat", Buffer.from("hello, this is not an imatrix at all"));
    expect(await userErrorOf(loadImatrix(p))).toBe(`${p}: not an imatrix file (entry count 1819043176 does not fit a 36-byte file)`);
  });

  it("rejects a truncated legacy file, naming the entry", async () => {
    const bytes = fs.readFileSync(DAT);
    const p = writeTmp("cut.dat", bytes.subarray(0, 5000));
    expect(await userErrorOf(loadImatrix(p))).toMatch(new RegExp(`^${p}: (truncated imatrix: entry \\d+ .*missing at offset \\d+|entry \\d+ \\(blk\\.[\\w.]+\\): bad value count \\d+ \\(\\d+ bytes left\\))$`));
  });

  it("rejects a non-finite value, naming the entry and index", async () => {
    const bytes = Buffer.from(fs.readFileSync(DAT));
    // first entry: n_entries, name_len, name, ncall, nval, values…
    const nameLen = bytes.readInt32LE(4);
    const name = bytes.toString("utf8", 8, 8 + nameLen);
    bytes.writeFloatLE(Number.POSITIVE_INFINITY, 8 + nameLen + 8 + 4 * 3);
    const p = writeTmp("inf.dat", bytes);
    expect(await userErrorOf(loadImatrix(p))).toBe(`${p}: entry ${name}: non-finite value Infinity at index 3`);
  });

  it("rejects a GGUF imatrix with a NaN count", async () => {
    const header = await readHeaderAt(GGUF);
    const counts = header.tensors.find((t) => t.name.endsWith(".counts"))!;
    const bytes = Buffer.from(fs.readFileSync(GGUF));
    bytes.writeFloatLE(Number.NaN, header.dataOffset + counts.offset);
    const p = writeTmp("nan.gguf", bytes);
    const entry = counts.name.slice(0, -".counts".length);
    expect(await userErrorOf(loadImatrix(p))).toBe(`${p}: entry ${entry}: non-finite count NaN at index 0`);
  });

  it("rejects a GGUF imatrix without llama-imatrix's metadata, or with unpaired tensors", async () => {
    const header = await readHeaderAt(GGUF);
    const bytes = fs.readFileSync(GGUF);
    const data = bytes.subarray(header.dataOffset);
    const rebuild = (kv = header.kv, tensors = header.tensors) => {
      const { header: h } = serializeHeader(kv, tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type })));
      return Buffer.concat([h, data]);
    };
    const noChunkSize = writeTmp("nometa.gguf", rebuild(header.kv.filter((e) => e.key !== "imatrix.chunk_size")));
    expect(await userErrorOf(loadImatrix(noChunkSize))).toBe(`${noChunkSize}: not an imatrix file: key 'imatrix.chunk_size' is missing`);

    // rename one .counts tensor: its .in_sum2 has no partner any more (same sizes, so the data still fits)
    const renamed = header.tensors.map((t, i) => (i === header.tensors.findIndex((x) => x.name.endsWith(".counts")) ? { ...t, name: t.name.replace(/\.counts$/, ".countz") } : t));
    const victim = header.tensors.find((t) => t.name.endsWith(".counts"))!.name.slice(0, -".counts".length);
    const unpaired = writeTmp("unpaired.gguf", rebuild(header.kv, renamed));
    expect(await userErrorOf(loadImatrix(unpaired))).toBe(`${unpaired}: entry ${victim}: mismatched sums and counts (.counts tensor missing)`);
  });
});
