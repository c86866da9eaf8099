// The few hyper-parameters llama.cpp's mixture rules look at, read from the GGUF metadata the way
// llama_model::load_hparams reads them.
import type { GGUFKV } from "../gguf/model.js";
import { architecture, archNumber } from "../gguf/model.js";
import { UserError } from "../errors.js";

export interface MixtureHParams {
  arch: string;
  /** block_count (hparams.n_layer_all): n_ffn_down/gate/up, and the depth schedules are resolved against */
  nLayer: number;
  /** hparams.n_expert (0 for dense models) */
  nExpert: number;
  /** n_head(0) / n_head_kv(0), 0 when n_head_kv is 0 */
  nGqa: number;
  /** model.type == LLM_TYPE_70B (attn_v gets Q5_K instead of Q3_K/Q4_K) */
  is70B: boolean;
}

/** Archs whose loader sets LLM_TYPE_70B, and the layer count (n_layer()) at which it does. */
const SEVENTY_B_LAYERS: Readonly<Record<string, number>> = { llama: 80, deci: 80, olmo: 80, qwen2: 80, jais2: 68 };

export function mixtureHParams(kv: readonly GGUFKV[], source = "model"): MixtureHParams {
  const arch = architecture(kv);
  if (!arch) throw new UserError(`${source}: no general.architecture in the metadata`);
  const nLayer = archNumber(kv, "block_count");
  if (nLayer === undefined || !Number.isInteger(nLayer) || nLayer <= 0) {
    throw new UserError(`${source}: ${arch}.block_count is missing or not a positive integer`);
  }
  let nExpert = archNumber(kv, "expert_count") ?? 0;
  if ((arch === "hunyuan-vl" || arch === "hunyuan-dense") && nExpert <= 1) nExpert = 0;
  const nHead = archNumber(kv, "attention.head_count") ?? 0;
  const nHeadKv = archNumber(kv, "attention.head_count_kv") ?? nHead;
  const nGqa = nHeadKv === 0 ? 0 : Math.floor(nHead / nHeadKv);
  const nLayerMain = nLayer - (archNumber(kv, "nextn_predict_layers") ?? 0);
  const seventyB = SEVENTY_B_LAYERS[arch];
  const is70B =
    seventyB !== undefined && nLayerMain === seventyB && (arch !== "llama" || (nExpert !== 8 && nHead !== nHeadKv));
  return { arch, nLayer, nExpert, nGqa, is70B };
}
