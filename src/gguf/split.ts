// Split output in llama.cpp gguf-split's layout (tools/gguf-split/gguf-split.cpp): shards
// `<prefix>-00001-of-0000N.gguf`; the first shard carries all metadata, every shard carries
// split.no (u16), split.tensors.count (i32) and split.count (u16), in that order (gguf-split sets
// split.count last, which moves it to the end). A shard is cut when the next tensor's padded size
// would push the shard's data over --split-max-size, or every --split-max-tensors tensors.
// Hand-written: @huggingface/gguf reads shards but does not write them.
import { UserError } from "../errors.js";
import { tensorBytes } from "./ggml-types.js";
import { GGUFValueType, type GGUFKV } from "./model.js";
import { GGUF_DEFAULT_ALIGNMENT, splitPath } from "./reader.js";
import { alignUp, GGUFFileWriter, serializeHeader, type TensorSpec, type WriterOptions } from "./writer.js";

export const SPLIT_KEYS = ["split.no", "split.count", "split.tensors.count"] as const;

export interface SplitOptions {
  /** max bytes of tensor data per shard (gguf-split --split-max-size; metadata not counted) */
  splitMaxSize?: number;
  /** max tensors per shard (gguf-split --split-max-tensors) */
  splitMaxTensors?: number;
  /**
   * llama-quantize --keep-split: the shard of each tensor (non-decreasing, tensors already in shard
   * order); shards then carry split.no, split.count, split.tensors.count in llama-quant's order
   */
  keepSplit?: readonly number[];
}

export interface ShardPlan {
  path: string;
  kv: GGUFKV[];
  /** indices into the input tensor list */
  tensorIndices: number[];
}

/** Strips any `.gguf` suffix: gguf-split takes an output prefix. */
export function splitPrefix(target: string): string {
  return target.replace(/\.gguf$/i, "");
}

function shardKV(base: readonly GGUFKV[], no: number, count: number, totalTensors: number, llamaQuantOrder = false): GGUFKV[] {
  const kept = base.filter((e) => !(SPLIT_KEYS as readonly string[]).includes(e.key));
  const splitNo: GGUFKV = { key: "split.no", type: GGUFValueType.UINT16, value: no };
  const splitCount: GGUFKV = { key: "split.count", type: GGUFValueType.UINT16, value: count };
  const tensorsCount: GGUFKV = { key: "split.tensors.count", type: GGUFValueType.INT32, value: totalTensors };
  return [...kept, ...(llamaQuantOrder ? [splitNo, splitCount, tensorsCount] : [splitNo, tensorsCount, splitCount])];
}

/** The shards --keep-split writes: one per input shard, each with the tensors it came from. */
function keepSplitGroups(target: string, shardOf: readonly number[]): number[][] {
  const groups: number[][] = [];
  shardOf.forEach((shard, i) => {
    if (shard < groups.length - 1 || shard < 0) throw new Error(`${target}: keep-split tensors are not in shard order`);
    while (groups.length <= shard) groups.push([]);
    groups[shard]!.push(i);
  });
  return groups.length > 0 ? groups : [[]];
}

/** Which tensors go to which shard, and each shard's metadata. */
export function planSplit(target: string, kv: readonly GGUFKV[], tensors: readonly TensorSpec[], opts: SplitOptions): ShardPlan[] {
  const { splitMaxSize, splitMaxTensors } = opts;
  if (opts.keepSplit) {
    const kept = keepSplitGroups(target, opts.keepSplit);
    const prefix = splitPrefix(target);
    return kept.map((tensorIndices, no) => ({
      path: splitPath(prefix, no, kept.length),
      kv: shardKV(no === 0 ? kv : [], no, kept.length, tensors.length, true),
      tensorIndices,
    }));
  }
  if (splitMaxSize !== undefined && !(splitMaxSize > 0)) throw new UserError(`--split-max-size must be positive (got ${splitMaxSize})`);
  if (splitMaxTensors !== undefined && !(Number.isInteger(splitMaxTensors) && splitMaxTensors > 0)) {
    throw new UserError(`--split-max-tensors must be a positive integer (got ${splitMaxTensors})`);
  }
  const groups: number[][] = [[]];
  let shardData = 0;
  tensors.forEach((t, i) => {
    // gguf-split pads with GGUF_DEFAULT_ALIGNMENT when sizing shards
    const padded = alignUp(tensorBytes(t.type, t.shape), GGUF_DEFAULT_ALIGNMENT);
    const cut =
      splitMaxSize !== undefined
        ? shardData + padded > splitMaxSize
        : splitMaxTensors !== undefined && i > 0 && i % splitMaxTensors === 0;
    if (cut) {
      if (groups[groups.length - 1].length === 0) {
        throw new UserError(`${target}: tensor '${t.name}' (${padded} bytes) is larger than --split-max-size ${splitMaxSize}`);
      }
      groups.push([]);
      shardData = 0;
    }
    shardData += padded;
    groups[groups.length - 1].push(i);
  });
  const prefix = splitPrefix(target);
  return groups.map((tensorIndices, no) => ({
    path: splitPath(prefix, no, groups.length),
    kv: shardKV(no === 0 ? kv : [], no, groups.length, tensors.length),
    tensorIndices,
  }));
}

/** Exact total output size of a split write (all shards). */
export function splitOutputSize(target: string, kv: readonly GGUFKV[], tensors: readonly TensorSpec[], opts: SplitOptions, alignment = GGUF_DEFAULT_ALIGNMENT): number {
  let total = 0;
  for (const shard of planSplit(target, kv, tensors, opts)) {
    const { header, dataSize } = serializeHeader(shard.kv, shard.tensorIndices.map((i) => tensors[i]), alignment);
    total += header.length + dataSize;
  }
  return total;
}

/** What build code writes tensor data into: one file or a set of shards. */
export interface GGUFOutput {
  readonly paths: string[];
  write(chunk: Uint8Array): Promise<void>;
  writeTensor(data: Uint8Array): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Streams shards one after the other; every shard stays a temp file until all are complete, then
 * all are renamed, so an error or Ctrl-C leaves no shard behind.
 */
export class GGUFSplitWriter implements GGUFOutput {
  private current = 0;
  private writer: GGUFFileWriter | undefined;
  private readonly completed: GGUFFileWriter[] = [];

  private constructor(
    private readonly shards: ShardPlan[],
    private readonly tensors: readonly TensorSpec[],
    private readonly opts: WriterOptions,
  ) {}

  get paths(): string[] {
    return this.shards.map((s) => s.path);
  }

  static async create(target: string, kv: readonly GGUFKV[], tensors: readonly TensorSpec[], split: SplitOptions, opts: WriterOptions = {}): Promise<GGUFSplitWriter> {
    const w = new GGUFSplitWriter(planSplit(target, kv, tensors, split), tensors, opts);
    await w.openShard(0);
    await w.advanceIfShardFull(); // a model without tensors: the only shard is already complete
    return w;
  }

  private async openShard(no: number): Promise<void> {
    const shard = this.shards[no];
    this.current = no;
    this.writer = await GGUFFileWriter.create(shard.path, shard.kv, shard.tensorIndices.map((i) => this.tensors[i]), this.opts);
  }

  private async advanceIfShardFull(): Promise<void> {
    const w = this.writer!;
    if (w.tensorsWritten < this.shards[this.current].tensorIndices.length) return;
    await w.complete();
    this.completed.push(w);
    this.writer = undefined;
    if (this.current + 1 < this.shards.length) await this.openShard(this.current + 1);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!this.writer) throw new Error("GGUF split writer: more data than the tensors hold");
    try {
      await this.writer.write(chunk);
      await this.advanceIfShardFull();
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async writeTensor(data: Uint8Array): Promise<void> {
    if (!this.writer) throw new Error("GGUF split writer: more data than the tensors hold");
    try {
      await this.writer.writeTensor(data);
      await this.advanceIfShardFull();
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async finish(): Promise<void> {
    if (this.writer || this.completed.length !== this.shards.length) {
      await this.abort();
      throw new Error(`GGUF split writer: finished after ${this.completed.length} of ${this.shards.length} shards`);
    }
    for (const w of this.completed) await w.commit();
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
    this.writer = undefined;
    for (const w of this.completed) await w.abort();
  }
}

/** Whether the options ask for shards (--keep-split of a one-file input writes one file). */
export function isSplitOutput(opts: SplitOptions): boolean {
  if (opts.keepSplit) return opts.keepSplit.some((s) => s > 0);
  return opts.splitMaxSize !== undefined || opts.splitMaxTensors !== undefined;
}

/** The files a write with these options creates: [target], or the shards' paths. */
export function outputPaths(target: string, kv: readonly GGUFKV[], tensors: readonly TensorSpec[], opts: SplitOptions): string[] {
  return isSplitOutput(opts) ? planSplit(target, kv, tensors, opts).map((s) => s.path) : [target];
}

/** One file, or shards when a split option is given. */
export async function createGGUFOutput(
  target: string,
  kv: readonly GGUFKV[],
  tensors: readonly TensorSpec[],
  opts: WriterOptions & SplitOptions = {},
): Promise<GGUFOutput> {
  if (isSplitOutput(opts)) {
    return GGUFSplitWriter.create(target, kv, tensors, opts, opts);
  }
  const w = await GGUFFileWriter.create(target, kv, tensors, opts);
  return Object.assign(w, { paths: [target] });
}
