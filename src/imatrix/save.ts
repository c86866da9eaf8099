// Writing collected statistics in llama-imatrix's two formats (IMatrixCollector::save_imatrix and
// save_imatrix_legacy): the GGUF imatrix (raw sums and counts, entries in name order) and the
// legacy .dat (means scaled by the call count). Both go to a temp file renamed into place.
import { GGMLType } from "../gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../gguf/model.js";
import { GGUFFileWriter, type TensorSpec } from "../gguf/writer.js";
import { writeFileAtomic } from "../eval/run.js";
import type { ImatrixCollector } from "./collect.js";

/** Names in llama-imatrix's deterministic order (std::sort of std::string: byte order). */
function sortedNames(c: ImatrixCollector): string[] {
  const bytes = (s: string) => Buffer.from(s, "utf8");
  return [...c.stats.keys()].sort((a, b) => Buffer.compare(bytes(a), bytes(b)));
}

/** ggml_n_dims: trailing dimensions of size 1 are not written. */
function trimShape(shape: number[]): number[] {
  let n = shape.length;
  while (n > 1 && shape[n - 1] === 1) n--;
  return shape.slice(0, n);
}

/** The GGUF imatrix: `general.type`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, then `<name>.in_sum2` / `<name>.counts`. */
export async function saveImatrixGGUF(file: string, c: ImatrixCollector, dataset: string | undefined): Promise<void> {
  const datasets = [...c.datasets, ...(dataset ? [dataset] : [])];
  const kv: GGUFKV[] = [
    { key: "general.type", type: GGUFValueType.STRING, value: "imatrix" },
    { key: "imatrix.datasets", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value: datasets },
    { key: "imatrix.chunk_count", type: GGUFValueType.UINT32, value: c.lastChunk },
    { key: "imatrix.chunk_size", type: GGUFValueType.UINT32, value: c.chunkSize },
  ];
  const tensors: TensorSpec[] = [];
  const data: Float32Array[] = [];
  for (const name of sortedNames(c)) {
    const s = c.stats.get(name)!;
    const nMat = s.counts.length;
    if (s.values.length === 0 || nMat === 0) continue;
    tensors.push({ name: `${name}.in_sum2`, shape: trimShape([s.values.length / nMat, nMat]), type: GGMLType.F32 });
    data.push(s.values);
    tensors.push({ name: `${name}.counts`, shape: trimShape([1, nMat]), type: GGMLType.F32 });
    data.push(Float32Array.from(s.counts));
  }
  const w = await GGUFFileWriter.create(file, kv, tensors);
  try {
    for (const d of data) await w.writeTensor(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    await w.finish();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/** The legacy .dat: entries without any data are skipped; values are (sum / count) · ncall. */
export function legacyImatrixBytes(c: ImatrixCollector, dataset: string | undefined): Uint8Array {
  const parts: Buffer[] = [];
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    parts.push(b);
  };
  const stored = sortedNames(c).filter((n) => {
    const counts = c.stats.get(n)!.counts;
    return counts.length > 0 && counts.some((x) => x !== 0);
  });
  i32(stored.length);
  for (const name of stored) {
    const s = c.stats.get(name)!;
    const nameBytes = Buffer.from(name, "utf8");
    i32(nameBytes.length);
    parts.push(nameBytes);
    // ceiling division, so that no entry gets a zero call count
    const ncall = Math.floor((Math.max(...s.counts) + (c.chunkSize - 1)) / c.chunkSize);
    i32(ncall);
    const nval = s.values.length;
    const nmat = s.counts.length;
    i32(nval);
    const out = new Float32Array(nval);
    const perMat = nval / nmat;
    for (let i = 0; i < nval; i++) {
      let count = Math.fround(s.counts[Math.floor(i / perMat)]);
      let value = s.values[i];
      if (count === 0) {
        // experts never routed to: stored as 1
        value = 1;
        count = 1;
      }
      out[i] = Math.fround(Math.fround(value / count) * Math.fround(ncall));
    }
    parts.push(Buffer.from(out.buffer));
  }
  i32(c.lastChunk);
  const ds = Buffer.from(dataset ?? c.datasets[c.datasets.length - 1] ?? "", "utf8");
  i32(ds.length);
  parts.push(ds);
  return Buffer.concat(parts);
}

export function saveImatrixLegacy(file: string, c: ImatrixCollector, dataset: string | undefined): void {
  writeFileAtomic(file, legacyImatrixBytes(c, dataset));
}
