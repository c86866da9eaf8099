// The few hyper-parameters llama.cpp's mixture rules look at, as llama.cpp has them once the model
// is loaded (arch.ts: the loader's checks, and the layer count it really uses).
import type { GGUFKV } from "../gguf/model.js";
import { loadedHParams } from "./arch.js";
import { LLAMA_CPP_ARCHITECTURES } from "./arch-facts.js";

export interface MixtureHParams {
  arch: string;
  /** block_count: the file's blk.N layers, which schedules are resolved against (0 for clip) */
  nLayer: number;
  /** hparams.n_layer_all once loaded: n_ffn_down/gate/up, and the bound of expert tensors' layers */
  nLayerAll: number;
  /** hparams.n_expert (0 for dense models) */
  nExpert: number;
  /** n_head(0) / n_head_kv(0), 0 when n_head_kv is 0; undefined when llama.cpp has no heads (clip) */
  nGqa: number | undefined;
  /** model.type == LLM_TYPE_70B (attn_v gets Q5_K instead of Q3_K/Q4_K) */
  is70B: boolean;
}


export function mixtureHParams(kv: readonly GGUFKV[], source = "model"): MixtureHParams {
  const hp = loadedHParams(kv, source);
  const { arch, nHead, nHeadKv, nExpert } = hp;
  const nGqa = nHead === undefined || nHeadKv === undefined ? undefined : nHeadKv === 0 ? 0 : Math.floor(nHead / nHeadKv);
  // the loaders that say LLM_TYPE_70B at some layer count (generated); llama's only without 8
  // experts (then 8x7B / 8x22B or unknown) and with GQA (else 65B)
  const facts = LLAMA_CPP_ARCHITECTURES[arch]!;
  const is70B =
    facts.seventyBLayers !== undefined && hp.nLayerMain === facts.seventyBLayers && (facts.loader !== "llama" || (nExpert !== 8 && nHead !== nHeadKv));
  return { arch, nLayer: hp.blockCount, nLayerAll: hp.nLayerAll, nExpert, nGqa, is70B };
}
