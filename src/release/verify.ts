// Verification of a written GGUF before it is called done: its header against the plan (tensor
// count, names, types, shapes, every metadata key the build wrote, per-layer arrays as long as the
// layer count), then llama.cpp loads it and decodes a short prompt, and every logit must be finite.
// Any failure is one UserError line naming the file. llama.cpp is reached only through the
// runtime's public functions, in the evaluation process (src/runtime/isolation.ts).
import { UserError } from "../errors.js";
import { typeName } from "../gguf/ggml-types.js";
import type { GGUFKV, GGUFScalar } from "../gguf/model.js";
import { openModel } from "../gguf/reader.js";
import { SPLIT_KEYS } from "../gguf/split.js";
import type { Plan } from "../plan/planner.js";
import { LlamaModel } from "../runtime/index.js";
import { isolationEnabled, runIsolated } from "../runtime/isolation.js";

export interface VerifyExpectation {
  plan: Plan;
  /** the metadata the build wrote (without split.*) */
  kv?: readonly GGUFKV[];
}

export interface VerifyOptions {
  threads?: number;
  /** decoded after loading (default: a short English sentence) */
  prompt?: string;
}

export interface VerifyReport {
  file: string;
  tensors: number;
  /** tokens decoded */
  tokens: number;
  /** logits checked (tokens × vocabulary) */
  logits: number;
}

export const DEFAULT_VERIFY_PROMPT = "The quick brown fox jumps over the lazy dog. Once upon a time, there was a little girl who";

/**
 * Tokens of the prompt decoded: every layer and the output head run on each of them, so more
 * would check nothing else, and on a large model each costs a pass over the weights.
 */
export const VERIFY_MAX_TOKENS = 16;

/** Metadata keys llama.cpp reads per layer (get_key_or_arr): an array must have one entry per layer. */
const PER_LAYER_KEYS = ["attention.head_count", "attention.head_count_kv", "feed_forward_length", "attention.sliding_window_pattern", "attention.key_length", "attention.value_length"];

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

function fail(file: string, what: string): never {
  throw new UserError(`${file}: verification failed: ${oneLine(what)}`);
}

const same = (a: GGUFScalar | GGUFScalar[], b: GGUFScalar | GGUFScalar[]): boolean => {
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]!));
  return typeof a === "number" && typeof b === "number" && Number.isNaN(a) ? Number.isNaN(b) : a === b;
};

/** The file's header against the plan; throws one line naming the first difference. */
export async function checkHeader(file: string, expect: VerifyExpectation): Promise<number> {
  const model = await openModel(file);
  const { plan } = expect;
  if (model.tensors.length !== plan.tensors.length) fail(file, `${model.tensors.length} tensors, the plan has ${plan.tensors.length}`);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  for (const p of plan.tensors) {
    const t = byName.get(p.name);
    if (!t) fail(file, `tensor ${p.name} is missing`);
    if (t.type !== p.dstType) fail(file, `tensor ${p.name} is ${typeName(t.type)}, the plan says ${typeName(p.dstType)}`);
    if (t.shape.join(",") !== p.shape.join(",")) fail(file, `tensor ${p.name} has shape [${t.shape}], the plan says [${p.shape}]`);
  }
  const kv = new Map(model.kv.map((e) => [e.key, e]));
  for (const e of expect.kv ?? []) {
    if ((SPLIT_KEYS as readonly string[]).includes(e.key)) continue;
    const got = kv.get(e.key);
    if (!got || got.type !== e.type || !same(got.value, e.value)) fail(file, `metadata ${e.key} differs from the plan`);
  }
  // per-layer metadata: the layer count the tensors show, and arrays of that length
  const arch = kv.get("general.architecture")?.value;
  const blocks = kv.get(`${arch}.block_count`)?.value;
  const layers = new Set(model.tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)?.[1]).filter((x) => x !== undefined).map(Number));
  const nLayer = layers.size > 0 ? Math.max(...layers) + 1 : 0;
  if (blocks !== undefined && Number(blocks) !== nLayer) fail(file, `${arch}.block_count is ${blocks} but the tensors have ${nLayer} layers`);
  for (const key of PER_LAYER_KEYS) {
    const v = kv.get(`${arch}.${key}`)?.value;
    if (Array.isArray(v) && v.length !== nLayer) fail(file, `${arch}.${key} has ${v.length} entries for ${nLayer} layers`);
  }
  return model.tensors.length;
}

/**
 * Loads `file` (the first shard of a split file) in llama.cpp, decodes `prompt` and checks every
 * logit; with an expectation, checks the header against the plan first. The llama.cpp part runs in
 * the evaluation process (src/runtime/isolation.ts): a file that makes llama.cpp abort fails
 * verification with one line instead of ending hquant.
 */
export async function verifyOutput(file: string, expect?: VerifyExpectation, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const tensors = expect ? await checkHeader(file, expect) : (await openModel(file)).tensors.length;
  const decodeOpts = { prompt: opts.prompt, threads: opts.threads };
  const decoded = isolationEnabled()
    ? await runIsolated<DecodeCheck>({ module: "release/verify.js", fn: "checkDecode", args: [file, decodeOpts] }, { file })
    : await checkDecode(file, decodeOpts);
  return { file, tensors, ...decoded };
}

export interface DecodeCheck {
  tokens: number;
  logits: number;
}

/** llama.cpp loads `file` and decodes the prompt; every logit must be finite. */
export async function checkDecode(file: string, opts: VerifyOptions): Promise<DecodeCheck> {
  let model: LlamaModel;
  try {
    // not repacked: that copy of the weights is llama.cpp's CPU speed-up, and costs more than the
    // decode on a 4-bit model (0.8 s of a 1.1 GB Q4_K_M's 1.3 s); the file's bytes are what is checked
    model = LlamaModel.load(file, undefined, { repack: false });
  } catch (err) {
    fail(file, (err as Error).message.replace(`${file}: `, ""));
  }
  try {
    const tokens = model.tokenize(opts.prompt ?? DEFAULT_VERIFY_PROMPT).slice(0, VERIFY_MAX_TOKENS);
    if (tokens.length < 2) fail(file, "the prompt is shorter than two tokens");
    const ctx = model.createContext({ ctx: tokens.length, nSeq: 1, threads: opts.threads ?? 1 });
    try {
      try {
        ctx.decode([tokens], 0);
      } catch (err) {
        fail(file, `llama.cpp cannot decode a prompt (${(err as Error).message.replace(`${file}: `, "")})`);
      }
      for (let k = 0; k < tokens.length; k++) {
        const logits = ctx.logitsView(0, k);
        for (let v = 0; v < logits.length; v++) {
          if (!Number.isFinite(logits[v]!)) fail(file, `logit ${v} of token ${k} of the prompt is ${logits[v]}`);
        }
      }
      return { tokens: tokens.length, logits: tokens.length * model.nVocab };
    } finally {
      ctx.dispose();
    }
  } finally {
    model.dispose();
  }
}
