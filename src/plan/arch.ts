// What llama.cpp's model loader checks and computes before llama_model_quantize picks a single type
// (llama_model_create, llama_model_base::load_hparams and the architectures' load_arch_hparams in
// src/llama-model.cpp and src/models/*.cpp): the architecture must be one llama.cpp has a model
// for, the required hyper-parameters must be there and consistent, and a few architectures load
// more layers than `<arch>.block_count` says. hquant refuses what llama.cpp refuses (with one line,
// also where llama.cpp aborts the process) and uses the layer count llama.cpp actually uses.
import { GGUFValueType, type GGUFKV, type GGUFScalar } from "../gguf/model.js";
import { kvValue } from "../gguf/model.js";
import { VALUE_TYPE_NAMES } from "../gguf/reader.js";
import { UserError } from "../errors.js";
import { BASE_READS, LLAMA_CPP_ARCHITECTURES, type KeyRead, type LoaderView } from "./arch-facts.js";

/** LLAMA_MAX_LAYERS, LLAMA_MAX_EXPERTS (src/llama-hparams.h) */
const MAX_LAYERS = 512;
const MAX_EXPERTS = 1024;

/** LLAMA_ROPE_SCALING_TYPES */
const ROPE_SCALING_TYPES: readonly string[] = ["none", "linear", "yarn", "longrope"];

/** Architectures whose loader requires rope.dimension_count == the key head size (load_hparams). */
const ROPE_DIMS_MUST_EQUAL_HEAD: ReadonlySet<string> = new Set(["llama", "deci", "falcon", "llama-embed"]);

/** Vision/audio projectors: llama.cpp reads no hyper-parameters for them (only llama-quantize uses it). */
const NO_HPARAMS_ARCH = "clip";

/**
 * Architectures whose load_arch_hparams sets hparams.n_layer_all to something else than
 * block_count: nanbeige repeats its block_count physical layers num_loops times; graniteswitch adds
 * a router layer after the real ones (and counts it as a next-n layer).
 */
const LOADED_LAYERS: Readonly<Record<string, (blockCount: number, kv: readonly GGUFKV[], arch: string, source: string) => { nLayerAll: number; nLayerNextn?: number }>> = {
  nanbeige: (blockCount, kv, arch, source) => {
    const loops = optionalNumber(kv, `${arch}.num_loops`, source) ?? 1;
    if (loops < 1) throw new UserError(`${source}: ${arch}.num_loops ${loops} must be at least 1 (llama.cpp aborts)`);
    if (blockCount * loops > MAX_LAYERS) {
      throw new UserError(`${source}: ${arch}.block_count ${blockCount} × num_loops ${loops} exceeds llama.cpp's ${MAX_LAYERS} layers (llama.cpp aborts)`);
    }
    return { nLayerAll: loops > 1 ? blockCount * loops : blockCount };
  },
  graniteswitch: (blockCount, _kv, _arch, source) => {
    if (blockCount >= MAX_LAYERS) throw new UserError(`${source}: graniteswitch: block count ${blockCount} exceeds LLAMA_MAX_LAYERS`);
    return { nLayerAll: blockCount + 1, nLayerNextn: 1 };
  },
};

/** The hyper-parameters llama.cpp has once the model is loaded, as the quantizer uses them. */
export interface LoadedHParams {
  arch: string;
  /** `<arch>.block_count`: the blk.N layers in the file (0 for clip) */
  blockCount: number;
  /** hparams.n_layer_all after loading: sizes the ffn_down/gate/up counters and bounds expert layers */
  nLayerAll: number;
  /** hparams.n_layer() = n_layer_all − n_layer_nextn */
  nLayerMain: number;
  nExpert: number;
  /** attention.head_count / head_count_kv of layer 0; undefined when llama.cpp has none (clip) */
  nHead: number | undefined;
  nHeadKv: number | undefined;
}

function describe(v: GGUFScalar | GGUFScalar[]): string {
  return Array.isArray(v) ? `an array` : typeof v === "string" ? JSON.stringify(v) : String(v);
}

function asNumber(v: GGUFScalar | GGUFScalar[] | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function optionalNumber(kv: readonly GGUFKV[], key: string, source: string): number | undefined {
  const v = kvValue(kv, key);
  if (v === undefined) return undefined;
  const n = asNumber(Array.isArray(v) ? v[0] : v);
  if (n === undefined) throw new UserError(`${source}: ${key} is ${describe(v)}, not a number`);
  return n;
}

/** A per-layer key (a number or an array of numbers): its largest value, as n_expert_used_max(). */
function maxOfKeyOrArray(kv: readonly GGUFKV[], key: string, source: string): number | undefined {
  const v = kvValue(kv, key);
  if (v === undefined) return undefined;
  const values = (Array.isArray(v) ? v : [v]).map(asNumber);
  if (values.some((x) => x === undefined)) throw new UserError(`${source}: ${key} is ${describe(v)}, not a number`);
  return Math.max(0, ...(values as number[]));
}

/** gguf_type_name: hquant's value-type names, but for "str" and "arr" */
const GGUF_TYPE_NAMES: Readonly<Record<number, string>> = {
  ...VALUE_TYPE_NAMES,
  [GGUFValueType.STRING]: "str",
  [GGUFValueType.ARRAY]: "arr",
};

/** Array element types get_arr accepts for a target of `type` (u32/i32 targets take bool, u32 and i32). */
function elementFits(type: string, element: string): boolean {
  return type === "u32" || type === "i32" ? ["bool", "u32", "i32"].includes(element) : type === element;
}

/**
 * One read of llama_model_loader (get_key, get_key_or_arr, get_arr, get_arr_n) as llama.cpp does
 * it: a missing required key, a value of another GGUF type than the target's, an array of the
 * wrong length or element type are errors; an optional key that is absent is not.
 */
function checkRead(read: KeyRead, kv: readonly GGUFKV[], view: LoaderView, arch: string, source: string): void {
  if (read.when && !read.when(view)) return;
  const key = read.key.replace("%s", arch);
  const entry = kv.find((e) => e.key === key);
  const fail = (what: string) => new UserError(`${source}: key ${key} ${what}`);
  const isArray = entry?.type === GGUFValueType.ARRAY;
  if (entry === undefined || (read.method === "get_arr" && !isArray) || (read.scalarOnly && isArray)) {
    if (read.required) throw new UserError(`${source}: key not found in model: ${key} (llama.cpp needs it to load the model)`);
    return;
  }
  const stored = GGUF_TYPE_NAMES[entry.type] ?? String(entry.type);
  if (read.method === "get_arr_n") {
    if (!isArray) throw fail(`has type ${stored}, llama.cpp expects an array`);
    return;
  }
  if (read.type === undefined) return;
  if (!isArray) {
    if (read.method === "get_arr" || stored !== read.type) throw fail(`has type ${stored}, llama.cpp expects ${read.type}`);
    return;
  }
  if (read.method === "get_key") throw fail(`is an array, llama.cpp expects ${read.type}`);
  const element = GGUF_TYPE_NAMES[entry.arrayType ?? -1] ?? "?";
  const n = (entry.value as GGUFScalar[]).length;
  if (read.length) {
    const want = read.length(view);
    if (n !== want) throw fail(`has ${n} values, llama.cpp expects ${want}`);
  }
  if (!elementFits(read.type, element)) throw fail(`is an array of ${element}, llama.cpp expects ${read.type} values`);
}

/** The loader's view of the file for the reads' conditions. */
function loaderView(kv: readonly GGUFKV[], arch: string, counts: { nLayer: number; nLayerAll: number; nExpert: number }): LoaderView {
  const value = (key: string) => kvValue(kv, key.replace("%s", arch));
  const vocabSize = asNumber(value("%s.vocab_size") as GGUFScalar | undefined);
  const tokens = kvValue(kv, "tokenizer.ggml.tokens");
  return {
    ...counts,
    nVocab: vocabSize ?? (Array.isArray(tokens) ? tokens.length : 0),
    has: (key) => value(key) !== undefined,
    num: (key, absent) => {
      const v = value(key);
      return typeof v === "boolean" ? Number(v) : (asNumber(v as GGUFScalar | undefined) ?? absent);
    },
  };
}

/** The checks llama.cpp runs while loading the model for quantization, and the layer counts it ends up with. */
export function loadedHParams(kv: readonly GGUFKV[], source = "model"): LoadedHParams {
  const archValue = kvValue(kv, "general.architecture");
  const arch = typeof archValue === "string" ? archValue : "";
  const facts = Object.hasOwn(LLAMA_CPP_ARCHITECTURES, arch) ? LLAMA_CPP_ARCHITECTURES[arch] : undefined;
  if (facts === undefined) {
    throw new UserError(
      arch === ""
        ? `${source}: no general.architecture in the metadata (llama.cpp: unknown model architecture)`
        : `${source}: unknown model architecture '${arch}' (llama.cpp has no such architecture)`,
    );
  }
  if (!facts.model) throw new UserError(`${source}: unsupported model architecture '${arch}' (llama.cpp has no model for it)`);
  if (arch === NO_HPARAMS_ARCH) {
    return { arch, blockCount: 0, nLayerAll: 0, nLayerMain: 0, nExpert: 0, nHead: undefined, nHeadKv: undefined };
  }

  // the keys every loader reads, with the counts known before load_arch_hparams runs
  const rawCount = (key: string) => asNumber(kvValue(kv, `${arch}.${key}`) as GGUFScalar | undefined) ?? 0;
  const baseView = loaderView(kv, arch, { nLayer: rawCount("block_count") - rawCount("nextn_predict_layers"), nLayerAll: rawCount("block_count"), nExpert: rawCount("expert_count") });
  for (const read of BASE_READS) checkRead(read, kv, baseView, arch, source);
  const blockCount = optionalNumber(kv, `${arch}.block_count`, source)!;
  if (!Number.isInteger(blockCount) || blockCount <= 0 || blockCount > MAX_LAYERS) {
    throw new UserError(`${source}: ${arch}.block_count ${blockCount} is not in 1..${MAX_LAYERS} (llama.cpp aborts)`);
  }
  let nLayerNextn = optionalNumber(kv, `${arch}.nextn_predict_layers`, source) ?? 0;
  if (nLayerNextn > blockCount) {
    throw new UserError(`${source}: ${arch}.nextn_predict_layers ${nLayerNextn} is larger than block_count ${blockCount} (llama.cpp aborts)`);
  }

  let nExpert = optionalNumber(kv, `${arch}.expert_count`, source) ?? 0;
  let nExpertUsed = maxOfKeyOrArray(kv, `${arch}.expert_used_count`, source) ?? 0;
  const nExpertGroups = optionalNumber(kv, `${arch}.expert_group_count`, source) ?? 0;
  const nGroupUsed = optionalNumber(kv, `${arch}.expert_group_used_count`, source) ?? 0;
  if ((arch === "hunyuan-vl" || arch === "hunyuan-dense") && nExpert <= 1) {
    nExpert = 0;
    nExpertUsed = 0;
  }
  const aborts = (what: string) => new UserError(`${source}: ${what} (llama.cpp aborts)`);
  if (nExpert > MAX_EXPERTS) throw aborts(`${arch}.expert_count ${nExpert} exceeds llama.cpp's ${MAX_EXPERTS} experts`);
  if (nExpertUsed > nExpert) throw aborts(`${arch}.expert_used_count ${nExpertUsed} is larger than expert_count ${nExpert}`);
  if (nExpert > 0) {
    if (nExpertUsed === 0) throw aborts(`${arch}.expert_used_count is 0 or missing with expert_count ${nExpert}`);
    if (nExpertGroups >= nExpert) throw aborts(`${arch}.expert_group_count ${nExpertGroups} is not below expert_count ${nExpert}`);
    if (nExpertGroups > 1) {
      if (nExpert % nExpertGroups !== 0) throw aborts(`${arch}.expert_count ${nExpert} is not a multiple of expert_group_count ${nExpertGroups}`);
      if (nGroupUsed <= 0 || nGroupUsed >= nExpertGroups) {
        throw aborts(`${arch}.expert_group_used_count ${nGroupUsed} is not in 1..${nExpertGroups - 1}`);
      }
    }
  } else if (nExpertGroups !== 0) {
    throw aborts(`${arch}.expert_group_count ${nExpertGroups} without experts`);
  }

  const ropeScaling = kvValue(kv, `${arch}.rope.scaling.type`);
  if (ropeScaling !== undefined && !ROPE_SCALING_TYPES.includes(String(ropeScaling))) {
    throw aborts(`${arch}.rope.scaling.type ${describe(ropeScaling)} is not one of ${ROPE_SCALING_TYPES.join(", ")}`);
  }

  const nHead = optionalNumber(kv, `${arch}.attention.head_count`, source) ?? 0;
  const nHeadKv = optionalNumber(kv, `${arch}.attention.head_count_kv`, source) ?? nHead;
  if (nHead > 0 && ROPE_DIMS_MUST_EQUAL_HEAD.has(arch)) {
    const nEmbd = optionalNumber(kv, `${arch}.embedding_length`, source)!;
    const headK = optionalNumber(kv, `${arch}.attention.key_length`, source) ?? Math.floor(nEmbd / nHead);
    const nRot = optionalNumber(kv, `${arch}.rope.dimension_count`, source) ?? headK;
    if (nRot !== headK) {
      throw new UserError(`${source}: invalid rope dimensions: ${arch}.rope.dimension_count is ${nRot}, llama.cpp expects the head size ${headK}`);
    }
  }

  const archView = loaderView(kv, arch, { nLayer: blockCount - nLayerNextn, nLayerAll: blockCount, nExpert });
  for (const read of facts.reads) checkRead(read, kv, archView, arch, source);
  for (const refusal of facts.refusals ?? []) {
    if (refusal.when(archView)) throw new UserError(`${source}: ${arch}: ${refusal.message} (llama.cpp ${refusal.aborts ? "aborts" : "refuses the model"})`);
  }

  let nLayerAll = blockCount;
  const loaded = LOADED_LAYERS[arch]?.(blockCount, kv, arch, source);
  if (loaded) {
    nLayerAll = loaded.nLayerAll;
    if (loaded.nLayerNextn !== undefined) nLayerNextn = loaded.nLayerNextn;
  }
  return { arch, blockCount, nLayerAll, nLayerMain: nLayerAll - nLayerNextn, nExpert, nHead, nHeadKv };
}
