// Importance matrices (imatrix) in both llama.cpp formats: the GGUF file written by recent
// llama-imatrix (`<name>.in_sum2` / `<name>.counts` F32 tensors, `imatrix.datasets`,
// `imatrix.chunk_count`, `imatrix.chunk_size`) and the legacy `.dat`. Either way the result is what
// llama-quantize passes to llama_model_quantize: tensor name → importance vector, already divided
// by the counts, plus what it records under `quantize.imatrix.*`.
import { UserError } from "../errors.js";
import { GGMLType, typeName } from "../gguf/ggml-types.js";
import { GGUFValueType, findKV, type GGUFKV, type GGUFModel, type TensorInfo } from "../gguf/model.js";
import { GGUF_MAGIC, readHeader, TensorReader } from "../gguf/reader.js";
import { openFileSource, type ByteSource } from "../gguf/source.js";
import { parseLegacyImatrix, type RawImatrix } from "./legacy.js";
import { normalizeGGUFEntry, normalizeLegacyEntry, type RawImatrixEntry } from "./normalize.js";

export interface Imatrix {
  /** the path as the user gave it (llama-quantize records it as given) */
  file: string;
  format: "gguf" | "legacy";
  /** tensor name → importance (ne0 values, or ne0 × n_expert for expert tensors) */
  vectors: Map<string, Float32Array>;
  datasets: string[];
  /** chunks the statistics were collected on (0 when unknown) */
  chunkCount: number;
}

const SUMS_SUFFIX = ".in_sum2";
const COUNTS_SUFFIX = ".counts";

/** GGUF imatrix (recent llama-imatrix) or the legacy .dat format: told apart by the magic. */
async function startsWithGGUFMagic(source: ByteSource): Promise<boolean> {
  if (source.size < 4) return false;
  const head = await source.read(0, 4);
  return new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === GGUF_MAGIC;
}

/** An imatrix file as stored: raw sums and counts per entry (what `--in-file` merges). */
export interface RawImatrixFile extends RawImatrix {
  format: "gguf" | "legacy";
}

/** Loads and validates an imatrix file of either format, without normalizing it. */
export async function loadRawImatrix(file: string): Promise<RawImatrixFile> {
  const source = await openFileSource(file);
  try {
    const isGGUF = await startsWithGGUFMagic(source);
    if (isGGUF) return await loadGGUFRaw(file, await readHeader(source, file));
    const raw = parseLegacyImatrix(file, await source.read(0, source.size));
    for (const e of raw.entries) checkFinite(file, e.name, "value", e.sums);
    return { format: "legacy", ...raw };
  } finally {
    await source.close();
  }
}

/** Loads and validates an imatrix file of either format. */
export async function loadImatrix(file: string): Promise<Imatrix> {
  const raw = await loadRawImatrix(file);
  const vectors = new Map<string, Float32Array>();
  for (const e of raw.entries) {
    vectors.set(e.name, raw.format === "legacy" ? normalizeLegacyEntry(e.sums, e.counts[0]) : normalizeGGUFEntry(e.sums, Float32Array.from(e.counts)));
  }
  return { file, format: raw.format, vectors, datasets: raw.datasets, chunkCount: raw.chunkCount };
}

function checkFinite(file: string, name: string, what: string, values: Float32Array | readonly number[]): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new UserError(`${file}: entry ${name}: non-finite ${what} ${values[i]} at index ${i}`);
    }
  }
}

function u32Key(file: string, kv: readonly GGUFKV[], key: string): number {
  const e = findKV(kv, key);
  if (!e) throw new UserError(`${file}: not an imatrix file: key '${key}' is missing`);
  if (e.type !== GGUFValueType.UINT32) throw new UserError(`${file}: key '${key}' must be a u32`);
  return e.value as number;
}

function datasetsKey(file: string, kv: readonly GGUFKV[]): string[] {
  const e = findKV(kv, "imatrix.datasets");
  if (!e) throw new UserError(`${file}: not an imatrix file: key 'imatrix.datasets' is missing`);
  // llama.cpp only reads the key when it is an array of strings, and ignores it otherwise
  if (e.type !== GGUFValueType.ARRAY || e.arrayType !== GGUFValueType.STRING) return [];
  return e.value as string[];
}

async function loadGGUFRaw(file: string, header: Awaited<ReturnType<typeof readHeader>>): Promise<RawImatrixFile> {
  const datasets = datasetsKey(file, header.kv);
  const chunkCount = u32Key(file, header.kv, "imatrix.chunk_count");
  u32Key(file, header.kv, "imatrix.chunk_size");
  if (header.tensors.length === 0) throw new UserError(`${file}: imatrix has no entries`);

  const pairs = new Map<string, { sums?: TensorInfo; counts?: TensorInfo }>();
  for (const t of header.tensors) {
    const suffix = t.name.endsWith(SUMS_SUFFIX) ? SUMS_SUFFIX : t.name.endsWith(COUNTS_SUFFIX) ? COUNTS_SUFFIX : undefined;
    if (!suffix) continue;
    const name = t.name.slice(0, -suffix.length);
    if (!name) continue;
    const p = pairs.get(name) ?? {};
    if (suffix === SUMS_SUFFIX) p.sums = t;
    else p.counts = t;
    pairs.set(name, p);
  }

  const model: GGUFModel = { files: [header], kv: header.kv, tensors: header.tensors };
  const reader = new TensorReader(model);
  const entries: RawImatrixEntry[] = [];
  try {
    // llama.cpp walks the entries in name order (std::map); so do we, so that errors agree
    for (const name of [...pairs.keys()].sort()) {
      const { sums, counts } = pairs.get(name)!;
      if (!sums || !counts) throw new UserError(`${file}: entry ${name}: mismatched sums and counts (${sums ? COUNTS_SUFFIX : SUMS_SUFFIX} tensor missing)`);
      for (const t of [sums, counts]) {
        if (t.type !== GGMLType.F32) throw new UserError(`${file}: tensor ${t.name} is ${typeName(t.type)}, must be f32`);
      }
      const nval = elementCount(sums);
      const ncounts = elementCount(counts);
      if (ncounts < 1 || nval < ncounts || nval % ncounts !== 0) {
        throw new UserError(`${file}: entry ${name}: ${nval} values cannot be split over ${ncounts} counts`);
      }
      const sumValues = await readF32(reader, sums);
      const countValues = await readF32(reader, counts);
      checkFinite(file, name, "value", sumValues);
      checkFinite(file, name, "count", countValues);
      entries.push({ name, sums: sumValues, counts: [...countValues] });
    }
  } finally {
    await reader.close();
  }
  if (entries.length === 0) throw new UserError(`${file}: imatrix has no entries`);
  return { format: "gguf", entries, datasets, chunkCount };
}

function elementCount(t: TensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

async function readF32(reader: TensorReader, t: TensorInfo): Promise<Float32Array> {
  const bytes = await reader.read(t);
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/**
 * What a build records under quantize.imatrix.* (file, datasets, entries, chunks), without
 * reading the importance values of a GGUF imatrix: `hquant plan` sizes the output header with it.
 * Counts entries as loadImatrix does (one per tensor name); a malformed file fails in loadImatrix.
 */
export async function readImatrixInfo(file: string): Promise<{ file: string; datasets: string[]; entries: number; chunks: number }> {
  const source = await openFileSource(file);
  try {
    const isGGUF = await startsWithGGUFMagic(source);
    if (!isGGUF) {
      const raw = parseLegacyImatrix(file, await source.read(0, source.size));
      return { file, datasets: raw.datasets, entries: new Set(raw.entries.map((e) => e.name)).size, chunks: raw.chunkCount };
    }
    const header = await readHeader(source, file);
    const names = new Set<string>();
    for (const t of header.tensors) {
      const suffix = [SUMS_SUFFIX, COUNTS_SUFFIX].find((s) => t.name.endsWith(s));
      if (suffix && t.name.length > suffix.length) names.add(t.name.slice(0, -suffix.length));
    }
    return { file, datasets: datasetsKey(file, header.kv), entries: names.size, chunks: u32Key(file, header.kv, "imatrix.chunk_count") };
  } finally {
    await source.close();
  }
}
