// The files of a release in one read pass (buildModels), each written under a staging folder in
// the release folder (DIR/.hquant-partial), verified there in llama.cpp, and only then moved to
// its final name: a file under its final name is always complete and verified, a killed or failed
// run leaves nothing that looks finished (the staging folder is cleared on every start).
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { buildModels, type MultiBuildProgress, type MultiBuildResult } from "../build/multi.js";
import { mixtureHParams } from "../plan/hparams.js";
import { scheduleFromOptions, type ScheduleCliOptions } from "../plan/options.js";
import type { QuantizePool } from "../pool/index.js";
import { HQUANT_VERSION } from "../version.js";
import { sha256File } from "./resume.js";
import { verifyOutput, type VerifyReport } from "./verify.js";

export const STAGING_DIR = ".hquant-partial";

export interface MakeRequest {
  output: string;
  schedule: ScheduleCliOptions;
  splitMaxSize?: number;
}

export interface MadeFile {
  /** final paths (one, or the shards) */
  files: string[];
  build: MultiBuildResult;
  verified: VerifyReport;
  /** each file's SHA-256 (hex), in the order of `files` */
  sha256: string[];
}

export interface MakeOptions {
  input: string;
  outDir: string;
  threads: number;
  pool: QuantizePool;
  signal?: AbortSignal;
  onProgress?: (p: MultiBuildProgress) => void;
  onWarning?: (m: string) => void;
  /** after each file is verified and moved to its final name */
  onDone?: (index: number, made: MadeFile) => void | Promise<void>;
  /** before each verification */
  onVerify?: (index: number) => void;
}

/** Removes what an earlier, killed run left in the staging folder. */
export function clearStaging(outDir: string): string {
  const dir = path.join(outDir, STAGING_DIR);
  fs.rmSync(dir, { recursive: true, force: true });
  return dir;
}

/** The schedule options resolved against the model, as the library's build() resolves them. */
const resolver = (spec: ScheduleCliOptions, input: string) => (model: { kv: Parameters<typeof mixtureHParams>[0] }) => scheduleFromOptions(spec, mixtureHParams(model.kv, input).nLayer);

/**
 * Builds every request in one pass, then verifies each and moves it into place. A file that fails
 * verification is removed; the others are kept, and the first failure is thrown once all are done.
 */
export async function makeFiles(requests: readonly MakeRequest[], opts: MakeOptions): Promise<MadeFile[]> {
  const staging = clearStaging(opts.outDir);
  fs.mkdirSync(staging, { recursive: true });
  try {
    const results = await buildModels({
      input: opts.input,
      outputs: requests.map((r) => ({ output: path.join(staging, path.basename(r.output)), schedule: resolver(r.schedule, opts.input), imatrix: r.schedule.imatrix, splitMaxSize: r.splitMaxSize })),
      threads: opts.threads,
      pool: opts.pool,
      hquant: { version: HQUANT_VERSION },
      signal: opts.signal,
      onProgress: opts.onProgress,
      onWarning: opts.onWarning,
    });
    const made: MadeFile[] = [];
    let failure: UserError | undefined;
    for (const [k, r] of results.entries()) {
      opts.signal?.throwIfAborted();
      opts.onVerify?.(k);
      // hashed while llama.cpp verifies it (the evaluation process): this thread is idle meanwhile
      const hashing = Promise.all(r.outputs.map((f) => sha256File(f)));
      let verified: VerifyReport;
      try {
        verified = await verifyOutput(r.outputs[0]!, { plan: r.plan, kv: r.kv }, { threads: opts.threads });
      } catch (err) {
        await hashing.catch(() => undefined);
        for (const f of r.outputs) fs.rmSync(f, { force: true });
        if (!(err instanceof UserError)) throw err;
        // named by its final name: the staging path is an implementation detail
        failure ??= new UserError(err.message.split(r.outputs[0]!).join(requests[k]!.output));
        continue;
      }
      const sha256 = await hashing;
      const files = r.outputs.map((f) => path.join(opts.outDir, path.basename(f)));
      r.outputs.forEach((f, i) => fs.renameSync(f, files[i]!));
      const m = { files, build: r, verified, sha256 };
      made.push(m);
      await opts.onDone?.(k, m);
    }
    if (failure) throw failure;
    return made;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
