// On-disk cache of the base model's distributions, one file per (base file hash, text hash, ctx,
// chunks). The file is exactly a llama-perplexity `--kl-divergence-base` file, so llama.cpp can read
// hquant's cache and vice versa:
//   "_logits_" · u32 n_ctx · i32 n_vocab · i32 n_chunk · i32 tokens[n_ctx·n_chunk] ·
//   per chunk, per scored position: u16[2·⌈n_vocab/2⌉ + 4] (float32 scale, float32 min log-prob,
//   then each token's log-prob as round((l − l_min)/scale), l_min clamped to l_max − 16)
// A small JSON sidecar keeps the base model's own figures (PPL from the unpacked distribution).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { packedRowLength } from "./kld-math.js";

const MAGIC = "_logits_";
const HEADER_BYTES = 8 + 4 + 4 + 4;

export interface BaseCacheKey {
  modelSha256: string;
  textSha256: string;
  ctx: number;
  nChunk: number;
}

export interface BaseSummary {
  ppl: number;
  pplErr: number;
  positions: number;
}

/** Bytes per read of sha256File: a stream's 64 KiB reads cost about twice the CPU of the hash itself. */
const HASH_READ_BYTES = 8 << 20;

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(file, "r");
    const buf = Buffer.allocUnsafe(HASH_READ_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } catch (err) {
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  } finally {
    await fh?.close();
  }
  return hash.digest("hex");
}

export function sha256Text(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Cache file path (without extension) for a key. */
export function cachePath(cacheDir: string, key: BaseCacheKey): string {
  const id = createHash("sha256").update(`${key.modelSha256}\n${key.textSha256}\nctx=${key.ctx}\nchunks=${key.nChunk}`).digest("hex");
  return path.join(cacheDir, `base-${id.slice(0, 32)}`);
}

/** Streams a base file chunk by chunk to a temporary name; `finish` renames it into place. */
export class BaseCacheWriter {
  private readonly tmp: string;
  private readonly fd: number;
  private chunksWritten = 0;

  constructor(
    private readonly file: string,
    private readonly ctx: number,
    private readonly nVocab: number,
    private readonly nChunk: number,
    tokens: ArrayLike<number>,
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.tmp = `${file}.${process.pid}.tmp`;
    this.fd = fs.openSync(this.tmp, "w");
    const header = Buffer.alloc(HEADER_BYTES);
    header.write(MAGIC, 0, "latin1");
    header.writeUInt32LE(ctx, 8);
    header.writeInt32LE(nVocab, 12);
    header.writeInt32LE(nChunk, 16);
    fs.writeSync(this.fd, header);
    const toks = new Int32Array(ctx * nChunk);
    for (let i = 0; i < toks.length; i++) toks[i] = tokens[i];
    fs.writeSync(this.fd, new Uint8Array(toks.buffer));
  }

  /** Appends one chunk's packed rows (scored positions × packedRowLength(nVocab)). */
  appendChunk(packed: Uint16Array): void {
    fs.writeSync(this.fd, new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength));
    this.chunksWritten++;
  }

  /**
   * Appends `nChunks` chunks' packed rows without blocking this thread (the next chunks are computed
   * meanwhile); `packed` must stay untouched until the promise settles. Calls must not overlap.
   */
  async appendChunksAsync(packed: Uint16Array, nChunks: number): Promise<void> {
    const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
    for (let done = 0; done < bytes.length; ) {
      const n = await new Promise<number>((resolve, reject) => fs.write(this.fd, bytes, done, bytes.length - done, null, (err, written) => (err ? reject(err) : resolve(written))));
      done += n;
    }
    this.chunksWritten += nChunks;
  }

  finish(summary: BaseSummary): void {
    fs.closeSync(this.fd);
    if (this.chunksWritten !== this.nChunk) throw new Error(`base cache: wrote ${this.chunksWritten} of ${this.nChunk} chunks`);
    fs.writeFileSync(`${this.file}.json`, JSON.stringify({ ctx: this.ctx, nVocab: this.nVocab, nChunk: this.nChunk, ...summary }, null, 1) + "\n");
    fs.renameSync(this.tmp, `${this.file}.kld`);
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(this.tmp, { force: true });
  }
}

/** Reads a base file written by BaseCacheWriter or by llama-perplexity --kl-divergence-base. */
export class BaseCacheReader {
  readonly rowLength: number;
  private readonly scoredPerChunk: number;

  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly ctx: number,
    readonly nVocab: number,
    readonly nChunk: number,
  ) {
    this.rowLength = packedRowLength(nVocab);
    this.scoredPerChunk = ctx - 1 - Math.floor(ctx / 2);
  }

  /** Opens `file` and checks it was made for these tokens; returns undefined when absent. */
  static open(file: string, tokens: ArrayLike<number>, ctx: number, nChunk: number): BaseCacheReader | undefined {
    if (!fs.existsSync(file)) return undefined;
    const fd = fs.openSync(file, "r");
    const header = Buffer.alloc(HEADER_BYTES);
    fs.readSync(fd, header, 0, HEADER_BYTES, 0);
    const bad = (why: string): never => {
      fs.closeSync(fd);
      throw new UserError(`${file}: not a usable base distribution file (${why}); delete it to recompute`);
    };
    if (header.toString("latin1", 0, 8) !== MAGIC) bad("no _logits_ magic");
    const fileCtx = header.readUInt32LE(8);
    const nVocab = header.readInt32LE(12);
    const fileChunks = header.readInt32LE(16);
    if (fileCtx !== ctx) bad(`n_ctx ${fileCtx}, expected ${ctx}`);
    if (fileChunks < nChunk) bad(`${fileChunks} chunks, expected ${nChunk}`);
    if (nVocab <= 0 || nVocab > 1 << 24) bad(`n_vocab ${nVocab}`);
    const reader = new BaseCacheReader(file, fd, ctx, nVocab, fileChunks);
    const expectedSize = reader.chunkOffset(fileChunks);
    if (fs.fstatSync(fd).size !== expectedSize) bad(`size ${fs.fstatSync(fd).size}, expected ${expectedSize}`);
    const toks = new Int32Array(ctx * nChunk);
    fs.readSync(fd, new Uint8Array(toks.buffer), 0, toks.byteLength, HEADER_BYTES);
    for (let i = 0; i < toks.length; i++) if (toks[i] !== tokens[i]) bad(`token ${i} differs from this text's tokenization`);
    return reader;
  }

  private chunkOffset(index: number): number {
    return HEADER_BYTES + 4 * this.ctx * this.nChunk + index * this.scoredPerChunk * this.rowLength * 2;
  }

  /** The packed rows of chunk `index`. */
  readChunk(index: number): Uint16Array {
    const out = new Uint16Array(this.scoredPerChunk * this.rowLength);
    fs.readSync(this.fd, new Uint8Array(out.buffer), 0, out.byteLength, this.chunkOffset(index));
    return out;
  }

  /** Reads chunks first … first+count−1 into `into` without blocking this thread. */
  async readChunksAsync(first: number, count: number, into: Uint16Array): Promise<void> {
    const bytes = new Uint8Array(into.buffer, into.byteOffset, count * this.scoredPerChunk * this.rowLength * 2);
    const start = this.chunkOffset(first);
    for (let done = 0; done < bytes.length; ) {
      const n = await new Promise<number>((resolve, reject) => fs.read(this.fd, bytes, done, bytes.length - done, start + done, (err, got) => (err ? reject(err) : resolve(got))));
      if (n === 0) throw new Error(`${this.file}: ends inside chunk ${first + Math.floor(done / (this.scoredPerChunk * this.rowLength * 2))}`);
      done += n;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export function readBaseSummary(file: string): BaseSummary | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(`${file}.json`, "utf8")) as BaseSummary;
    return typeof j.ppl === "number" ? j : undefined;
  } catch {
    return undefined;
  }
}
