// Malformed headers: each gets one exact, one-line UserError naming the file and the field or
// tensor; truncation at every byte of a header gives a clean error; and the CLI prints one line
// `hquant: …`, exits 1 and shows no stack trace. The files are built here byte by byte (not with
// hquant's writer) so the test does not depend on the code it checks.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { openModel, readHeader } from "../src/gguf/reader.js";
import { memorySource } from "../src/gguf/source.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-bad-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Little-endian byte writer that remembers where each field starts. */
class Raw {
  bytes: number[] = [];
  fields: { name: string; at: number }[] = [];
  private mark(name: string) {
    this.fields.push({ name, at: this.bytes.length });
  }
  u32(name: string, v: number) {
    this.mark(name);
    for (let i = 0; i < 4; i++) this.bytes.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(name: string, v: bigint | number) {
    this.mark(name);
    const b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0n; i < 8n; i++) this.bytes.push(Number((b >> (8n * i)) & 0xffn));
    return this;
  }
  raw(name: string, b: ArrayLike<number>) {
    this.mark(name);
    this.bytes.push(...Array.from(b));
    return this;
  }
  str(name: string, s: string | number[], length?: bigint) {
    const b = typeof s === "string" ? [...Buffer.from(s, "utf8")] : s;
    this.u64(`${name} length`, length ?? b.length);
    return this.raw(name, b);
  }
  pad(to: number) {
    while (this.bytes.length % to) this.bytes.push(0);
    return this;
  }
  get buf() {
    return Uint8Array.from(this.bytes);
  }
}

const F32 = 0;
const STRING = 8;
const ARRAY = 9;
const UINT32 = 4;

interface Spec {
  magic?: number[];
  version?: number;
  tensorCount?: bigint;
  kvCount?: bigint;
  arch?: string | number[];
  archKey?: string | number[];
  archType?: number;
  alignment?: { type: number; value: number[] };
  tokensElemType?: number;
  tokensCount?: bigint;
  tensors?: { name: string | number[]; dims: (number | bigint)[]; nDims?: number; type: number; offset: number | bigint }[];
  data?: number;
  extraKV?: (r: Raw) => void;
  extraKVCount?: number;
}

type TensorSpec = NonNullable<Spec["tensors"]>[number];
const GOOD_TENSORS: TensorSpec[] = [
  { name: "w", dims: [32, 2], type: F32, offset: 0 },
  { name: "n", dims: [8], type: F32, offset: 256 },
];

/** A small valid GGUF (3 KVs, 2 F32 tensors, 288 data bytes) with any field overridden. */
function build(s: Spec = {}): Raw {
  const tensors = s.tensors ?? GOOD_TENSORS;
  const r = new Raw();
  r.raw("magic", s.magic ?? [...Buffer.from("GGUF")]);
  r.u32("version", s.version ?? 3);
  r.u64("tensor count", s.tensorCount ?? BigInt(tensors.length));
  r.u64("metadata key count", s.kvCount ?? BigInt(3 + (s.extraKVCount ?? 0)));
  r.str("key 0 name", s.archKey ?? "general.architecture").u32("key 'general.architecture' type", s.archType ?? STRING);
  r.str("key 'general.architecture' value", s.arch ?? "llama");
  r.str("key 1 name", "general.alignment");
  r.u32("key 'general.alignment' type", s.alignment?.type ?? UINT32).raw("key 'general.alignment' value", s.alignment?.value ?? [32, 0, 0, 0]);
  r.str("key 2 name", "tokenizer.ggml.tokens").u32("key 'tokenizer.ggml.tokens' type", ARRAY);
  r.u32("key 'tokenizer.ggml.tokens' array element type", s.tokensElemType ?? STRING);
  r.u64("key 'tokenizer.ggml.tokens' array length", s.tokensCount ?? 2n);
  r.str("key 'tokenizer.ggml.tokens' element 0", "a").str("key 'tokenizer.ggml.tokens' element 1", "b");
  s.extraKV?.(r);
  tensors.forEach((t, i) => {
    const label = typeof t.name === "string" ? `tensor '${t.name}'` : `tensor ${i}`;
    r.str(`tensor ${i} name`, t.name);
    r.u32(`${label} n_dims`, t.nDims ?? t.dims.length);
    t.dims.forEach((d, j) => r.u64(`${label} dimension ${j}`, d));
    r.u32(`${label} type`, t.type);
    r.u64(`${label} offset`, t.offset);
  });
  r.pad(32);
  r.raw("data", new Array(s.data ?? 288).fill(0x3c));
  return r;
}

const FILE = "models/bad.gguf";

async function errorOf(bytes: Uint8Array): Promise<string> {
  try {
    await readHeader(memorySource(bytes, FILE), FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    const msg = (err as Error).message;
    expect(msg.split("\n")).toHaveLength(1);
    return msg;
  }
  throw new Error("expected a UserError, but the header parsed");
}

const U64_MAX = 2n ** 64n - 1n;
const headerSize = build().bytes.length - 288;
const goodSize = build().bytes.length;

describe("malformed headers: one exact message each", () => {
  it("the base file is valid", async () => {
    const h = await readHeader(memorySource(build().buf, FILE), FILE);
    expect(h.tensors.map((t) => [t.name, t.offset, t.bytes])).toEqual([
      ["w", 0, 256],
      ["n", 256, 32],
    ]);
    expect(h.dataOffset).toBe(headerSize);
  });

  const cases: [string, Spec | (() => Uint8Array), string][] = [
    ["bad magic", { magic: [...Buffer.from("GGUX")] }, "not a GGUF file (magic 'GGUX', expected 'GGUF')"],
    ["unprintable magic", { magic: [0, 1, 0x47, 0x47] }, "not a GGUF file (magic '??GG', expected 'GGUF')"],
    ["version 1", { version: 1 }, "unsupported GGUF version 1 (only versions 2 and 3 are supported)"],
    ["version 4", { version: 4 }, "unsupported GGUF version 4 (only versions 2 and 3 are supported)"],
    ["big-endian version", { version: 0x03000000 }, "unsupported GGUF version 50331648 (only versions 2 and 3 are supported)"],
    ["tensor count 2^63", { tensorCount: 2n ** 63n }, `tensor count 9223372036854775808 is impossible in a file of ${goodSize} bytes`],
    ["tensor count 2^64-1", { tensorCount: U64_MAX }, `tensor count ${U64_MAX} is impossible in a file of ${goodSize} bytes`],
    ["key count 2^31", { kvCount: 2n ** 31n }, `metadata key count 2147483648 is impossible in a file of ${goodSize} bytes`],
    [
      "key name length 2^64-1",
      () => {
        const r = build();
        const at = r.fields.find((f) => f.name === "key 0 name length")!.at;
        r.bytes.splice(at, 8, ...new Array(8).fill(0xff));
        return r.buf;
      },
      `key 0 name: string length ${U64_MAX} exceeds the remaining file size (${goodSize - 32} bytes)`,
    ],
    ["empty key", { archKey: "" }, "key 0 has an empty name"],
    ["non-UTF-8 key", { archKey: [0x67, 0xc3, 0x28] }, "key 0 name is not valid UTF-8"],
    ["non-UTF-8 value", { arch: [0x6c, 0xff, 0x6c] }, "key 'general.architecture' value is not valid UTF-8"],
    ["overlong UTF-8", { arch: [0xc0, 0xaf] }, "key 'general.architecture' value is not valid UTF-8"],
    ["invalid value type", { archType: 13 }, "key 'general.architecture' has invalid value type 13"],
    ["nested array", { tokensElemType: ARRAY }, "key 'tokenizer.ggml.tokens' has invalid array element type 9"],
    [
      "array length 2^62",
      { tokensCount: 2n ** 62n },
      /key 'tokenizer.ggml.tokens': array length 4611686018427387904 exceeds the remaining file size \(\d+ bytes\)/.source,
    ],
    [
      "duplicate key",
      { extraKVCount: 1, extraKV: (r) => r.str("k", "general.architecture").u32("t", STRING).str("v", "x") },
      "duplicate key 'general.architecture'",
    ],
    [
      "bool 2",
      { extraKVCount: 1, extraKV: (r) => r.str("k", "general.flag").u32("t", 7).raw("v", [2]) },
      "key 'general.flag': invalid bool encoding",
    ],
    ["alignment 0", { alignment: { type: UINT32, value: [0, 0, 0, 0] } }, "general.alignment 0 is not a nonzero power of two"],
    ["alignment 48", { alignment: { type: UINT32, value: [48, 0, 0, 0] } }, "general.alignment 48 is not a nonzero power of two"],
    ["alignment as u64", { alignment: { type: 10, value: [32, 0, 0, 0, 0, 0, 0, 0] } }, "key 'general.alignment' has type u64, must be u32"],
    ["tensor name too long", { tensors: [{ name: "x".repeat(64), dims: [8], type: F32, offset: 0 }] }, "tensor 0 name is too long (64 bytes, limit 63)"],
    ["non-UTF-8 tensor name", { tensors: [{ name: [0x61, 0xfe], dims: [8], type: F32, offset: 0 }] }, "tensor 0 name is not valid UTF-8"],
    ["duplicate tensor", { tensors: [GOOD_TENSORS[0], { ...GOOD_TENSORS[1], name: "w" }] }, "duplicate tensor name 'w'"],
    ["n_dims 0", { tensors: [{ name: "w", dims: [], type: F32, offset: 0 }] }, "tensor 'w': n_dims 0 is not in 1..4"],
    ["n_dims 5", { tensors: [{ name: "w", dims: [1, 1, 1, 1, 1], type: F32, offset: 0 }] }, "tensor 'w': n_dims 5 is not in 1..4"],
    ["dimension 0", { tensors: [{ name: "w", dims: [32, 0], type: F32, offset: 0 }] }, "tensor 'w': dimension 1 is 0, must be positive"],
    ["negative dimension", { tensors: [{ name: "w", dims: [2n ** 64n - 5n], type: F32, offset: 0 }] }, "tensor 'w': dimension 0 is -5, must be positive"],
    [
      "element count overflow",
      { tensors: [{ name: "w", dims: [2 ** 31, 2 ** 31, 2 ** 31], type: F32, offset: 0 }] },
      "tensor 'w': shape has more than 2^53 elements",
    ],
    ["unknown type id 4", { tensors: [{ name: "w", dims: [32, 2], type: 4, offset: 0 }] }, "tensor 'w': unknown ggml type id 4"],
    ["unknown type id 2^32-1", { tensors: [{ name: "w", dims: [32, 2], type: 0xffffffff, offset: 0 }] }, "tensor 'w': unknown ggml type id -1"],
    ["row not a multiple of the block", { tensors: [{ name: "w", dims: [48, 2], type: 12, offset: 0 }] }, "tensor 'w': row length 48 is not a multiple of the q4_K block size 256"],
    [
      "offset past EOF",
      { tensors: [GOOD_TENSORS[0], { ...GOOD_TENSORS[1], offset: 2n ** 40n }] },
      `tensor 'n': offset 1099511627776 (file position ${headerSize + 2 ** 40}) is past the end of the file (size ${goodSize})`,
    ],
    // one tensor: the header is 32 bytes shorter
    ["offset 2^64-1", { tensors: [{ ...GOOD_TENSORS[0], offset: U64_MAX }] }, `tensor 'w': offset ${U64_MAX} (file position ${BigInt(headerSize - 32) + U64_MAX}) is past the end of the file (size ${goodSize - 32})`],
    [
      "data past EOF",
      { data: 280 },
      `tensor 'n': data [${headerSize + 256}, ${headerSize + 288}) runs past the end of the file (size ${headerSize + 280})`,
    ],
    ["misaligned offset", { tensors: [GOOD_TENSORS[0], { ...GOOD_TENSORS[1], offset: 8 }] }, "tensor 'n': offset 8 is not a multiple of the alignment 32"],
    [
      "overlapping tensors",
      { tensors: [GOOD_TENSORS[0], { ...GOOD_TENSORS[1], offset: 224 }] },
      "tensor 'n': data at offset 224 overlaps tensor 'w' (offset 0, 256 bytes)",
    ],
    ["empty file", () => new Uint8Array(0), "not a GGUF file (0 bytes, too small)"],
  ];

  for (const [label, spec, expected] of cases) {
    it(label, async () => {
      const bytes = typeof spec === "function" ? spec() : build(spec).buf;
      const msg = await errorOf(bytes);
      if (expected.includes("\\(")) expect(msg).toMatch(new RegExp(`^${FILE}: ${expected}$`));
      else expect(msg).toBe(`${FILE}: ${expected}`);
    });
  }
});

describe("truncation", () => {
  it("cut at every field boundary: 'unexpected end of file in <field>' or a length/count check", async () => {
    const full = build();
    const seen = new Set<string>();
    for (const f of full.fields) {
      if (f.name === "data") continue;
      const msg = await errorOf(full.buf.subarray(0, f.at));
      seen.add(msg);
      const fieldEnd = `unexpected end of file in ${f.name} at offset ${f.at} (size ${f.at})`;
      // absurd-count and string-length checks fire before the read when the rest cannot fit
      const ok =
        msg === `${FILE}: ${fieldEnd}` ||
        msg === `${FILE}: not a GGUF file (${f.at} bytes, too small)` ||
        / count \d+ is impossible in a file of \d+ bytes$/.test(msg) ||
        /: (string|array) length \d+ exceeds the remaining file size \(\d+ bytes\)$/.test(msg) ||
        /: data section starts at \d+, past the end of the file/.test(msg);
      expect(ok, `cut at ${f.at} (${f.name}): ${msg}`).toBe(true);
    }
    // the exact message for fixed-size fields that nothing checks ahead
    expect(seen).toContain(`${FILE}: unexpected end of file in version at offset 4 (size 4)`);
    const offsetField = full.fields.find((f) => f.name === "tensor 'n' offset")!;
    expect(await errorOf(full.buf.subarray(0, offsetField.at))).toBe(
      `${FILE}: unexpected end of file in tensor 'n' offset at offset ${offsetField.at} (size ${offsetField.at})`,
    );
    const typeField = full.fields.find((f) => f.name === "key 'general.alignment' type")!;
    expect(await errorOf(full.buf.subarray(0, typeField.at + 2))).toMatch(/impossible|exceeds|unexpected end of file in key 'general.alignment' type/);
  });

  it("cut at every byte: always a clean one-line UserError", async () => {
    const full = build().buf;
    for (let cut = 0; cut < full.length; cut++) await errorOf(full.subarray(0, cut));
  });
});

describe("CLI on bad files", () => {
  const bin = path.join(ROOT, "bin/hquant.js");
  const cases: [string, Spec, RegExp][] = [
    ["bad-magic.gguf", { magic: [...Buffer.from("GGML")] }, /: not a GGUF file \(magic 'GGML', expected 'GGUF'\)$/],
    ["overlap.gguf", { tensors: [GOOD_TENSORS[0], { ...GOOD_TENSORS[1], offset: 224 }] }, /: tensor 'n': data at offset 224 overlaps tensor 'w'/],
    ["utf8.gguf", { arch: [0xff] }, /: key 'general.architecture' value is not valid UTF-8$/],
    ["huge-count.gguf", { tensorCount: U64_MAX }, /: tensor count 18446744073709551615 is impossible/],
  ];
  for (const [name, spec, expected] of cases) {
    it(`hquant inspect ${name}: exit 1, one line on stderr, no stack`, () => {
      const file = path.join(tmp, name);
      writeFileSync(file, build(spec).buf);
      const r = spawnSync(process.execPath, [bin, "inspect", file], { encoding: "utf8" });
      expect(r.status).toBe(1);
      expect(r.stdout).toBe("");
      const lines = r.stderr.split("\n").filter((l) => l !== "");
      expect(lines).toHaveLength(1);
      expect(lines[0].startsWith(`hquant: ${file}: `)).toBe(true);
      expect(lines[0]).toMatch(expected);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    });
  }

  it("split model with a shard missing its split.no", async () => {
    // shard 2 is a plain valid GGUF without split keys
    const shard = (extra: boolean) =>
      build({
        extraKVCount: extra ? 3 : 0,
        extraKV: extra
          ? (r) => {
              r.str("k", "split.no").u32("t", 2).raw("v", [0, 0]);
              r.str("k", "split.count").u32("t", 2).raw("v", [2, 0]);
              r.str("k", "split.tensors.count").u32("t", 5).raw("v", [4, 0, 0, 0]);
            }
          : undefined,
      }).buf;
    const first = path.join(tmp, "sp-00001-of-00002.gguf");
    const second = path.join(tmp, "sp-00002-of-00002.gguf");
    writeFileSync(first, shard(true));
    writeFileSync(second, shard(false));
    await expect(openModel(first)).rejects.toThrow(new UserError(`${second}: split shard has no 'split.no' key`));
    await expect(openModel(path.join(tmp, "sp-00003-of-00002.gguf"))).rejects.toThrow(UserError);
  });
});
