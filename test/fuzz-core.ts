// Seeded mutation fuzzer for the GGUF header parser, shared by test/gguf-fuzz.test.ts (≥ 10 000
// cases) and bench/fuzz.ts (≥ 100 000). Mutations of real headers: bit flips, length/count/type
// fields set to extremes, truncations, splices of two headers, byte-range overwrites. Every case
// must either parse consistently (re-encoding the parse reproduces the input's header bytes) or
// throw a one-line UserError; anything else, a case over 1 s, or reading/allocating beyond what
// the file's size justifies is a failure.
import { UserError } from "../src/errors.js";
import { GGUFValueType, type GGUFHeader } from "../src/gguf/model.js";
import { readHeader } from "../src/gguf/reader.js";
import { memorySource, type ByteSource } from "../src/gguf/source.js";
import { encodeHeader } from "../src/gguf/writer.js";
import { xorshift32 } from "./factory.js";

export interface FuzzSeed {
  name: string;
  /** the file's first bytes (at least the whole header) */
  bytes: Uint8Array;
  /** the file's full size; bytes past `bytes` read as zeros */
  size: number;
  /** offsets of numeric header fields (counts, lengths, types, dims, offsets) and their widths */
  fields: { at: number; width: 4 | 8 }[];
  /** offsets where a header field begins (splice points) */
  boundaries: number[];
}

/** Finds the numeric fields of a VALID header by walking it (independently of the reader). */
export function seedFromBytes(name: string, bytes: Uint8Array, size = bytes.length): FuzzSeed {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: FuzzSeed["fields"] = [];
  const boundaries: number[] = [];
  let p = 0;
  const u32 = () => {
    fields.push({ at: p, width: 4 });
    boundaries.push(p);
    p += 4;
    return dv.getUint32(p - 4, true);
  };
  const u64 = () => {
    fields.push({ at: p, width: 8 });
    boundaries.push(p);
    p += 8;
    return Number(dv.getBigUint64(p - 8, true));
  };
  const str = () => {
    const length = u64(); // (not `p += u64()`: that would add to p's value from before the call)
    p += length;
  };
  const FIXED: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  boundaries.push(0);
  p = 4;
  u32(); // version
  const nTensors = u64();
  const nKV = u64();
  for (let i = 0; i < nKV; i++) {
    str();
    let type = u32();
    let n = 1;
    if (type === GGUFValueType.ARRAY) {
      type = u32();
      n = u64();
    }
    if (type === GGUFValueType.STRING) for (let j = 0; j < n; j++) str();
    else p += FIXED[type] * n;
  }
  for (let i = 0; i < nTensors; i++) {
    str();
    const nDims = u32();
    for (let d = 0; d < nDims; d++) u64();
    u32();
    u64();
  }
  boundaries.push(p);
  return { name, bytes, size, fields, boundaries };
}

const EXTREMES = [0n, 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 63n, 2n ** 64n - 1n];

export type Mutation = "bitflip" | "extreme" | "truncate" | "splice" | "overwrite";
const MUTATIONS: Mutation[] = ["bitflip", "extreme", "truncate", "splice", "overwrite"];

export interface FuzzCase {
  mutations: Mutation[];
  seed: string;
  bytes: Uint8Array;
  size: number;
}

/** One deterministic mutated file from the seeds. */
export function makeCase(seeds: readonly FuzzSeed[], rand: () => number): FuzzCase {
  const pick = <T>(xs: readonly T[]): T => xs[rand() % xs.length];
  const s = pick(seeds);
  let bytes = s.bytes.slice();
  let size = s.size;
  const headerEnd = s.boundaries[s.boundaries.length - 1];
  const mutations: Mutation[] = [];
  const steps = 1 + (rand() % 3);
  for (let k = 0; k < steps; k++) {
    const m = pick(MUTATIONS);
    mutations.push(m);
    if (m === "bitflip") {
      const at = rand() % Math.min(bytes.length, headerEnd + 64);
      bytes[at] ^= 1 << (rand() % 8);
    } else if (m === "extreme") {
      const f = pick(s.fields);
      if (f.at + f.width > bytes.length) continue;
      const v = rand() % 4 === 0 ? BigInt(size + (rand() % 64) - 32) : pick(EXTREMES);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (f.width === 8) dv.setBigUint64(f.at, BigInt.asUintN(64, v), true);
      else dv.setUint32(f.at, Number(BigInt.asUintN(32, v)), true);
    } else if (m === "truncate") {
      const cut = rand() % 2 === 0 ? pick(s.boundaries) + (rand() % 3) : rand() % (headerEnd + 256);
      size = Math.min(size, cut);
      bytes = bytes.subarray(0, Math.min(bytes.length, size));
    } else if (m === "splice") {
      const other = pick(seeds);
      const a = pick(s.boundaries);
      const b = pick(other.boundaries);
      const head = bytes.subarray(0, Math.min(a, bytes.length));
      const tail = other.bytes.subarray(b);
      const joined = new Uint8Array(head.length + tail.length);
      joined.set(head);
      joined.set(tail, head.length);
      bytes = joined;
      size = head.length + (other.size - b);
    } else {
      const at = rand() % Math.max(1, Math.min(bytes.length, headerEnd));
      const n = 1 + (rand() % 16);
      for (let i = at; i < Math.min(bytes.length, at + n); i++) bytes[i] = rand() & 0xff;
    }
  }
  return { mutations, seed: s.name, bytes, size };
}

export interface FuzzStats {
  cases: number;
  parsed: number;
  userErrors: number;
  /** parsed, re-encoding differs only because a NaN float's bits are not preserved by JS */
  parsedNaN: number;
  maxCaseMs: number;
  maxHeapGrowthBytes: number;
  failures: string[];
  wallMs: number;
  byMutation: Record<string, number>;
}

/** A source that counts bytes handed out (all reads are allocations of that size). */
function countingSource(inner: ByteSource): ByteSource & { bytesRead: number } {
  const s = {
    name: inner.name,
    size: inner.size,
    bytesRead: 0,
    async read(offset: number, length: number) {
      s.bytesRead += length;
      return inner.read(offset, length);
    },
    close: () => inner.close(),
  };
  return s;
}

function hasNaN(h: GGUFHeader): boolean {
  return h.kv.some((e) => {
    const vals = Array.isArray(e.value) ? e.value : [e.value];
    return vals.some((v) => typeof v === "number" && Number.isNaN(v));
  });
}

/** Parse consistency: re-encoding what was parsed gives back the input's header bytes (padding aside). */
function consistent(h: GGUFHeader, c: FuzzCase): "ok" | "nan" | string {
  const unpadded = encodeHeader(h.kv, h.tensors, 1, h.version);
  const input = new Uint8Array(unpadded.length); // bytes past c.bytes read as zeros
  input.set(c.bytes.subarray(0, unpadded.length));
  const same = Buffer.compare(Buffer.from(input), Buffer.from(unpadded)) === 0;
  if (!same) return hasNaN(h) ? "nan" : "re-encoded header differs from the input";
  if (h.dataOffset % h.alignment !== 0 || h.dataOffset < unpadded.length || h.dataOffset - unpadded.length >= h.alignment) {
    return `data offset ${h.dataOffset} inconsistent`;
  }
  for (const t of h.tensors) {
    if (t.offset % h.alignment !== 0 || h.dataOffset + t.offset + t.bytes > h.fileSize) return `tensor '${t.name}' placement inconsistent`;
  }
  return "ok";
}

/** A case slower than this counts as a hang (the bench script's limit; the suite passes a looser one). */
export const CASE_TIME_LIMIT_MS = 1000;

export async function runFuzz(
  seeds: readonly FuzzSeed[],
  cases: number,
  seed: number,
  caseTimeLimitMs = CASE_TIME_LIMIT_MS,
): Promise<FuzzStats> {
  const rand = xorshift32(seed);
  const stats: FuzzStats = {
    cases: 0,
    parsed: 0,
    userErrors: 0,
    parsedNaN: 0,
    maxCaseMs: 0,
    maxHeapGrowthBytes: 0,
    failures: [],
    wallMs: 0,
    byMutation: {},
  };
  const t0 = performance.now();
  for (let i = 0; i < cases; i++) {
    const c = makeCase(seeds, rand);
    for (const m of c.mutations) stats.byMutation[m] = (stats.byMutation[m] ?? 0) + 1;
    const label = `case ${i} (${c.seed}: ${c.mutations.join("+")}, size ${c.size})`;
    const source = countingSource(memorySource(c.bytes, "fuzz.gguf", c.size));
    const heapBefore = process.memoryUsage().heapUsed;
    const start = performance.now();
    let header: GGUFHeader | undefined;
    try {
      header = await readHeader(source, "fuzz.gguf");
    } catch (err) {
      if (err instanceof UserError && !err.message.includes("\n") && err.message.startsWith("fuzz.gguf: ")) stats.userErrors++;
      else stats.failures.push(`${label}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
    const ms = performance.now() - start;
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    stats.maxCaseMs = Math.max(stats.maxCaseMs, ms);
    stats.maxHeapGrowthBytes = Math.max(stats.maxHeapGrowthBytes, heapGrowth);
    if (ms > caseTimeLimitMs) stats.failures.push(`${label}: took ${ms.toFixed(0)} ms`);
    if (source.bytesRead > c.size) stats.failures.push(`${label}: read ${source.bytesRead} bytes of a ${c.size}-byte file`);
    // JS values of a parsed header cost at most ~16× their encoded bytes (8-byte array slots, string objects)
    if (heapGrowth > 64 * 1024 * 1024 + 16 * c.size) stats.failures.push(`${label}: heap grew ${heapGrowth} bytes`);
    if (header) {
      const verdict = consistent(header, c);
      if (verdict === "ok") stats.parsed++;
      else if (verdict === "nan") stats.parsedNaN++;
      else stats.failures.push(`${label}: parsed but ${verdict}`);
    }
    stats.cases++;
  }
  stats.wallMs = performance.now() - t0;
  return stats;
}
