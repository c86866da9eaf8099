// Measurement files as llama.cpp shards: the cost of a measurement is one evaluation, not one
// whole model written and read back. The base model at the measurements' rest precision is written
// once as a head shard (all metadata, no tensors) plus one shard per tensor; a measurement then
// writes only the tensors its schedule changes, each as the shard of the same index, and llama.cpp
// loads the list (llama_model_load_from_splits: every shard but the first needs only split.no, and a
// tensor may live in any shard). The unchanged shards stay in the page cache across measurements.
// The input file itself cannot be a shard: llama.cpp refuses a tensor name found in two shards.
import fs from "node:fs";
import path from "node:path";
import { prepareBuild, writePreparedTensors, type PreparedBuild } from "../build/index.js";
import type { GGMLType } from "../gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../gguf/model.js";
import { SPLIT_KEYS } from "../gguf/split.js";
import { encodeHeader, GGUFFileWriter, type TensorSpec } from "../gguf/writer.js";
import { OUTPUT_ALIGNMENT, type ResolvedSchedule } from "../plan/planner.js";
import type { QuantizePool } from "../pool/index.js";

export interface ShardSetOptions {
  base: string;
  imatrix?: string;
  /** the schedule with nothing measured: every tensor at the rest precision */
  rest: ResolvedSchedule;
  pool: QuantizePool;
  /** folder the shards are written into (the caller removes it) */
  dir: string;
  signal?: AbortSignal;
}

/** One measurement's model: the shard list and what was written for it. */
export interface ShardedModel {
  paths: string[];
  /** files written for this measurement (remove with ShardSet.release) */
  written: string[];
  /** bytes written for this measurement */
  bytes: number;
  /** seconds spent planning and writing them */
  seconds: number;
}

const splitKV = (no: number, count: number, tensors: number): GGUFKV[] => [
  { key: "split.no", type: GGUFValueType.UINT16, value: no },
  { key: "split.tensors.count", type: GGUFValueType.INT32, value: tensors },
  { key: "split.count", type: GGUFValueType.UINT16, value: count },
];

const metadataBytes = (kv: readonly GGUFKV[]) => Buffer.from(encodeHeader(kv, [], OUTPUT_ALIGNMENT));

export class ShardSet {
  private counter = 0;

  private constructor(
    private readonly opts: ShardSetOptions,
    private readonly rest: PreparedBuild,
    /** shard paths of the rest model: head first, then tensor k at k + 1 */
    readonly basePaths: string[],
    private readonly index: Map<string, number>,
    private readonly restTypes: Map<string, GGMLType>,
    private readonly headKV: Buffer,
    /** bytes written once for the rest model */
    readonly baseBytes: number,
    readonly baseSeconds: number,
  ) {}

  /** Writes the rest model's shards into opts.dir. */
  static async create(opts: ShardSetOptions): Promise<ShardSet> {
    const t0 = performance.now();
    const rest = await prepareBuild({ input: opts.base, schedule: opts.rest, imatrix: opts.imatrix, hquant: false, signal: opts.signal });
    const n = rest.specs.length;
    const head = path.join(opts.dir, "base-head.gguf");
    const headWriter = await GGUFFileWriter.create(head, withSplit(rest.kv, 0, n + 1, n), [], { alignment: OUTPUT_ALIGNMENT });
    await headWriter.finish();
    const index = new Map(rest.specs.map((s, k) => [s.name, k]));
    const paths = [head, ...rest.specs.map((_, k) => path.join(opts.dir, `base-${k + 1}.gguf`))];
    const bytes = await writeShards(rest, new Set(index.keys()), index, (k) => paths[k + 1]!, opts.pool, opts.signal);
    return new ShardSet(
      opts,
      rest,
      paths,
      index,
      new Map(rest.specs.map((s) => [s.name, s.type])),
      metadataBytes(rest.kv),
      bytes + fs.statSync(head).size,
      (performance.now() - t0) / 1000,
    );
  }

  /**
   * The model of `schedule`: every tensor whose type differs from the rest model's is written as its
   * own shard (the metadata shard too, should the metadata differ); the rest are the base's shards.
   */
  async model(schedule: ResolvedSchedule): Promise<ShardedModel> {
    const t0 = performance.now();
    const prepared = await prepareBuild({ input: this.opts.base, schedule, imatrix: this.opts.imatrix, hquant: false, signal: this.opts.signal });
    const n = this.rest.specs.length;
    if (prepared.specs.length !== n || prepared.specs.some((s) => !this.index.has(s.name))) {
      throw new Error(`measurement schedule ${schedule.name}: its tensors differ from the rest model's`);
    }
    const changed = new Set(prepared.specs.filter((s) => s.type !== this.restTypes.get(s.name)).map((s) => s.name));
    const tag = `m${++this.counter}`;
    const paths = [...this.basePaths];
    const written: string[] = [];
    let bytes = 0;
    try {
      if (!metadataBytes(prepared.kv).equals(this.headKV)) {
        paths[0] = path.join(this.opts.dir, `${tag}-head.gguf`);
        written.push(paths[0]);
        const w = await GGUFFileWriter.create(paths[0], withSplit(prepared.kv, 0, n + 1, n), [], { alignment: OUTPUT_ALIGNMENT });
        await w.finish();
        bytes += fs.statSync(paths[0]).size;
      }
      const shardPath = (k: number) => {
        paths[k + 1] = path.join(this.opts.dir, `${tag}-${k + 1}.gguf`);
        written.push(paths[k + 1]!);
        return paths[k + 1]!;
      };
      // the prepared build's own order need not be the rest's: shards are indexed by the rest's
      bytes += await writeShards(prepared, changed, this.index, shardPath, this.opts.pool, this.opts.signal);
    } catch (err) {
      this.release(written);
      throw err;
    }
    return { paths, written, bytes, seconds: (performance.now() - t0) / 1000 };
  }

  release(written: readonly string[]): void {
    for (const f of written) fs.rmSync(f, { force: true });
  }
}

function withSplit(kv: readonly GGUFKV[], no: number, count: number, tensors: number): GGUFKV[] {
  return [...kv.filter((e) => !(SPLIT_KEYS as readonly string[]).includes(e.key)), ...splitKV(no, count, tensors)];
}

/** Writes each named tensor of `prepared` as the one tensor of shard index(name) + 1. */
async function writeShards(
  prepared: PreparedBuild,
  names: ReadonlySet<string>,
  index: ReadonlyMap<string, number>,
  shardPath: (k: number) => string,
  pool: QuantizePool,
  signal?: AbortSignal,
): Promise<number> {
  const specs = new Map<string, TensorSpec>(prepared.specs.map((s) => [s.name, s]));
  const count = index.size + 1;
  let open: GGUFFileWriter | undefined;
  let bytes = 0;
  const finishOpen = async () => {
    if (!open) return;
    await open.finish();
    bytes += open.fileSize;
    open = undefined;
  };
  try {
    await writePreparedTensors(
      prepared,
      names,
      pool,
      async (name) => {
        await finishOpen();
        const k = index.get(name)!;
        open = await GGUFFileWriter.create(shardPath(k), splitKV(k + 1, count, index.size), [specs.get(name)!], { alignment: OUTPUT_ALIGNMENT });
        return open;
      },
      signal,
    );
    await finishOpen();
  } catch (err) {
    await open?.abort();
    throw err;
  }
  return bytes;
}

/**
 * Shards reused across models whose tensors are renamed or renumbered (scan's layer surgery: after
 * a removed layer every later layer is one lower). A shard is kept under (source tensor, type,
 * output name, shard index) and reused whenever another model places the same data under the same
 * name at the same index; computed tensors (merged layers) and the metadata are written per model.
 * A scan of single-layer removals writes the base about twice, not once per edit.
 */
export class ShardCache {
  private readonly kept = new Map<string, string>();
  private counter = 0;
  /** bytes written into the cache (kept shards) so far */
  keptBytes = 0;

  constructor(
    /** folder the shards go into (the caller removes it) */
    readonly dir: string,
    private readonly pool: QuantizePool,
  ) {}

  /** The shards of a prepared build; `written` are this model's own files (release them after use). */
  async model(prepared: PreparedBuild, signal?: AbortSignal): Promise<ShardedModel> {
    const t0 = performance.now();
    const n = prepared.specs.length;
    const tag = `c${++this.counter}`;
    const index = new Map(prepared.specs.map((s, k) => [s.name, k]));
    const keyOf = (j: PreparedBuild["jobs"][number], k: number) => (j.computed ? undefined : `${j.source.name}|${j.planned.dstType}|${j.planned.name}|${k + 1}|${n}`);
    const paths: string[] = new Array(n + 1);
    const written: string[] = [];
    const missing = new Set<string>();
    const fresh = new Map<number, string>();
    for (const j of prepared.jobs) {
      const k = index.get(j.planned.name)!;
      const key = keyOf(j, k);
      const hit = key !== undefined ? this.kept.get(key) : undefined;
      if (hit) paths[k + 1] = hit;
      else missing.add(j.planned.name);
    }
    let bytes = 0;
    try {
      paths[0] = path.join(this.dir, `${tag}-head.gguf`);
      written.push(paths[0]);
      const head = await GGUFFileWriter.create(paths[0], withSplit(prepared.kv, 0, n + 1, n), [], { alignment: OUTPUT_ALIGNMENT });
      await head.finish();
      bytes += head.fileSize;
      bytes += await writeShards(
        prepared,
        missing,
        index,
        (k) => {
          const file = path.join(this.dir, `${tag}-${k + 1}.gguf`);
          paths[k + 1] = file;
          fresh.set(k, file);
          return file;
        },
        this.pool,
        signal,
      );
    } catch (err) {
      for (const f of [...written, ...fresh.values()]) fs.rmSync(f, { force: true });
      throw err;
    }
    for (const j of prepared.jobs) {
      const k = index.get(j.planned.name)!;
      const file = fresh.get(k);
      if (file === undefined) continue;
      const key = keyOf(j, k);
      if (key === undefined) written.push(file);
      else {
        this.kept.set(key, file);
        this.keptBytes += fs.statSync(file).size;
      }
    }
    return { paths, written, bytes, seconds: (performance.now() - t0) / 1000 };
  }

  release(written: readonly string[]): void {
    for (const f of written) fs.rmSync(f, { force: true });
  }
}
