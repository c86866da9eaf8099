// Read → write with no change is byte-identical; our parse agrees with llama.cpp's own parser
// (gguf_init_from_file → gguf_get_meta_data) and with @huggingface/gguf; split output reads back
// as the unsplit model; no partial output on abort.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { gguf } from "@huggingface/gguf";
import { afterAll, describe, expect, it } from "vitest";
import { GGMLType } from "../src/gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV, type GGUFModel } from "../src/gguf/model.js";
import { openModel, parseSplitName, readHeader, splitPath, TensorReader } from "../src/gguf/reader.js";
import { openFileSource, openHttpSource } from "../src/gguf/source.js";
import { createGGUFOutput, planSplit, splitOutputSize, type SplitOptions } from "../src/gguf/split.js";
import { encodeHeader, GGUFFileWriter, openTempFiles, outputFileSize, outputHeaderSize, serializeHeader } from "../src/gguf/writer.js";
import { allLayouts, makeModel, SMALL_LLAMA } from "./factory.js";
import { llamaGgufMeta } from "./oracle/gguf.js";
import { UserError } from "../src/errors.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLED = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const SHARED_F32 = path.resolve(ROOT, "../shared/models/tinyllama-16l-f32.gguf");
const tmp = mkdtempSync(path.join(os.tmpdir(), "hquant-rw-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CHUNK = 1 << 20;

/** Copies a model unchanged through our reader and writer, tensor data in bounded chunks. */
async function rewrite(model: GGUFModel, out: string, split?: SplitOptions): Promise<string[]> {
  const h = model.files[0];
  const kv = model.files.length > 1 ? model.kv.filter((e) => !e.key.startsWith("split.")) : model.kv;
  const output = await createGGUFOutput(out, kv, model.tensors, { alignment: h.alignment, version: h.version, ...split });
  const reader = new TensorReader(model);
  try {
    for (const t of model.tensors) {
      for (let at = 0; at < t.bytes; at += CHUNK) await output.write(await reader.read(t, at, Math.min(CHUNK, t.bytes - at)));
    }
    await output.finish();
  } finally {
    await reader.close();
  }
  return output.paths;
}

function expectSameBytes(a: string, b: string): void {
  expect(statSync(a).size).toBe(statSync(b).size);
  expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
}

function plain(v: unknown): unknown {
  return typeof v === "bigint" ? v : Array.isArray(v) ? v.map(plain) : v;
}

/** Our parse vs @huggingface/gguf's, key by key and tensor by tensor. */
async function crossCheckWithHF(file: string, model: GGUFModel): Promise<void> {
  const hf = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const h = model.files[0];
  const meta = hf.typedMetadata as unknown as Record<string, { value: unknown; type: number; subType?: number }>;
  expect(meta.version.value).toBe(h.version);
  expect(Number(meta.tensor_count.value)).toBe(h.tensors.length);
  expect(Number(meta.kv_count.value)).toBe(h.kv.length);
  for (const e of h.kv) {
    const theirs = meta[e.key];
    expect(theirs, e.key).toBeDefined();
    expect(theirs.type, e.key).toBe(e.type);
    if (e.type === GGUFValueType.ARRAY) expect(theirs.subType, e.key).toBe(e.arrayType);
    expect(plain(theirs.value), e.key).toEqual(plain(e.value));
  }
  expect(hf.tensorInfos.length).toBe(h.tensors.length);
  hf.tensorInfos.forEach((ti, i) => {
    const ours = h.tensors[i];
    expect(ours.name).toBe(ti.name);
    expect(ours.shape).toEqual(ti.shape.map(Number));
    expect(ours.type).toBe(ti.dtype);
    expect(ours.offset).toBe(Number(ti.offset));
  });
  expect(h.dataOffset).toBe(Number(hf.tensorDataOffset));
}

/** llama.cpp parses the file and would write exactly our header bytes. */
function crossCheckWithLlama(file: string, model: GGUFModel): void {
  const h = model.files[0];
  const theirs = llamaGgufMeta(file);
  expect(theirs, "llama.cpp rejected the file").not.toBeNull();
  const ours = encodeHeader(h.kv, h.tensors, h.alignment, h.version);
  expect(ours.length).toBe(h.dataOffset);
  expect(Buffer.compare(Buffer.from(theirs!), Buffer.from(ours))).toBe(0);
  const onDisk = readFileSync(file).subarray(0, h.dataOffset);
  expect(Buffer.compare(onDisk, Buffer.from(ours))).toBe(0);
}

async function roundTrip(file: string): Promise<GGUFModel> {
  const model = await openModel(file);
  const out = path.join(tmp, `rt-${path.basename(file)}`);
  await rewrite(model, out);
  expectSameBytes(file, out);
  rmSync(out);
  // the pure size helpers agree with the file
  const h = model.files[0];
  expect(outputHeaderSize(h.kv, h.tensors, h.alignment)).toBe(h.dataOffset);
  expect(outputFileSize(h.kv, h.tensors, h.alignment)).toBe(h.fileSize);
  expect(serializeHeader(h.kv, h.tensors, h.alignment).offsets).toEqual(h.tensors.map((t) => t.offset));
  return model;
}

describe("read → write unchanged is byte-identical", () => {
  it("bundled tinyllama-16l-f16.gguf", async () => {
    const model = await roundTrip(BUNDLED);
    expect(model.tensors.length).toBe(147);
    await crossCheckWithHF(BUNDLED, model);
    crossCheckWithLlama(BUNDLED, model);
  });

  it.skipIf(!existsSync(SHARED_F32))("shared tinyllama-16l-f32.gguf", async () => {
    const model = await roundTrip(SHARED_F32);
    expect(model.tensors.every((t) => t.type === GGMLType.F32)).toBe(true);
    crossCheckWithLlama(SHARED_F32, model);
  });

  const layouts = [
    ...allLayouts(),
    { ...SMALL_LLAMA, nExpert: 4, seed: 7 },
    { ...SMALL_LLAMA, arch: "qwen3" as const, nExpert: 4, dtype: "bf16" as const, tied: true, seed: 8 },
  ];
  for (const o of layouts) {
    it(`factory ${o.arch}${o.nExpert ? " moe" : ""} ${o.dtype} ${o.tied ? "tied" : "untied"}`, async () => {
      const file = await makeModel({ ...o, dir: tmp });
      const model = await roundTrip(file);
      await crossCheckWithHF(file, model);
      crossCheckWithLlama(file, model);
      const names = model.tensors.map((t) => t.name);
      expect(names[0]).toBe("token_embd.weight");
      expect(names.includes("output.weight")).toBe(!o.tied);
      expect(names.includes("blk.0.attn_q_norm.weight")).toBe(o.arch === "qwen3");
    });
  }

  it("every metadata value type, incl. arrays, u64 beyond 2^53, non-ASCII strings", async () => {
    const extraKV: GGUFKV[] = [
      { key: "test.u8", type: GGUFValueType.UINT8, value: 255 },
      { key: "test.i8", type: GGUFValueType.INT8, value: -128 },
      { key: "test.u16", type: GGUFValueType.UINT16, value: 65535 },
      { key: "test.i16", type: GGUFValueType.INT16, value: -32768 },
      { key: "test.u32", type: GGUFValueType.UINT32, value: 4294967295 },
      { key: "test.i32", type: GGUFValueType.INT32, value: -2147483648 },
      { key: "test.f32", type: GGUFValueType.FLOAT32, value: Math.fround(-1.5e-7) },
      { key: "test.bool", type: GGUFValueType.BOOL, value: false },
      { key: "test.str", type: GGUFValueType.STRING, value: "héllo ✓ 🦙" },
      { key: "test.u64", type: GGUFValueType.UINT64, value: 18446744073709551615n },
      { key: "test.i64", type: GGUFValueType.INT64, value: -9223372036854775808n },
      { key: "test.f64", type: GGUFValueType.FLOAT64, value: Math.PI },
      { key: "test.arr.f32", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.FLOAT32, value: [0, Math.fround(0.1), -2] },
      { key: "test.arr.bool", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.BOOL, value: [true, false, true] },
      { key: "test.arr.u64", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.UINT64, value: [1n, 2n ** 60n] },
      { key: "test.arr.i16", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.INT16, value: [-1, 2, -3] },
      { key: "test.arr.str.empty", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: [] },
      { key: "test.arr.str", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: ["", "ü", "日本"] },
    ];
    const file = await makeModel({ ...SMALL_LLAMA, extraKV, seed: 3, dir: tmp });
    const model = await roundTrip(file);
    crossCheckWithLlama(file, model);
    await crossCheckWithHF(file, model);
    for (const e of extraKV) expect(model.kv.find((k) => k.key === e.key)).toEqual(e);
  });

  it("general.alignment other than 32 round-trips", async () => {
    const kv: GGUFKV[] = [
      { key: "general.architecture", type: GGUFValueType.STRING, value: "llama" },
      { key: "general.alignment", type: GGUFValueType.UINT32, value: 64 },
    ];
    const tensors = [
      { name: "a", shape: [3], type: GGMLType.F32 },
      { name: "b", shape: [32, 2], type: GGMLType.Q8_0 },
    ];
    const file = path.join(tmp, "align64.gguf");
    const w = await GGUFFileWriter.create(file, kv, tensors, { alignment: 64 });
    await w.writeTensor(new Uint8Array(12).fill(1));
    await w.writeTensor(new Uint8Array(68).fill(2));
    await w.finish();
    const model = await roundTrip(file);
    expect(model.files[0].alignment).toBe(64);
    expect(model.tensors.map((t) => t.offset)).toEqual([0, 64]);
    expect(model.files[0].fileSize % 64).toBe(0);
    crossCheckWithLlama(file, model);
  });
});

describe("split output (gguf-split layout)", () => {
  async function checkSplit(split: SplitOptions, label: string): Promise<void> {
    const src = await makeModel({ ...SMALL_LLAMA, nLayer: 3, seed: 11, dir: tmp });
    const model = await openModel(src);
    const target = path.join(tmp, `${label}.gguf`);
    const paths = await rewrite(model, target, split);
    const plan = planSplit(target, model.kv, model.tensors, split);
    expect(paths).toEqual(plan.map((s) => s.path));
    expect(paths.length).toBeGreaterThan(1);
    paths.forEach((p, i) => expect(p).toBe(splitPath(path.join(tmp, label), i, paths.length)));
    expect(paths.reduce((n, p) => n + statSync(p).size, 0)).toBe(splitOutputSize(target, model.kv, model.tensors, split));

    // any shard's name opens the whole model
    for (const p of [paths[0], paths[paths.length - 1]]) {
      const back = await openModel(p);
      expect(back.files.length).toBe(paths.length);
      expect(back.tensors.map(({ name, shape, type }) => ({ name, shape, type }))).toEqual(
        model.tensors.map(({ name, shape, type }) => ({ name, shape, type })),
      );
      expect(back.kv.filter((e) => !e.key.startsWith("split."))).toEqual(model.kv);
      const a = new TensorReader(model);
      const b = new TensorReader(back);
      for (let i = 0; i < model.tensors.length; i++) {
        expect(Buffer.compare(await a.read(model.tensors[i]), await b.read(back.tensors[i]))).toBe(0);
      }
      await a.close();
      await b.close();
    }
    // shard metadata: first shard all keys then split.no, split.tensors.count, split.count; others only split keys
    const back = await openModel(paths[0]);
    back.files.forEach((h, i) => {
      const keys = h.kv.map((e) => e.key);
      expect(keys.slice(-3)).toEqual(["split.no", "split.tensors.count", "split.count"]);
      expect(keys.length).toBe(i === 0 ? model.kv.length + 3 : 3);
      expect(h.kv.slice(-3).map((e) => [e.type, e.value])).toEqual([
        [GGUFValueType.UINT16, i],
        [GGUFValueType.INT32, model.tensors.length],
        [GGUFValueType.UINT16, paths.length],
      ]);
      crossCheckWithLlama(h.path, { files: [h], kv: h.kv, tensors: h.tensors });
    });
    // the split model copied back into one file is the original, byte for byte
    const joined = path.join(tmp, `${label}-joined.gguf`);
    await rewrite(back, joined);
    expectSameBytes(src, joined);
  }

  it("--split-max-tensors", async () => {
    await checkSplit({ splitMaxTensors: 7 }, "by-tensors");
    // gguf-split: a new shard every N tensors (1 + 3 × 9 + 2 = 30 tensors)
    const model = await openModel(await makeModel({ ...SMALL_LLAMA, nLayer: 3, seed: 11, dir: tmp }));
    expect(planSplit("x.gguf", model.kv, model.tensors, { splitMaxTensors: 7 }).map((s) => s.tensorIndices.length)).toEqual([7, 7, 7, 7, 2]);
  });

  it("--split-max-size", async () => {
    await checkSplit({ splitMaxSize: 40_000 }, "by-size");
    const model = await openModel(await makeModel({ ...SMALL_LLAMA, nLayer: 3, seed: 11, dir: tmp }));
    for (const shard of planSplit("x.gguf", model.kv, model.tensors, { splitMaxSize: 40_000 })) {
      const data = shard.tensorIndices.reduce((n, i) => n + Math.ceil(model.tensors[i].bytes / 32) * 32, 0);
      expect(data).toBeLessThanOrEqual(40_000);
    }
    expect(() => planSplit("x.gguf", model.kv, model.tensors, { splitMaxSize: 1000 })).toThrow(UserError);
  });

  it("split names parse like llama_split_prefix", () => {
    expect(parseSplitName("/a/m-00002-of-00003.gguf")).toEqual({ prefix: "/a/m", index: 1, count: 3 });
    expect(parseSplitName("/a/m-00004-of-00003.gguf")).toBeUndefined();
    expect(parseSplitName("/a/m.gguf")).toBeUndefined();
  });

  it("a missing or inconsistent shard is a UserError naming the file", async () => {
    const src = await makeModel({ ...SMALL_LLAMA, nLayer: 3, seed: 11, dir: tmp });
    const dir = mkdtempSync(path.join(tmp, "bad-split-"));
    const paths = await rewrite(await openModel(src), path.join(dir, "m.gguf"), { splitMaxTensors: 10 });
    rmSync(paths[1]);
    await expect(openModel(paths[0])).rejects.toThrow(new UserError(`${paths[1]}: no such file`));
  });
});

describe("no partial output", () => {
  it("abort() removes the temp file and leaves no target", async () => {
    const dir = mkdtempSync(path.join(tmp, "abort-"));
    const target = path.join(dir, "out.gguf");
    const tensors = [{ name: "a", shape: [8], type: GGMLType.F32 }];
    const w = await GGUFFileWriter.create(target, [], tensors);
    expect(readdirSync(dir)).toEqual([path.basename(w.tempPath)]);
    expect(path.basename(w.tempPath)).toMatch(new RegExp(`^\\.out\\.gguf\\.hquant-tmp-${process.pid}-[0-9a-f]+$`));
    expect(openTempFiles()).toContain(w.tempPath);
    await w.abort();
    expect(readdirSync(dir)).toEqual([]);
    expect(openTempFiles()).toEqual([]);
  });

  it("finishing early or writing too much throws and leaves nothing", async () => {
    const dir = mkdtempSync(path.join(tmp, "early-"));
    const tensors = [
      { name: "a", shape: [8], type: GGMLType.F32 },
      { name: "b", shape: [8], type: GGMLType.F32 },
    ];
    const w = await GGUFFileWriter.create(path.join(dir, "out.gguf"), [], tensors);
    await w.writeTensor(new Uint8Array(32));
    await expect(w.finish()).rejects.toThrow(/finished after 1 of 2 tensors/);
    expect(readdirSync(dir)).toEqual([]);
    const s = await createGGUFOutput(path.join(dir, "s.gguf"), [], tensors, { splitMaxTensors: 1 });
    await s.writeTensor(new Uint8Array(32));
    await expect(s.write(new Uint8Array(33))).rejects.toThrow(/gets 33 bytes, expected 32/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("installs no signal handler: an embedding application's own SIGINT handler decides", () => {
    const dist = path.join(ROOT, "dist/gguf/writer.js");
    expect(existsSync(dist), "run `npm run build:ts` first (npm test does)").toBe(true);
    const dir = mkdtempSync(path.join(tmp, "sigint-"));
    // the application aborts its writer and exits 7; a library handler would exit 130 first
    const script = `
      import { GGUFFileWriter } from ${JSON.stringify(dist)};
      const w = await GGUFFileWriter.create(${JSON.stringify(path.join(dir, "out.gguf"))}, [], [{ name: "a", shape: [8], type: 0 }]);
      const before = process.listenerCount("SIGINT") + process.listenerCount("SIGTERM") + process.listenerCount("SIGHUP");
      process.on("SIGINT", async () => { await w.abort(); process.stdout.write(String(before)); process.exit(7); });
      process.kill(process.pid, "SIGINT");
      setTimeout(() => process.exit(0), 5000);
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0");
    expect(r.status).toBe(7);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("byte sources", () => {
  it("HTTP range requests read the same header as the local file", async () => {
    const http = await import("node:http");
    const bytes = readFileSync(BUNDLED);
    const ranges: string[] = [];
    const server = http.createServer((req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(200, { "Content-Length": bytes.length, "Accept-Ranges": "bytes" });
        return res.end();
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!m) {
        res.writeHead(400);
        return res.end();
      }
      ranges.push(req.headers.range!);
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), bytes.length - 1)];
      res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${bytes.length}`, "Content-Length": b - a + 1 });
      res.end(bytes.subarray(a, b + 1));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/tinyllama-16l-f16.gguf`;
      const remote = await openHttpSource(url);
      expect(remote.size).toBe(bytes.length);
      const local = await openFileSource(BUNDLED);
      const a = await readHeader(remote, BUNDLED);
      const b = await readHeader(local, BUNDLED);
      expect(a).toEqual(b);
      await local.close();
      // the header only: no range request reaches into the tensor data
      const fetched = ranges.map((r) => r.split("=")[1].split("-").map(Number));
      expect(Math.max(...fetched.map(([, end]) => end))).toBeLessThan(b.dataOffset + 256 * 1024);
      // openModel works on URLs, and tensor data can be read by range
      const model = await openModel(url);
      const reader = new TensorReader(model);
      const t = model.tensors[5];
      expect(Buffer.compare(await reader.read(t, 16, 64), bytes.subarray(b.dataOffset + t.offset + 16, b.dataOffset + t.offset + 80))).toBe(0);
      await reader.close();
      await expect(openHttpSource("http://127.0.0.1:1/closed.gguf")).rejects.toThrow(UserError);
    } finally {
      server.close();
    }
  });
});

describe("llama.cpp's own reader accepts hquant's writer output", () => {
  it("a model without tensors", async () => {
    const file = path.join(tmp, "empty.gguf");
    const w = await GGUFFileWriter.create(file, [{ key: "general.architecture", type: GGUFValueType.STRING, value: "llama" }], []);
    await w.finish();
    const meta = llamaGgufMeta(file);
    expect(meta).not.toBeNull();
    expect(Buffer.compare(Buffer.from(meta!), readFileSync(file))).toBe(0);
  });
});
