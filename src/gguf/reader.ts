// Strict, incremental GGUF header parser. Everything a header claims is checked before it is
// trusted: every length against the bytes left in the file BEFORE allocating, every string as
// UTF-8, every tensor's shape/type/offset; the header is read through a ByteSource in bounded
// pieces, so a hostile or truncated file gives a one-line UserError, never a crash, a hang or a
// huge allocation. Tensor data is never read here (see TensorReader).
// Not @huggingface/gguf: it parses hostile headers llama.cpp refuses (a truncated file read as zeros,
// tensors past the end: test/hf-gguf-fit.test.ts, ~8 % of fuzzed headers in bench/hf-gguf.ts).
import { UserError } from "../errors.js";
import { typeInfo } from "./ggml-types.js";
import { GGUFValueType, type GGUFHeader, type GGUFKV, type GGUFModel, type GGUFScalar, type TensorInfo } from "./model.js";
import { openSource, type ByteSource, type SourceOptions } from "./source.js";

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** llama.cpp's GGUF_MAX_STRING_LENGTH */
export const MAX_STRING_LENGTH = 1024 * 1024 * 1024;
/** far above any real vocabulary/merges array; bounds the JS array a header can make us build */
export const MAX_ARRAY_LENGTH = 1 << 24;
/** ggml's GGML_MAX_NAME: names are stored in char[64] with a terminating NUL */
export const MAX_TENSOR_NAME_BYTES = 63;
export const MAX_DIMS = 4;
/** smallest possible encodings, to reject absurd counts up front */
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8;
/** header bytes fetched per read */
const READ_CHUNK = 256 * 1024;

export const VALUE_TYPE_NAMES: Record<number, string> = {
  [GGUFValueType.UINT8]: "u8",
  [GGUFValueType.INT8]: "i8",
  [GGUFValueType.UINT16]: "u16",
  [GGUFValueType.INT16]: "i16",
  [GGUFValueType.UINT32]: "u32",
  [GGUFValueType.INT32]: "i32",
  [GGUFValueType.FLOAT32]: "f32",
  [GGUFValueType.BOOL]: "bool",
  [GGUFValueType.STRING]: "string",
  [GGUFValueType.ARRAY]: "array",
  [GGUFValueType.UINT64]: "u64",
  [GGUFValueType.INT64]: "i64",
  [GGUFValueType.FLOAT64]: "f64",
};

interface FixedValueCodec {
  size: number;
  get(dv: DataView, at: number): GGUFScalar | undefined; // undefined: invalid encoding
}

/** fixed-size value types: byte size and little-endian decoder */
export const FIXED_VALUE_CODECS: Partial<Record<GGUFValueType, FixedValueCodec>> = {
  [GGUFValueType.UINT8]: { size: 1, get: (dv, at) => dv.getUint8(at) },
  [GGUFValueType.INT8]: { size: 1, get: (dv, at) => dv.getInt8(at) },
  [GGUFValueType.UINT16]: { size: 2, get: (dv, at) => dv.getUint16(at, true) },
  [GGUFValueType.INT16]: { size: 2, get: (dv, at) => dv.getInt16(at, true) },
  [GGUFValueType.UINT32]: { size: 4, get: (dv, at) => dv.getUint32(at, true) },
  [GGUFValueType.INT32]: { size: 4, get: (dv, at) => dv.getInt32(at, true) },
  [GGUFValueType.FLOAT32]: { size: 4, get: (dv, at) => dv.getFloat32(at, true) },
  // strict: only 0 and 1, so that a re-write is byte-identical
  [GGUFValueType.BOOL]: { size: 1, get: (dv, at) => (dv.getUint8(at) > 1 ? undefined : dv.getUint8(at) === 1) },
  [GGUFValueType.UINT64]: { size: 8, get: (dv, at) => dv.getBigUint64(at, true) },
  [GGUFValueType.INT64]: { size: 8, get: (dv, at) => dv.getBigInt64(at, true) },
  [GGUFValueType.FLOAT64]: { size: 8, get: (dv, at) => dv.getFloat64(at, true) },
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads a ByteSource front to back through a bounded window. */
class HeaderCursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private dv = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(
    private readonly source: ByteSource,
    readonly path: string,
  ) {}

  get size(): number {
    return this.source.size;
  }
  get remaining(): number {
    return this.source.size - this.pos;
  }

  fail(message: string): never {
    throw new UserError(`${this.path}: ${message}`);
  }

  /** true when the next n bytes are in the window (the fast, synchronous path) */
  private has(n: number): boolean {
    return this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length;
  }

  /** makes the next n bytes available; n must already be known to fit in the file */
  async need(n: number, field: () => string): Promise<void> {
    if (this.has(n)) return;
    if (n > this.remaining) {
      this.fail(`unexpected end of file in ${field()} at offset ${this.pos} (size ${this.size})`);
    }
    const length = Math.min(Math.max(n, READ_CHUNK), this.remaining);
    // keep the unread tail of the window, so no byte is fetched twice (matters over HTTP)
    const bufEnd = this.bufStart + this.buf.length;
    const keep = this.pos >= this.bufStart && this.pos < bufEnd ? bufEnd - this.pos : 0;
    const fresh = await this.source.read(this.pos + keep, length - keep);
    if (keep > 0) {
      const joined = new Uint8Array(length);
      joined.set(this.buf.subarray(this.pos - this.bufStart));
      joined.set(fresh, keep);
      this.buf = joined;
    } else {
      this.buf = fresh;
    }
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
  }

  private at(n: number): number {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  async u32(field: () => string): Promise<number> {
    if (!this.has(4)) await this.need(4, field);
    return this.dv.getUint32(this.at(4), true);
  }
  async i32(field: () => string): Promise<number> {
    if (!this.has(4)) await this.need(4, field);
    return this.dv.getInt32(this.at(4), true);
  }
  async u64(field: () => string): Promise<bigint> {
    if (!this.has(8)) await this.need(8, field);
    return this.dv.getBigUint64(this.at(8), true);
  }

  /** a value of a fixed-size type already known to be buffered */
  fixed(codec: FixedValueCodec): GGUFScalar | undefined {
    return codec.get(this.dv, this.at(codec.size));
  }

  async bytes(n: number, field: () => string): Promise<Uint8Array> {
    if (!this.has(n)) await this.need(n, field);
    const at = this.at(n);
    return this.buf.subarray(at, at + n);
  }

  /**
   * The next GGUF string when its length and bytes are already in the window (the common case in
   * a long string array), else undefined and nothing consumed: string() then reads it (and
   * reports what is wrong with it).
   */
  bufferedString(): string | undefined {
    if (!this.has(8)) return undefined;
    const at = this.pos - this.bufStart;
    const length = this.dv.getUint32(at, true);
    if (this.dv.getUint32(at + 4, true) !== 0 || !this.has(8 + length)) return undefined;
    const start = at + 8;
    let text: string | undefined;
    if (length <= SHORT_STRING) {
      let ascii = "";
      for (let i = start; i < start + length; i++) {
        const b = this.buf[i]!;
        if (b >= 0x80) break;
        ascii += String.fromCharCode(b);
      }
      if (ascii.length === length) text = ascii;
    }
    if (text === undefined) {
      try {
        text = utf8.decode(this.buf.subarray(start, start + length));
      } catch {
        return undefined;
      }
    }
    this.pos += 8 + length;
    return text;
  }

  /** a GGUF string (u64 length + UTF-8 bytes); `maxBytes` is a format limit below the file size */
  async string(field: () => string, maxBytes = MAX_STRING_LENGTH): Promise<string> {
    const length = await this.u64(() => `${field()} length`);
    if (length > BigInt(this.remaining)) {
      this.fail(`${field()}: string length ${length} exceeds the remaining file size (${this.remaining} bytes)`);
    }
    if (length > BigInt(maxBytes)) this.fail(`${field()}: string length ${length} exceeds the limit of ${maxBytes} bytes`);
    const raw = await this.bytes(Number(length), field);
    try {
      return utf8.decode(raw);
    } catch {
      return this.fail(`${field()} is not valid UTF-8`);
    }
  }
}

/** Some bytes below 0x80: short ASCII strings (most token strings) skip the UTF-8 decoder call. */
const SHORT_STRING = 32;

function valueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `type ${type}`;
}

async function readArray(c: HeaderCursor, key: string): Promise<GGUFKV> {
  const elemType = await c.u32(() => `key '${key}' array element type`);
  const count = await c.u64(() => `key '${key}' array length`);
  const codec = FIXED_VALUE_CODECS[elemType as GGUFValueType];
  if (!codec && elemType !== GGUFValueType.STRING) {
    c.fail(`key '${key}' has invalid array element type ${elemType}`);
  }
  const minElemBytes = codec ? codec.size : 8;
  if (count * BigInt(minElemBytes) > BigInt(c.remaining)) {
    c.fail(`key '${key}': array length ${count} exceeds the remaining file size (${c.remaining} bytes)`);
  }
  if (count > BigInt(MAX_ARRAY_LENGTH)) c.fail(`key '${key}': array length ${count} exceeds the limit of ${MAX_ARRAY_LENGTH}`);
  const n = Number(count);
  const values: GGUFScalar[] = new Array(n);
  const field = () => `key '${key}' value`;
  if (codec) {
    const perChunk = Math.max(1, Math.floor(READ_CHUNK / codec.size));
    for (let i = 0; i < n; ) {
      const batch = Math.min(perChunk, n - i);
      await c.need(batch * codec.size, field);
      for (const end = i + batch; i < end; i++) {
        const v = c.fixed(codec);
        if (v === undefined) c.fail(`key '${key}' element ${i}: invalid ${valueTypeName(elemType)} encoding`);
        values[i] = v;
      }
    }
  } else {
    for (let i = 0; i < n; i++) values[i] = c.bufferedString() ?? (await c.string(() => `key '${key}' element ${i}`));
  }
  return { key, type: GGUFValueType.ARRAY, arrayType: elemType as GGUFValueType, value: values };
}

async function readKV(c: HeaderCursor, index: number, seen: Set<string>): Promise<GGUFKV> {
  const key = await c.string(() => `key ${index} name`);
  if (key.length === 0) c.fail(`key ${index} has an empty name`);
  if (seen.has(key)) c.fail(`duplicate key '${key}'`);
  seen.add(key);
  const type = await c.u32(() => `key '${key}' type`);
  if (type === GGUFValueType.ARRAY) return readArray(c, key);
  if (type === GGUFValueType.STRING) {
    return { key, type, value: await c.string(() => `key '${key}' value`) };
  }
  const codec = FIXED_VALUE_CODECS[type as GGUFValueType];
  if (!codec) return c.fail(`key '${key}' has invalid value type ${type}`);
  await c.need(codec.size, () => `key '${key}' value`);
  const value = c.fixed(codec);
  if (value === undefined) c.fail(`key '${key}': invalid ${valueTypeName(type)} encoding`);
  return { key, type: type as GGUFValueType, value };
}

function readAlignment(c: HeaderCursor, kv: readonly GGUFKV[]): number {
  const entry = kv.find((e) => e.key === "general.alignment");
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== GGUFValueType.UINT32) {
    c.fail(`key 'general.alignment' has type ${valueTypeName(entry.type)}, must be u32`);
  }
  const a = entry.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) c.fail(`general.alignment ${a} is not a nonzero power of two`);
  return a;
}

interface RawTensorInfo {
  name: string;
  shape: number[];
  type: number;
  offset: bigint;
  bytes: number;
}

async function readTensorInfo(c: HeaderCursor, index: number, seen: Set<string>): Promise<RawTensorInfo> {
  const name = await c.string(() => `tensor ${index} name`);
  if (name.length === 0) c.fail(`tensor ${index} has an empty name`);
  const nameBytes = Buffer.byteLength(name, "utf8");
  if (nameBytes > MAX_TENSOR_NAME_BYTES) {
    c.fail(`tensor ${index} name is too long (${nameBytes} bytes, limit ${MAX_TENSOR_NAME_BYTES})`);
  }
  if (seen.has(name)) c.fail(`duplicate tensor name '${name}'`);
  seen.add(name);
  const t = `tensor '${name}'`;
  const nDims = await c.u32(() => `${t} n_dims`);
  if (nDims < 1 || nDims > MAX_DIMS) c.fail(`${t}: n_dims ${nDims} is not in 1..${MAX_DIMS}`);
  const shape: number[] = [];
  let elements = 1n;
  for (let d = 0; d < nDims; d++) {
    const dim = await c.u64(() => `${t} dimension ${d}`);
    if (dim === 0n || dim >= 1n << 63n) c.fail(`${t}: dimension ${d} is ${BigInt.asIntN(64, dim)}, must be positive`);
    elements *= dim;
    if (elements > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`${t}: shape has more than 2^53 elements`);
    shape.push(Number(dim));
  }
  const type = await c.i32(() => `${t} type`);
  const info = typeInfo(type);
  if (!info) c.fail(`${t}: unknown ggml type id ${type}`);
  if (shape[0] % info.blockSize !== 0) {
    c.fail(`${t}: row length ${shape[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`);
  }
  const offset = await c.u64(() => `${t} offset`);
  const bytes = (Number(elements) / info.blockSize) * info.typeSize;
  return { name, shape, type, offset, bytes };
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Offsets aligned, inside the file, and no two tensors' data overlapping. */
function checkTensorPlacement(c: HeaderCursor, raw: RawTensorInfo[], dataOffset: number, alignment: number): void {
  const size = BigInt(c.size);
  for (const r of raw) {
    const start = BigInt(dataOffset) + r.offset;
    if (start > size) {
      c.fail(`tensor '${r.name}': offset ${r.offset} (file position ${start}) is past the end of the file (size ${size})`);
    }
    if (start + BigInt(r.bytes) > size) {
      c.fail(`tensor '${r.name}': data [${start}, ${start + BigInt(r.bytes)}) runs past the end of the file (size ${size})`);
    }
    if (r.offset % BigInt(alignment) !== 0n) c.fail(`tensor '${r.name}': offset ${r.offset} is not a multiple of the alignment ${alignment}`);
  }
  const byOffset = [...raw].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const cur = byOffset[i];
    if (prev.offset + BigInt(prev.bytes) > cur.offset) {
      c.fail(`tensor '${cur.name}': data at offset ${cur.offset} overlaps tensor '${prev.name}' (offset ${prev.offset}, ${prev.bytes} bytes)`);
    }
  }
}

/** Parses and validates one GGUF file's header. `split` is the shard index stored in each TensorInfo. */
export async function readHeader(source: ByteSource, path: string = source.name, split = 0): Promise<GGUFHeader> {
  const c = new HeaderCursor(source, path);
  if (source.size < 4) c.fail(`not a GGUF file (${source.size} bytes, too small)`);
  const magic = await c.u32(() => "magic");
  if (magic !== GGUF_MAGIC) {
    const shown = Buffer.from(new Uint32Array([magic]).buffer).toString("latin1").replace(/[^\x20-\x7e]/g, "?");
    c.fail(`not a GGUF file (magic '${shown}', expected 'GGUF')`);
  }
  const version = await c.u32(() => "version");
  if (version !== 2 && version !== 3) c.fail(`unsupported GGUF version ${version} (only versions 2 and 3 are supported)`);
  const tensorCount = await c.u64(() => "tensor count");
  const kvCount = await c.u64(() => "metadata key count");
  if (tensorCount * BigInt(MIN_TENSOR_INFO_BYTES) > BigInt(c.remaining)) {
    c.fail(`tensor count ${tensorCount} is impossible in a file of ${c.size} bytes`);
  }
  if (kvCount * BigInt(MIN_KV_BYTES) > BigInt(c.remaining)) {
    c.fail(`metadata key count ${kvCount} is impossible in a file of ${c.size} bytes`);
  }

  const kv: GGUFKV[] = [];
  const keys = new Set<string>();
  for (let i = 0; i < Number(kvCount); i++) kv.push(await readKV(c, i, keys));
  const alignment = readAlignment(c, kv);

  const raw: RawTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < Number(tensorCount); i++) raw.push(await readTensorInfo(c, i, names));

  const dataOffset = alignUp(c.pos, alignment);
  if (raw.length > 0 && dataOffset > c.size) {
    c.fail(`data section starts at ${dataOffset}, past the end of the file (size ${c.size})`);
  }
  checkTensorPlacement(c, raw, dataOffset, alignment);
  const tensors: TensorInfo[] = raw.map((r) => ({
    name: r.name,
    shape: r.shape,
    type: r.type,
    offset: Number(r.offset),
    bytes: r.bytes,
    split,
  }));
  return { path, version, alignment, kv, tensors, dataOffset, fileSize: source.size };
}

/**
 * `prefix-00001-of-00003.gguf` → { prefix, index: 0, count: 3 } (llama.cpp's split naming); not
 * @huggingface/gguf's parseGgufShardFilename/ggufAllShards: those shards' headers go through its parser
 */
export function parseSplitName(path: string): { prefix: string; index: number; count: number } | undefined {
  const m = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/.exec(path);
  if (!m) return undefined;
  const index = Number(m[2]) - 1;
  const count = Number(m[3]);
  if (index < 0 || count < 1 || index >= count) return undefined;
  return { prefix: m[1], index, count };
}

/** llama.cpp's llama_split_path: `<prefix>-%05d-of-%05d.gguf` with a 1-based shard number. */
export function splitPath(prefix: string, index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `${prefix}-${pad(index + 1)}-of-${pad(count)}.gguf`;
}

function kvNumber(h: GGUFHeader, key: string, type: GGUFValueType): number | undefined {
  const e = h.kv.find((x) => x.key === key);
  if (!e) return undefined;
  if (e.type !== type) {
    throw new UserError(`${h.path}: key '${key}' has type ${valueTypeName(e.type)}, must be ${valueTypeName(type)}`);
  }
  return e.value as number;
}

/** One GGUF file's header (a path or an http(s) URL), opened and closed around the read. */
export async function readHeaderAt(pathOrUrl: string, split = 0, opts: SourceOptions = {}): Promise<GGUFHeader> {
  const source = await openSource(pathOrUrl, opts);
  try {
    return await readHeader(source, pathOrUrl, split);
  } finally {
    await source.close();
  }
}

/** Checks one shard's split.* keys against the shard number and count llama.cpp expects. */
function checkShardKeys(h: GGUFHeader, index: number, count: number): void {
  const no = kvNumber(h, "split.no", GGUFValueType.UINT16);
  const n = kvNumber(h, "split.count", GGUFValueType.UINT16);
  if (no === undefined) throw new UserError(`${h.path}: split shard has no 'split.no' key`);
  if (no !== index) throw new UserError(`${h.path}: split.no is ${no}, expected ${index}`);
  if (n !== count) throw new UserError(`${h.path}: split.count is ${n ?? "missing"}, expected ${count}`);
}

/**
 * Opens a model from its path or URL: a single file, or all shards of a split model (any shard's
 * name may be given). Only headers are read.
 */
export async function openModel(pathOrUrl: string, opts: SourceOptions = {}): Promise<GGUFModel> {
  const named = parseSplitName(pathOrUrl);
  const firstPath = named ? splitPath(named.prefix, 0, named.count) : pathOrUrl;
  const first = await readHeaderAt(firstPath, 0, opts);
  const count = kvNumber(first, "split.count", GGUFValueType.UINT16) ?? 1;
  if (count === 0) throw new UserError(`${firstPath}: split.count is 0`);
  if (count === 1 && !named) return { files: [first], kv: first.kv, tensors: first.tensors, sourceOptions: opts };
  if (!named) {
    throw new UserError(`${pathOrUrl}: split.count is ${count} but the name is not of the form <prefix>-00001-of-${splitPath("", 0, count).slice(-10, -5)}.gguf`);
  }
  if (named.count !== count) throw new UserError(`${firstPath}: split.count is ${count} but the file name says ${named.count}`);

  const files = [first];
  for (let i = 1; i < count; i++) files.push(await readHeaderAt(splitPath(named.prefix, i, count), i, opts));
  const tensors: TensorInfo[] = [];
  const owner = new Map<string, string>();
  files.forEach((h, i) => {
    checkShardKeys(h, i, count);
    for (const t of h.tensors) {
      const other = owner.get(t.name);
      if (other !== undefined) throw new UserError(`${h.path}: tensor '${t.name}' is also in ${other}`);
      owner.set(t.name, h.path);
      tensors.push(t);
    }
  });
  files.forEach((h) => {
    const declared = kvNumber(h, "split.tensors.count", GGUFValueType.INT32);
    if (declared !== undefined && declared !== tensors.length) {
      throw new UserError(`${h.path}: split.tensors.count is ${declared} but the shards hold ${tensors.length} tensors`);
    }
  });
  return { files, kv: first.kv, tensors, sourceOptions: opts };
}

/** Positioned reads of tensor data in bounded chunks; keeps every shard open until close(). */
export class TensorReader {
  private readonly sources = new Map<number, Promise<ByteSource>>();

  constructor(readonly model: GGUFModel) {}

  /** `length` bytes of `tensor`'s data from `byteOffset` (relative to the tensor's start). */
  async read(tensor: TensorInfo, byteOffset = 0, length = tensor.bytes - byteOffset): Promise<Uint8Array> {
    if (byteOffset < 0 || length < 0 || byteOffset + length > tensor.bytes) {
      throw new Error(`tensor '${tensor.name}': read [${byteOffset}, ${byteOffset + length}) outside its ${tensor.bytes} bytes`);
    }
    const file = this.model.files[tensor.split];
    let source = this.sources.get(tensor.split);
    if (!source) {
      source = openSource(file.path, this.model.sourceOptions);
      this.sources.set(tensor.split, source);
    }
    return (await source).read(file.dataOffset + tensor.offset + byteOffset, length);
  }

  async close(): Promise<void> {
    const all = [...this.sources.values()];
    this.sources.clear();
    // a shard that failed to open has nothing to close
    for (const s of all) await s.then((src) => src.close(), () => undefined);
  }
}

/** One bounded read of tensor data (opens and closes the file; use TensorReader for many reads). */
export async function readTensorData(model: GGUFModel, tensor: TensorInfo, byteOffset = 0, length = tensor.bytes - byteOffset): Promise<Uint8Array> {
  const reader = new TensorReader(model);
  try {
    return await reader.read(tensor, byteOffset, length);
  } finally {
    await reader.close();
  }
}
