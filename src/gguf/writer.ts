// GGUF writer, byte for byte like llama.cpp's gguf_write_out (ggml/src/gguf.cpp): magic, version,
// u64 tensor count, u64 KV count, the KVs, the tensor infos (n_dims u32, ne[] u64, type i32,
// offset u64), zero padding to the alignment; then each tensor's data in order, each followed by
// zero padding to the alignment (the last one too). All offsets are known up front from types
// and shapes, so the output size is exact before any data is written.
import { promises as fsp } from "node:fs";
import { UserError } from "../errors.js";
import { tensorBytes, type GGMLType } from "./ggml-types.js";
import { GGUFValueType, type GGUFKV, type GGUFScalar } from "./model.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from "./reader.js";
import { resolveOutputTarget, tempNameFor } from "./output-path.js";

export interface TensorSpec {
  name: string;
  /** ggml ne order: shape[0] is the row length */
  shape: readonly number[];
  type: GGMLType;
}

export interface PlacedTensor extends TensorSpec {
  /** offset relative to the data section */
  offset: number;
}

type Setter = (dv: DataView, at: number, v: GGUFScalar) => void;
const FIXED_SETTERS: Partial<Record<GGUFValueType, { size: number; set: Setter }>> = {
  [GGUFValueType.UINT8]: { size: 1, set: (dv, at, v) => dv.setUint8(at, v as number) },
  [GGUFValueType.INT8]: { size: 1, set: (dv, at, v) => dv.setInt8(at, v as number) },
  [GGUFValueType.UINT16]: { size: 2, set: (dv, at, v) => dv.setUint16(at, v as number, true) },
  [GGUFValueType.INT16]: { size: 2, set: (dv, at, v) => dv.setInt16(at, v as number, true) },
  [GGUFValueType.UINT32]: { size: 4, set: (dv, at, v) => dv.setUint32(at, v as number, true) },
  [GGUFValueType.INT32]: { size: 4, set: (dv, at, v) => dv.setInt32(at, v as number, true) },
  [GGUFValueType.FLOAT32]: { size: 4, set: (dv, at, v) => dv.setFloat32(at, v as number, true) },
  [GGUFValueType.BOOL]: { size: 1, set: (dv, at, v) => dv.setUint8(at, v ? 1 : 0) },
  [GGUFValueType.UINT64]: { size: 8, set: (dv, at, v) => dv.setBigUint64(at, BigInt(v as number | bigint), true) },
  [GGUFValueType.INT64]: { size: 8, set: (dv, at, v) => dv.setBigInt64(at, BigInt(v as number | bigint), true) },
  [GGUFValueType.FLOAT64]: { size: 8, set: (dv, at, v) => dv.setFloat64(at, v as number, true) },
};

const utf8 = new TextEncoder();

/** A growable little-endian byte buffer (the header is at most a few MB). */
class ByteBuilder {
  private buf = new Uint8Array(64 * 1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.dv.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.dv.setInt32(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.reserve(8);
    this.dv.setBigUint64(at, BigInt(v), true);
  }
  fixed(type: GGUFValueType, v: GGUFScalar): void {
    const s = FIXED_SETTERS[type];
    if (!s) throw new Error(`GGUF writer: value type ${type} is not a fixed-size type`);
    const at = this.reserve(s.size); // may grow the buffer: take the DataView after
    s.set(this.dv, at, v);
  }
  string(s: string): void {
    const bytes = utf8.encode(s);
    this.u64(bytes.length);
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad); // fresh capacity is zero-filled; reserve never reuses written bytes
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeValue(b: ByteBuilder, type: GGUFValueType, v: GGUFScalar, key: string): void {
  if (type === GGUFValueType.STRING) {
    if (typeof v !== "string") throw new Error(`GGUF writer: key '${key}' is a string but holds ${typeof v}`);
    b.string(v);
  } else {
    b.fixed(type, v);
  }
}

function writeKV(b: ByteBuilder, kv: GGUFKV): void {
  b.string(kv.key);
  if (kv.type === GGUFValueType.ARRAY) {
    if (kv.arrayType === undefined || !Array.isArray(kv.value)) throw new Error(`GGUF writer: array key '${kv.key}' lacks arrayType or values`);
    b.u32(GGUFValueType.ARRAY);
    b.u32(kv.arrayType);
    b.u64(kv.value.length);
    for (const v of kv.value) writeValue(b, kv.arrayType, v, kv.key);
  } else {
    if (Array.isArray(kv.value)) throw new Error(`GGUF writer: scalar key '${kv.key}' holds an array`);
    b.u32(kv.type);
    writeValue(b, kv.type, kv.value, kv.key);
  }
}

function checkAlignment(alignment: number): void {
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new Error(`GGUF writer: alignment ${alignment} is not a power of two`);
  }
}

/** general.alignment as the metadata declares it (32 when absent). */
function declaredAlignment(kv: readonly GGUFKV[]): number {
  const declared = kv.find((e) => e.key === "general.alignment");
  if (!declared) return GGUF_DEFAULT_ALIGNMENT;
  const a = typeof declared.value === "bigint" ? Number(declared.value) : declared.value;
  if (declared.type !== GGUFValueType.UINT32 || typeof a !== "number" || a <= 0 || (a & (a - 1)) !== 0) {
    throw new UserError(`general.alignment ${String(declared.value)} is not a u32 power of two`);
  }
  return a;
}

/**
 * llama-quantize copies general.alignment from its input but lays its output out with 32 bytes. The
 * file is what it says only when a reader that follows the key finds the same data start and
 * tensor offsets; otherwise its bytes are unreadable, and hquant refuses to write them.
 */
function checkDeclaredLayout(kv: readonly GGUFKV[], tensors: readonly TensorSpec[], alignment: number, version: number, offsets: number[]): void {
  const declared = declaredAlignment(kv);
  if (declared === alignment) return;
  const rawHeader = encodeHeader(kv, tensors.map((t, i) => ({ ...t, offset: offsets[i]! })), 1, version).length;
  const theirs = tensorOffsets(tensors, declared).offsets;
  const bad = tensors.findIndex((_, i) => theirs[i] !== offsets[i]);
  if (alignUp(rawHeader, declared) !== alignUp(rawHeader, alignment) || bad >= 0) {
    const where = bad >= 0 ? `tensor ${tensors[bad]!.name} would be at offset ${offsets[bad]}, not ${theirs[bad]}` : "the tensor data would start off its alignment";
    throw new UserError(
      `the input's general.alignment ${declared}: llama-quantize keeps this key but pads the output to ${alignment} bytes, so ${where}; refusing to write an unreadable file`,
    );
  }
}

/** The header bytes (padded to the alignment) for tensors at the given offsets. */
export function encodeHeader(kv: readonly GGUFKV[], tensors: readonly PlacedTensor[], alignment: number, version = 3): Uint8Array {
  const b = new ByteBuilder();
  b.u32(GGUF_MAGIC);
  b.u32(version);
  b.u64(tensors.length);
  b.u64(kv.length);
  for (const e of kv) writeKV(b, e);
  for (const t of tensors) {
    b.string(t.name);
    b.u32(t.shape.length);
    for (const d of t.shape) b.u64(d);
    b.i32(t.type);
    b.u64(t.offset);
  }
  b.padTo(alignment);
  return b.bytes();
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Offsets of tensors laid out in order, each padded to the alignment (gguf_add_tensor). */
export function tensorOffsets(tensors: readonly TensorSpec[], alignment: number): { offsets: number[]; dataSize: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    offsets.push(at);
    at += alignUp(tensorBytes(t.type, t.shape), alignment);
  }
  return { offsets, dataSize: at };
}

/** Pure: header bytes, each tensor's offset, and the data section's size (padding included). */
export function serializeHeader(
  kv: readonly GGUFKV[],
  tensors: readonly TensorSpec[],
  alignment: number = GGUF_DEFAULT_ALIGNMENT,
  version = 3,
): { header: Uint8Array; offsets: number[]; dataSize: number } {
  checkAlignment(alignment);
  const { offsets, dataSize } = tensorOffsets(tensors, alignment);
  checkDeclaredLayout(kv, tensors, alignment, version, offsets);
  const header = encodeHeader(kv, tensors.map((t, i) => ({ ...t, offset: offsets[i] })), alignment, version);
  return { header, offsets, dataSize };
}

export function outputHeaderSize(kv: readonly GGUFKV[], tensors: readonly TensorSpec[], alignment: number = GGUF_DEFAULT_ALIGNMENT): number {
  return serializeHeader(kv, tensors, alignment).header.length;
}

export function outputFileSize(kv: readonly GGUFKV[], tensors: readonly TensorSpec[], alignment: number = GGUF_DEFAULT_ALIGNMENT): number {
  const { header, dataSize } = serializeHeader(kv, tensors, alignment);
  return header.length + dataSize;
}

// ---- temp files: no partial output ----
// Library code installs no signal handlers: a caller cancels through its AbortSignal (the build
// then aborts its writers), and a CLI that must exit at once can remove openTempFiles() itself.

const liveTempFiles = new Set<string>();

/** Temp files currently open by writers in this process. */
export function openTempFiles(): string[] {
  return [...liveTempFiles];
}

export function tempPathFor(target: string): string {
  // not node:crypto: its first use costs ~20 ms of start-up, and the name only has to be unlikely
  // to clash (the file is created exclusively)
  const tag = Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
  return tempNameFor(target, process.pid, tag);
}

export interface WriterOptions {
  alignment?: number;
  version?: number;
}

const FLUSH_BYTES = 1024 * 1024;

/**
 * Streams one GGUF file: the header at creation, then tensor data in order via write(); finish()
 * renames the temp file over the target, abort() (or any write error) removes it.
 */
export class GGUFFileWriter {
  readonly headerSize: number;
  readonly offsets: number[];
  readonly dataSize: number;
  private readonly tensorSizes: number[];
  private tensorIndex = 0;
  private tensorWritten = 0;
  private position = 0;
  /** bytes not written yet, copied into one staging buffer reused for the whole file (no garbage per write) */
  private readonly staging = Buffer.allocUnsafe(FLUSH_BYTES);
  private pendingBytes = 0;
  private state: "open" | "completed" | "done" = "open";

  private constructor(
    readonly target: string,
    /** the file the rename replaces: target, or the file its symlink points to */
    readonly file: string,
    readonly tempPath: string,
    private readonly handle: fsp.FileHandle,
    header: Uint8Array,
    offsets: number[],
    dataSize: number,
    tensors: readonly TensorSpec[],
    private readonly alignment: number,
  ) {
    this.headerSize = header.length;
    this.offsets = offsets;
    this.dataSize = dataSize;
    this.tensorSizes = tensors.map((t) => tensorBytes(t.type, t.shape));
  }

  get fileSize(): number {
    return this.headerSize + this.dataSize;
  }

  static async create(target: string, kv: readonly GGUFKV[], tensors: readonly TensorSpec[], opts: WriterOptions = {}): Promise<GGUFFileWriter> {
    const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    let serialized: ReturnType<typeof serializeHeader>;
    try {
      serialized = serializeHeader(kv, tensors, alignment, opts.version ?? 3);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(`${target}: ${err.message}`);
      throw err;
    }
    const { header, offsets, dataSize } = serialized;
    // a symlink is written through: the temp file goes next to the file it points to
    const resolved = resolveOutputTarget(target);
    const tempPath = tempPathFor(resolved.file);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(tempPath, "wx");
    } catch (err) {
      throw new UserError(`${target}: cannot create output file: ${(err as Error).message}`);
    }
    liveTempFiles.add(tempPath);
    if (resolved.mode !== undefined) {
      // an existing output keeps its permissions (the umask'd default is for new files)
      await handle.chmod(resolved.mode).catch(() => undefined);
    }
    const w = new GGUFFileWriter(target, resolved.file, tempPath, handle, header, offsets, dataSize, tensors, alignment);
    await w.append(header);
    if (tensors.length === 0) await w.flush();
    return w;
  }

  /** Copies `bytes` into the staging buffer, writing it out each time it is full. */
  private async append(bytes: Uint8Array): Promise<void> {
    for (let done = 0; done < bytes.length; ) {
      if (this.pendingBytes === this.staging.length) await this.flush();
      const n = Math.min(bytes.length - done, this.staging.length - this.pendingBytes);
      this.staging.set(bytes.subarray(done, done + n), this.pendingBytes);
      this.pendingBytes += n;
      done += n;
    }
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunk = this.staging.subarray(0, this.pendingBytes);
    this.pendingBytes = 0;
    try {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await this.handle.write(chunk, done, chunk.length - done, this.position);
        done += bytesWritten;
        this.position += bytesWritten;
      }
    } catch (err) {
      await this.abort();
      throw new UserError(`${this.target}: write failed: ${(err as Error).message}`);
    }
  }

  /** The next bytes of the current tensor's data (chunks must not cross a tensor's end). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.state !== "open") throw new Error(`GGUF writer ${this.target}: write after finish/abort`);
    const size = this.tensorSizes[this.tensorIndex];
    if (size === undefined) throw new Error(`GGUF writer ${this.target}: more data than the ${this.tensorSizes.length} tensors hold`);
    if (this.tensorWritten + chunk.length > size) {
      throw new Error(`GGUF writer ${this.target}: tensor ${this.tensorIndex} gets ${this.tensorWritten + chunk.length} bytes, expected ${size}`);
    }
    // copied: the caller may reuse its buffer once we return
    await this.append(chunk);
    this.tensorWritten += chunk.length;
    if (this.tensorWritten === size) {
      await this.append(new Uint8Array(alignUp(size, this.alignment) - size));
      this.tensorIndex++;
      this.tensorWritten = 0;
    }
    if (this.tensorIndex === this.tensorSizes.length) await this.flush();
  }

  /** One whole tensor's data. */
  async writeTensor(data: Uint8Array): Promise<void> {
    const size = this.tensorSizes[this.tensorIndex];
    if (this.tensorWritten !== 0 || data.length !== size) {
      throw new Error(`GGUF writer ${this.target}: tensor ${this.tensorIndex} is ${size} bytes, got ${data.length}`);
    }
    await this.write(data);
  }

  get tensorsWritten(): number {
    return this.tensorIndex;
  }

  /** Flushes and closes the temp file (all data written); the target is untouched until commit(). */
  async complete(): Promise<void> {
    if (this.state !== "open") return;
    if (this.tensorIndex !== this.tensorSizes.length) {
      await this.abort();
      throw new Error(`GGUF writer ${this.target}: finished after ${this.tensorIndex} of ${this.tensorSizes.length} tensors`);
    }
    await this.flush();
    await this.handle.close();
    if (this.position !== this.fileSize) throw new Error(`GGUF writer ${this.target}: wrote ${this.position} bytes, expected ${this.fileSize}`);
    this.state = "completed";
  }

  /** Renames the completed temp file over the target. */
  async commit(): Promise<void> {
    if (this.state !== "completed") throw new Error(`GGUF writer ${this.target}: commit before complete`);
    try {
      await fsp.rename(this.tempPath, this.file);
    } catch (err) {
      await this.abort();
      throw new UserError(`${this.target}: cannot move the finished output into place: ${(err as Error).message}`);
    }
    liveTempFiles.delete(this.tempPath);
    this.state = "done";
  }

  async finish(): Promise<void> {
    await this.complete();
    await this.commit();
  }

  /** Removes the temp file; safe to call more than once and after errors. */
  async abort(): Promise<void> {
    if (this.state === "done") return;
    if (this.state === "open") await this.handle.close().catch(() => undefined);
    this.state = "done";
    await fsp.rm(this.tempPath, { force: true });
    liveTempFiles.delete(this.tempPath);
  }
}
