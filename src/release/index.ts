// `hquant release` without the CLI: the importance matrix (given, or made from --calib), the tuned
// schedules, every file in one read pass (each verified in llama.cpp before it gets its final
// name), their evaluation against the base, and the model card. Stages: plan → make → verify →
// evaluate → card; the manifest (resume.ts) makes a re-run skip what is done and verified.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { prepareBuild } from "../build/index.js";
import type { MultiBuildProgress } from "../build/multi.js";
import { makeImatrix } from "../imatrix/isolated.js";
import { mixtureHParams } from "../plan/hparams.js";
import { scheduleFromOptions } from "../plan/options.js";
import { OUTPUT_ALIGNMENT } from "../plan/planner.js";
import { sharedQuantizePool } from "../pool/index.js";
import { outputFileSize } from "../gguf/writer.js";
import { parseBudget } from "../tune/budget.js";
import { tune } from "../tune/index.js";
import { HQUANT_VERSION } from "../version.js";
import { writeCard } from "./card.js";
import { evaluateFiles, evaluationKey } from "./evaluate.js";
import { makeFiles, type MakeRequest } from "./make.js";
import { buildArgs, copySchedules, DEFAULT_SPLIT_MAX_SIZE, defaultReleaseName, releaseItems, shellLine, type ReleaseItem } from "./plan.js";
import { isDone, planHash, readManifest, sha256File, writeManifest, type Manifest, type ManifestFile } from "./resume.js";

export { verifyOutput, checkHeader, DEFAULT_VERIFY_PROMPT, type VerifyReport, type VerifyExpectation } from "./verify.js";
export { releaseItems, releaseFileName, defaultReleaseName, buildArgs, HUB_FILE_LIMIT, DEFAULT_SPLIT_MAX_SIZE, type ReleaseItem } from "./plan.js";
export { readManifest, MANIFEST_NAME, type Manifest, type ManifestFile } from "./resume.js";
export { renderCard, frontMatter, CHART_NAME } from "./card.js";

export type ReleaseStage = "imatrix" | "tune" | "build" | "verify" | "evaluate" | "card";

export type ReleaseEvent =
  | { kind: "plan"; items: { key: string; file: string; skip: boolean }[] }
  | { kind: "stage"; stage: ReleaseStage; detail?: string }
  | { kind: "progress"; stage: ReleaseStage; done: number; total: number; key?: string; detail?: string }
  | { kind: "file"; key: string; file: string; state: "skipped" | "verified" | "evaluated" };

export interface ReleaseOptions {
  input: string;
  outDir: string;
  name?: string;
  types?: string[];
  presets?: string[];
  schedules?: string[];
  /** budgets for `tune` (proxy mode) */
  tune?: string[];
  imatrix?: string;
  /** calibration text: the imatrix is made from it (unless `imatrix` is given), tune measures on it */
  calib?: { content: string; name: string };
  evalText?: { content: string; name: string };
  ctx?: number;
  /** evaluation chunks (default: the whole text) */
  chunks?: number;
  /** imatrix / tune calibration chunks */
  calibChunks?: number;
  /** tune's --proxy-rows (rows sampled per tensor for the proxy's errors; default every row) */
  tuneProxyRows?: number;
  /** tune's --max-evals (at most this many measurements; default all of proxy mode's) */
  tuneMaxEvals?: number;
  threads: number;
  cacheDir: string;
  /** outputs larger than this many bytes are split (default 48 GB, below the Hub's 50 GB per file) */
  splitMaxSize?: number;
  baseModel?: string;
  quantizedBy?: string;
  repo?: string;
  /** the command line as typed (for the card) */
  command?: string;
  signal?: AbortSignal;
  onEvent?: (e: ReleaseEvent) => void;
  onWarning?: (m: string) => void;
}

export interface ReleaseResult {
  outDir: string;
  manifest: Manifest;
  /** keys made in this run / skipped as already done */
  made: string[];
  skipped: string[];
  card: string[];
}

function checkFile(file: string, what: string): void {
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UserError(`${file}: no such file (${what})`);
}

export async function release(opts: ReleaseOptions): Promise<ReleaseResult> {
  const emit = opts.onEvent ?? (() => undefined);
  const { input, outDir, threads } = opts;
  const ctx = opts.ctx ?? 512;
  checkFile(input, "the base model");
  if (opts.imatrix !== undefined) checkFile(opts.imatrix, "--imatrix");
  for (const s of opts.schedules ?? []) checkFile(s, "--schedules");
  if ((opts.tune?.length ?? 0) > 0 && !opts.calib) throw new UserError("--tune needs --calib TEXT (the calibration text tune measures on)");
  const budgets = (opts.tune ?? []).map((b) => parseBudget(b, "--tune"));
  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new UserError(`--out: ${outDir} is not a folder`);
  const name = opts.name ?? defaultReleaseName(input);
  // every name, type, preset and schedule is checked before anything is computed
  releaseItems({ outDir, name, types: opts.types ?? [], presets: opts.presets ?? [], schedules: opts.schedules ?? [], tuned: [], tunePending: budgets.length > 0, imatrix: opts.imatrix ?? (opts.calib ? "imatrix.gguf" : undefined) });
  fs.mkdirSync(outDir, { recursive: true });
  const old = readManifest(outDir);
  const manifest: Manifest = { hquant: HQUANT_VERSION, name, input, files: {}, imatrix: undefined };

  // the importance matrix, beside the files: a copy of --imatrix, or made from --calib
  let imatrix: string | undefined;
  let imatrixCommand: string | undefined;
  if (opts.imatrix !== undefined) {
    imatrix = path.join(outDir, /\.gguf$/i.test(opts.imatrix) ? "imatrix.gguf" : "imatrix.dat");
    const sha = await sha256File(opts.imatrix);
    if (!fs.existsSync(imatrix) || (await sha256File(imatrix)) !== sha) {
      fs.rmSync(imatrix, { force: true });
      fs.copyFileSync(opts.imatrix, imatrix);
      fs.chmodSync(imatrix, 0o644); // not the source's mode: a later run may replace it
    }
    manifest.imatrix = { file: path.basename(imatrix), sha256: sha, made: `copy of ${opts.imatrix}` };
  } else if (opts.calib) {
    imatrix = path.join(outDir, "imatrix.gguf");
    const made = `hquant imatrix ${input} --text ${opts.calib.name} -c ${ctx}${opts.calibChunks ? ` --chunks ${opts.calibChunks}` : ""}`;
    imatrixCommand = shellLine(["hquant", "imatrix", input, "--text", opts.calib.name, "-o", imatrix, "-c", String(ctx), ...(opts.calibChunks ? ["--chunks", String(opts.calibChunks)] : [])]);
    const reuse = old?.imatrix && old.imatrix.made === made && fs.existsSync(imatrix) && (await sha256File(imatrix)) === old.imatrix.sha256;
    if (!reuse) {
      emit({ kind: "stage", stage: "imatrix" });
      await makeImatrix({
        model: input,
        text: opts.calib,
        output: imatrix,
        ctx,
        chunks: opts.calibChunks,
        threads,
        signal: opts.signal,
        onProgress: (done, total) => emit({ kind: "progress", stage: "imatrix", done, total }),
      });
    }
    manifest.imatrix = { file: "imatrix.gguf", sha256: await sha256File(imatrix), made };
  }
  writeManifest(outDir, { ...manifest, files: old?.files ?? {} });

  // the tuned schedules (proxy mode: cheap, from the cached measurements on a re-run)
  const tuned: { label: string; scheduleFile: string; description: string }[] = [];
  let tuneCommand: string | undefined;
  if (budgets.length > 0) {
    const schedulesDir = path.join(outDir, "schedules");
    tuneCommand = shellLine(["hquant", "tune", input, "--budgets", budgets.map((b) => b.text).join(","), "--text", opts.calib!.name, ...(imatrix ? ["--imatrix", imatrix] : []), "--method", "proxy", "-c", "256", ...(opts.calibChunks ? ["--chunks", String(opts.calibChunks)] : []), ...(opts.tuneProxyRows ? ["--proxy-rows", String(opts.tuneProxyRows)] : []), ...(opts.tuneMaxEvals ? ["--max-evals", String(opts.tuneMaxEvals)] : []), "--no-verify", "--out", schedulesDir]);
    // a re-run with the same tune command and the same imatrix reuses the schedules it made
    let reuse = old?.tune?.command === tuneCommand && old.imatrix?.sha256 === manifest.imatrix?.sha256;
    for (const s of reuse ? old!.tune!.schedules : []) {
      const f = path.join(outDir, s.file);
      if (!fs.existsSync(f) || (await sha256File(f)) !== s.sha256) reuse = false;
    }
    if (reuse) {
      for (const s of old!.tune!.schedules) tuned.push({ label: s.label, scheduleFile: path.join(outDir, s.file), description: s.description });
    } else {
      emit({ kind: "stage", stage: "tune" });
      const result = await tune({
        base: input,
        text: opts.calib!.content,
        textName: opts.calib!.name,
        budgets,
        imatrix,
        method: "proxy",
        outDir: schedulesDir,
        ctx: 256,
        chunks: opts.calibChunks,
        proxyRows: opts.tuneProxyRows,
        maxEvals: opts.tuneMaxEvals,
        threads,
        cacheDir: opts.cacheDir,
        verify: false,
        signal: opts.signal,
        onWarning: opts.onWarning,
        onProgress: (p) => emit({ kind: "progress", stage: "tune", done: p.done, total: p.total, detail: `${p.stage} ${p.detail}` }),
      });
      for (const b of result.budgets) tuned.push({ label: `tune-${b.budget.text}`, scheduleFile: b.scheduleFile, description: b.schedule.description ?? `tuned for ${b.limit.label}` });
    }
    const schedules = [];
    for (const t of tuned) schedules.push({ label: t.label, file: path.relative(outDir, t.scheduleFile), sha256: await sha256File(t.scheduleFile), description: t.description });
    manifest.tune = { command: tuneCommand, schedules };
    writeManifest(outDir, { ...manifest, files: old?.files ?? {} });
  }

  const items = releaseItems({ outDir, name, types: opts.types ?? [], presets: opts.presets ?? [], schedules: opts.schedules ?? [], tuned, imatrix });
  copySchedules(items);

  // each item's plan (headers only): its size decides the split, its hash the resumption
  const stat = fs.statSync(input);
  const imatrixSha = manifest.imatrix?.sha256;
  const splitLimit = opts.splitMaxSize ?? DEFAULT_SPLIT_MAX_SIZE;
  const planned: { item: ReleaseItem; hash: string; build: string[]; split?: number }[] = [];
  for (const item of items) {
    const resolve = (model: { kv: Parameters<typeof mixtureHParams>[0] }) => scheduleFromOptions(item.schedule, mixtureHParams(model.kv, input).nLayer);
    const prep = await prepareBuild({ input, schedule: resolve, hquant: { version: HQUANT_VERSION } });
    const bytes = outputFileSize(prep.kv, prep.specs, OUTPUT_ALIGNMENT);
    const split = bytes > splitLimit ? splitLimit : undefined;
    const build = buildArgs(input, item, split);
    const scheduleSha = item.schedule.schedule !== undefined ? await sha256File(item.schedule.schedule) : undefined;
    const hash = planHash({ version: HQUANT_VERSION, input: { size: stat.size, mtimeMs: stat.mtimeMs }, build, imatrixSha: item.imatrix ? imatrixSha : undefined, scheduleSha, plan: prep.plan, split });
    planned.push({ item, hash, build, split });
  }
  const skipped: string[] = [];
  const todo: typeof planned = [];
  for (const p of planned) {
    const prev = old?.files[p.item.key];
    if (await isDone(outDir, prev, p.hash)) {
      manifest.files[p.item.key] = prev!;
      skipped.push(p.item.key);
    } else todo.push(p);
  }
  emit({ kind: "plan", items: planned.map((p) => ({ key: p.item.key, file: p.item.file, skip: skipped.includes(p.item.key) })) });
  for (const k of skipped) emit({ kind: "file", key: k, file: manifest.files[k]!.files[0]!.name, state: "skipped" });
  writeManifest(outDir, manifest);

  // one read pass for everything not done; each file verified, then moved into place and listed
  const made: string[] = [];
  if (todo.length > 0) {
    emit({ kind: "stage", stage: "build" });
    const requests: MakeRequest[] = todo.map((p) => ({ output: p.item.file, schedule: p.item.schedule, splitMaxSize: p.split }));
    await makeFiles(requests, {
      input,
      outDir,
      threads,
      pool: sharedQuantizePool(threads),
      signal: opts.signal,
      onWarning: opts.onWarning,
      onProgress: (p: MultiBuildProgress) => emit({ kind: "progress", stage: "build", done: p.bytesDone, total: p.bytesTotal, detail: p.tensorName }),
      onVerify: (k) => emit({ kind: "stage", stage: "verify", detail: todo[k]!.item.key }),
      onDone: async (k, m) => {
        const p = todo[k]!;
        const files = [];
        for (const [i, f] of m.files.entries()) files.push({ name: path.basename(f), bytes: fs.statSync(f).size, sha256: m.sha256[i]! });
        manifest.files[p.item.key] = {
          key: p.item.key,
          kind: p.item.kind,
          description: p.item.description,
          files,
          planHash: p.hash,
          build: p.build,
          imatrix: p.item.imatrix !== undefined,
          schedule: p.item.scheduleCopy && path.relative(outDir, p.item.scheduleCopy),
          verified: { tensors: m.verified.tensors, tokens: m.verified.tokens, logits: m.verified.logits },
        };
        made.push(p.item.key);
        // listed as soon as it is in place: a run killed now resumes after it
        writeManifest(outDir, manifest);
        emit({ kind: "file", key: p.item.key, file: files[0]!.name, state: "verified" });
      },
    });
  }

  // evaluation: the files whose figures for these settings are not in the manifest yet
  if (opts.evalText) {
    emit({ kind: "stage", stage: "evaluate" });
    const evalOpts = { base: input, text: opts.evalText.content, textName: opts.evalText.name, ctx, chunks: opts.chunks, threads, cacheDir: opts.cacheDir, signal: opts.signal };
    const key = evaluationKey(evalOpts);
    const pending = items.filter((it) => manifest.files[it.key]?.eval?.evalKey !== key);
    const report = await evaluateFiles(
      pending.map((it) => ({ key: it.key, file: path.join(outDir, manifest.files[it.key]!.files[0]!.name) })),
      { ...evalOpts, onProgress: (file, done, total) => emit({ kind: "progress", stage: "evaluate", done, total, key: items.find((i) => path.resolve(i.file) === path.resolve(file))?.key, detail: path.basename(file) }) },
    );
    for (const row of report.rows) {
      const it = pending.find((i) => path.resolve(path.join(outDir, manifest.files[i.key]!.files[0]!.name)) === path.resolve(row.file))!;
      manifest.files[it.key]!.eval = { evalKey: key, row: { ...row, file: path.basename(row.file), pareto: undefined } };
      emit({ kind: "file", key: it.key, file: row.file, state: "evaluated" });
    }
    manifest.base = { ...report.base!, file: path.basename(input) };
    manifest.evaluation = { text: path.basename(opts.evalText.name), ctx: report.ctx, chunks: report.chunks, positions: report.positions, evalKey: key };
    writeManifest(outDir, manifest);
  }

  emit({ kind: "stage", stage: "card" });
  const card = writeCard(outDir, manifest, {
    baseModel: opts.baseModel ?? name,
    quantizedBy: opts.quantizedBy ?? "hquant",
    repo: opts.repo ?? `<user>/${name}-GGUF`,
    command: opts.command ?? shellLine(["hquant", "release", input, "--out", outDir]),
    imatrixCommand,
    tuneCommand,
    order: items.map((i) => i.key),
  });
  return { outDir, manifest, made, skipped, card };
}

export type { ManifestFile as ReleaseFile };
