// The models the evaluator and imatrix benchmarks run on: the bundled F16 model (vocabulary 4 096)
// or the same model with its vocabulary widened (e.g. to 152 000 tokens, so the per-token
// vocabulary cost is measured), and a Q4_K_M of each built by hquant.
//
// The widened models are written with hquant's GGUF writer: extra CONTROL tokens that plain text
// never tokenizes to (so every file tokenizes the text as the bundled model does), token_embd rows
// padded with zeros (never looked up) and output rows padded with copies of the <unk> row (the
// model's never-predicted token, so the extra tokens carry next to no probability).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildModel } from "../src/build/index.js";
import { archNumber, GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { readHeaderAt } from "../src/gguf/reader.js";
import { GGUFFileWriter } from "../src/gguf/writer.js";
import { tensorBytes } from "../src/gguf/ggml-types.js";
import { scheduleFromOptions } from "../src/plan/options.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BASE_MODEL = "models/tinyllama-16l-f16.gguf";
/** tokenizer.ggml.token_type CONTROL: never produced by tokenizing text without special parsing */
const TOKEN_CONTROL = 3;
const BASE = BASE_MODEL;

export interface BenchModels {
  f16: string;
  q4: string;
}

/** The bundled model with its vocabulary widened to `nVocab` tokens. */
async function widen(nVocab: number, target: string): Promise<void> {
  const h = await readHeaderAt(path.resolve(REPO, BASE));
  const fd = fs.openSync(path.resolve(REPO, BASE), "r");
  const readTensor = (offset: number, bytes: number) => {
    const b = Buffer.alloc(bytes);
    fs.readSync(fd, b, 0, bytes, h.dataOffset + offset);
    return b;
  };
  const n0 = (h.kv.find((kv) => kv.key === "tokenizer.ggml.tokens")!.value as string[]).length;
  const extra = nVocab - n0;
  const kv: GGUFKV[] = h.kv.map((e) => {
    switch (e.key) {
      case "llama.vocab_size":
        return { ...e, value: nVocab };
      case "general.name":
        return { ...e, value: `${e.value} (vocabulary widened to ${nVocab})` };
      case "tokenizer.ggml.tokens":
        return { ...e, value: [...(e.value as string[]), ...Array.from({ length: extra }, (_, i) => `<hquant_pad_${i}>`)] };
      case "tokenizer.ggml.scores":
        return { ...e, value: [...(e.value as number[]), ...new Array<number>(extra).fill(-1e9)] };
      case "tokenizer.ggml.token_type":
        return { ...e, value: [...(e.value as number[]), ...new Array<number>(extra).fill(TOKEN_CONTROL)] };
      default:
        return e;
    }
  });
  if (!kv.some((e) => e.key === "llama.vocab_size")) kv.push({ key: "llama.vocab_size", type: GGUFValueType.UINT32, value: nVocab });
  const widened = new Set(["token_embd.weight", "output.weight"]);
  const specs = h.tensors.map((t) => ({ name: t.name, type: t.type, shape: widened.has(t.name) ? [t.shape[0], nVocab] : t.shape }));
  const writer = await GGUFFileWriter.create(target, kv, specs);
  try {
    for (const t of h.tensors) {
      const data = readTensor(t.offset, t.bytes);
      if (!widened.has(t.name)) {
        await writer.writeTensor(data);
        continue;
      }
      const rowBytes = tensorBytes(t.type, [t.shape[0]]);
      const out = Buffer.alloc(tensorBytes(t.type, [t.shape[0], nVocab]));
      data.copy(out);
      // output: every extra row is <unk>'s (row 0); token_embd: zeros
      if (t.name === "output.weight") for (let r = n0; r < nVocab; r++) data.copy(out, r * rowBytes, 0, rowBytes);
      await writer.writeTensor(out);
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** The F16 model of `nVocab` tokens (the bundled one at 4 096, else widened into `dir`) and its Q4_K_M (built by hquant into `dir`); reused when present. */
export async function benchModels(nVocab: number, dir: string, threads: number): Promise<BenchModels> {
  fs.mkdirSync(dir, { recursive: true });
  const f16 = nVocab === 4096 ? path.resolve(REPO, BASE) : path.join(dir, `tinyllama-16l-v${nVocab}-f16.gguf`);
  if (!fs.existsSync(f16)) {
    process.stderr.write(`writing ${path.basename(f16)}\n`);
    await widen(nVocab, f16);
  }
  const q4 = path.join(dir, `tinyllama-16l-v${nVocab}-q4_k_m.gguf`);
  if (!fs.existsSync(q4)) {
    process.stderr.write(`hquant build ${path.basename(q4)}\n`);
    await buildModel({ input: f16, output: q4, threads, schedule: (m) => scheduleFromOptions({ preset: "Q4_K_M" }, archNumber(m.kv, "block_count") ?? 0) });
  }
  return { f16, q4 };
}

/** A command's wall and CPU seconds (user + system of it and its children, from bash's `time`). */
export interface TimedRun {
  status: number | null;
  stdout: string;
  stderr: string;
  wall: number;
  cpu: number;
}

export function timedRun(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): TimedRun {
  const t0 = performance.now();
  const r = spawnSync("bash", ["-c", 'TIMEFORMAT="bench-cpu-seconds %U %S"; time "$0" "$@"', cmd, ...args], { ...opts, encoding: "utf8", maxBuffer: 1 << 28 });
  const wall = (performance.now() - t0) / 1000;
  const m = [...r.stderr.matchAll(/bench-cpu-seconds ([0-9.]+) ([0-9.]+)/g)].pop();
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, wall, cpu: m ? Number(m[1]) + Number(m[2]) : NaN };
}

/** `uptime`'s line: the load the figures were measured under. */
export function uptime(): string {
  return spawnSync("uptime", { encoding: "utf8" }).stdout.trim();
}
