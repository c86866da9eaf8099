// The legacy llama-imatrix `.dat` format (common/imatrix-loader.cpp, common_imatrix_load_legacy):
//   int32 n_entries
//   n_entries × { int32 name_len, name bytes, int32 ncall, int32 nval, float32 values[nval] }
//   optional: int32 chunk_count, int32 dataset_len, dataset bytes
// There is no magic number, so every length is checked against what is left of the file.
import { UserError } from "../errors.js";
import type { RawImatrixEntry } from "./normalize.js";

export interface RawImatrix {
  entries: RawImatrixEntry[];
  datasets: string[];
  chunkCount: number;
}

const MIN_ENTRY_BYTES = 4 + 1 + 4 + 4 + 4; // name_len, ≥ 1 name byte, ncall, nval, ≥ 1 value

class Cursor {
  pos = 0;
  constructor(
    readonly file: string,
    readonly bytes: Uint8Array,
  ) {}
  get left(): number {
    return this.bytes.length - this.pos;
  }
  i32(what: string): number {
    if (this.left < 4) throw new UserError(`${this.file}: truncated imatrix: ${what} missing at offset ${this.pos}`);
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getInt32(0, true);
    this.pos += 4;
    return v;
  }
  take(n: number): Uint8Array {
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function parseLegacyImatrix(file: string, bytes: Uint8Array): RawImatrix {
  const c = new Cursor(file, bytes);
  const nEntries = c.i32("entry count");
  if (nEntries < 1 || nEntries * MIN_ENTRY_BYTES > bytes.length - 4) {
    throw new UserError(`${file}: not an imatrix file (entry count ${nEntries} does not fit a ${bytes.length}-byte file)`);
  }
  const entries: RawImatrixEntry[] = [];
  const seen = new Set<string>();
  for (let i = 1; i <= nEntries; i++) {
    const nameLen = c.i32(`entry ${i} name length`);
    if (nameLen < 1 || nameLen > c.left) throw new UserError(`${file}: entry ${i}: bad name length ${nameLen}`);
    let name: string;
    try {
      name = utf8.decode(c.take(nameLen));
    } catch {
      throw new UserError(`${file}: entry ${i}: name is not valid UTF-8`);
    }
    const ncall = c.i32(`entry ${i} (${name}) call count`);
    const nval = c.i32(`entry ${i} (${name}) value count`);
    if (nval < 1 || nval * 4 > c.left) {
      throw new UserError(`${file}: entry ${i} (${name}): bad value count ${nval} (${c.left} bytes left)`);
    }
    if (seen.has(name)) throw new UserError(`${file}: entry ${i}: duplicate entry ${name}`);
    seen.add(name);
    const sums = new Float32Array(nval);
    new Uint8Array(sums.buffer).set(c.take(nval * 4));
    entries.push({ name, sums, counts: [ncall] });
  }
  // optional trailer, read as leniently as llama.cpp does
  let chunkCount = 0;
  const datasets: string[] = [];
  if (c.left >= 4) {
    chunkCount = c.i32("chunk count");
    if (c.left >= 4) {
      const len = c.i32("dataset name length");
      if (len > 0 && len <= c.left) {
        const raw = c.take(len);
        const nul = raw.indexOf(0);
        datasets.push(Buffer.from(nul < 0 ? raw : raw.subarray(0, nul)).toString("utf8"));
      }
    }
  }
  return { entries, datasets, chunkCount };
}
