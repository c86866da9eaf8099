// One search measurement: the base model with a surgery, as llama.cpp shards in a temporary folder
// (shards unchanged from an earlier edit reused), evaluated against the base (PPL, KLD, same top
// token), its own shards deleted. Results go to an append-only cache
// (one JSON line per measurement) keyed by the base model's hash, the text's hash, ctx, chunks and
// the build's file type; within it, by the surgery JSON. A search that is interrupted (Ctrl-C)
// keeps every line already written and resumes from them.
import { llamaRuntime, offloadOf, runtimeCacheDir } from "../runtime/index.js";
import { removeStaleScanFolders, SCAN_WORK_DIR_PREFIX, type ScanRow } from "./index.js";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { prepareBuild } from "../build/index.js";
import { outputFileSize } from "../gguf/writer.js";
import { OUTPUT_ALIGNMENT } from "../plan/planner.js";
import { ShardCache } from "../tune/shards.js";
import { evaluateAgainstBase, evaluateBase, type BaseEvaluation, type EvalOptions } from "../eval/isolated.js";
import { openModel } from "../gguf/reader.js";
import { mixtureHParams } from "../plan/hparams.js";
import { resolveSchedule } from "../plan/schedule.js";
import type { FileTypeName } from "../plan/ftypes.js";
import { QuantizePool } from "../pool/index.js";
import { applySurgery, type SurgeryOp } from "../surgery/index.js";

/** What one edited stack measures against the base. */
/** A scan row's figures for any edited stack, with its layer count. */
export interface Measurement extends Omit<ScanRow, "layer"> {
  /** layers of the edited model */
  layers: number;
}

/** The search's view of measuring: a whole surgery (from the base) in, its measurement out. */
export type MeasureFn = (surgery: SurgeryOp[]) => Promise<Measurement>;

export interface MeasureOptions extends EvalOptions {
  base: string;
  text: string;
  textName: string;
  /** file type of the edited builds (default F16) */
  ftype?: FileTypeName;
  /** where the temporary builds go (default: a fresh folder under the OS temp dir, removed by close) */
  workDir?: string;
}

/** The cache of one (base, text, ctx, chunks, ftype): surgery JSON → result, per kind of result. */
export class MeasureCache {
  private readonly entries = new Map<string, unknown>();

  constructor(readonly file: string) {
    if (!fs.existsSync(file)) return;
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      // a line cut short by an interrupted write is dropped (and measured again)
      try {
        const e = JSON.parse(line) as { key: string; value: unknown };
        if (typeof e.key === "string") this.entries.set(e.key, e.value);
      } catch {
        /* partial line */
      }
    }
  }

  static key(kind: string, surgery: readonly SurgeryOp[]): string {
    return `${kind}:${JSON.stringify(surgery)}`;
  }

  get<T>(kind: string, surgery: readonly SurgeryOp[]): T | undefined {
    return this.entries.get(MeasureCache.key(kind, surgery)) as T | undefined;
  }

  put(kind: string, surgery: readonly SurgeryOp[], value: unknown): void {
    const key = MeasureCache.key(kind, surgery);
    this.entries.set(key, value);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.appendFileSync(this.file, `${JSON.stringify({ key, value })}\n`);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Builds and evaluates edited stacks of one base model on one text, with the cache. */
export class CandidateMeasurer {
  /** measurements served from the cache / built and evaluated, since open */
  hits = 0;
  misses = 0;

  private constructor(
    readonly opts: MeasureOptions,
    readonly base: BaseEvaluation,
    readonly nLayer: number,
    readonly ftype: FileTypeName,
    readonly cache: MeasureCache,
    private readonly pool: QuantizePool,
    private readonly workDir: string,
    private readonly ownWorkDir: boolean,
  ) {
    this.shards = new ShardCache(fs.mkdtempSync(path.join(workDir, "shards-")), pool);
  }

  private readonly shards: ShardCache;

  static async open(opts: MeasureOptions): Promise<CandidateMeasurer> {
    opts = { ...opts, cacheDir: runtimeCacheDir(opts.cacheDir, llamaRuntime(offloadOf(opts))) };
    const nLayer = mixtureHParams((await openModel(opts.base)).kv, opts.base).nLayer;
    const ftype = opts.ftype ?? "F16";
    // checked before the (slow) base evaluation: the file type must resolve
    resolveSchedule({ ftype }, nLayer, "--ftype");
    const base = await evaluateBase(opts.base, opts.text, opts.textName, opts);
    const id = createHash("sha256").update(`${path.basename(base.cacheFile)}\nftype=${ftype}`).digest("hex").slice(0, 32);
    const cache = new MeasureCache(path.join(opts.cacheDir, `scan-${id}.jsonl`));
    if (opts.workDir === undefined) removeStaleScanFolders();
    // named as runScan's folders, so a later scan removes it when this process is killed outright
    const workDir = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `${SCAN_WORK_DIR_PREFIX}${process.pid}-`));
    return new CandidateMeasurer(opts, base, nLayer, ftype, cache, new QuantizePool(opts.threads), workDir, opts.workDir === undefined);
  }

  /** Layers after `surgery` (validates it: a bad op is a one-line error). */
  layersAfter(surgery: readonly SurgeryOp[]): number {
    return applySurgery(this.nLayer, surgery, "surgery").length;
  }

  /**
   * The edited model as llama.cpp shards in the work folder (shards.ts: the tensors an earlier edit
   * already wrote under the same name and index are reused, so an edit writes only what is new),
   * `use` run on the shard list and the size of the edited model as one file, its own files deleted.
   */
  async withBuild<T>(surgery: SurgeryOp[], use: (files: string[], bytes: number) => Promise<T>): Promise<T> {
    const name = createHash("sha256").update(JSON.stringify(surgery)).digest("hex").slice(0, 12);
    const prepared = await prepareBuild({
      input: this.opts.base,
      hquant: false,
      signal: this.opts.signal,
      schedule: resolveSchedule({ ftype: this.ftype, ...(surgery.length > 0 && { surgery }) }, this.nLayer, "surgery", name),
    });
    const model = await this.shards.model(prepared, this.opts.signal);
    try {
      return await use(model.paths, outputFileSize(prepared.kv, prepared.specs, OUTPUT_ALIGNMENT));
    } finally {
      this.shards.release(model.written);
    }
  }

  /** PPL / KLD of the base with `surgery` applied, from the cache when measured before. */
  readonly measure: MeasureFn = async (surgery) => {
    const cached = this.cache.get<Measurement>("kld", surgery);
    if (cached) {
      this.hits++;
      return cached;
    }
    const layers = this.layersAfter(surgery);
    const m = await this.withBuild(surgery, async (files, bytes) => {
      const r = await evaluateAgainstBase(this.base, files, this.opts);
      const base = this.base;
      return { layers, ppl: r.ppl, pplErr: r.pplErr, dPpl: r.ppl - base.ppl, kld: r.kld, kldErr: r.kldErr, topTokenPct: r.topTokenPct, bytes };
    });
    this.misses++;
    this.cache.put("kld", surgery, m);
    return m;
  };

  async close(): Promise<void> {
    await this.pool.destroy();
    fs.rmSync(this.shards.dir, { recursive: true, force: true });
    if (this.ownWorkDir) fs.rmSync(this.workDir, { recursive: true, force: true });
  }
}
