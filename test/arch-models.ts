// Synthetic models of the architecture families whose tensor naming or hyper-parameters change a
// llama.cpp mixture rule or make llama.cpp refuse the input (see src/plan/arch.ts and
// src/plan/tensors.ts), plus the inputs llama.cpp refuses. Tiny shapes: rows of 256 where a
// k-quant should fit, fewer elsewhere (llama-quantize never checks shapes against hyper-parameters).
import { GGMLType } from "../src/gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { encodeHeader } from "../src/gguf/writer.js";
import { LLAMA_CPP_ARCHITECTURES } from "../src/plan/arch-facts.js";
import type { FileTypeName } from "../src/plan/ftypes.js";
import { parseTargetType } from "../src/plan/schedule.js";
import { f32kv, makeCustomModel, strkv, tokenizerKV, u32kv, type CustomTensor } from "./factory.js";

export interface ArchModel {
  /** what the model stands for */
  label: string;
  arch: string;
  kv: GGUFKV[];
  tensors: CustomTensor[];
  alignment?: number;
}

export const E = 256;
const VOCAB = 64;

/** A value for each hyper-parameter llama.cpp requires of `arch` (from the generated table). */
function requiredKV(arch: string, nLayer: number): GGUFKV[] {
  const out: GGUFKV[] = [];
  const required = LLAMA_CPP_ARCHITECTURES[arch]!.reads.filter((r) => r.required && r.when === undefined).map((r) => r.key);
  for (const template of new Set(required)) {
    const key = template.replace("%s", arch);
    if (key.endsWith("epsilon")) out.push(f32kv(key, 1e-5));
    else if (key.endsWith("use_parallel_residual")) out.push({ key, type: GGUFValueType.BOOL, value: true });
    else if (key.endsWith("rope.dimension_sections")) out.push({ key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.INT32, value: [8, 8, 8, 8] });
    else if (key.endsWith("logit_scale")) out.push(f32kv(key, 1));
    else if (key.includes("adapters.token_ids")) out.push({ key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.INT32, value: [5] });
    else if (key.endsWith("adapters.count")) out.push(u32kv(key, 1));
    else out.push(u32kv(key, nLayer > 0 ? 8 : 1));
  }
  return out;
}

/** general.architecture, the keys every loader reads, head counts, the arch's required keys, a tokenizer. */
export function archKV(arch: string, nLayer: number, o: { nHead?: number; nHeadKv?: number; extra?: GGUFKV[]; skipRequired?: boolean } = {}): GGUFKV[] {
  const kv: GGUFKV[] = [
    strkv("general.architecture", arch),
    strkv("general.name", `hquant test ${arch}`),
    u32kv(`${arch}.block_count`, nLayer),
    u32kv(`${arch}.context_length`, 256),
    u32kv(`${arch}.embedding_length`, E),
    u32kv(`${arch}.feed_forward_length`, 256),
  ];
  if (o.nHead !== undefined) {
    kv.push(u32kv(`${arch}.attention.head_count`, o.nHead), u32kv(`${arch}.attention.head_count_kv`, o.nHeadKv ?? o.nHead));
  }
  if (!o.skipRequired && LLAMA_CPP_ARCHITECTURES[arch]) kv.push(...requiredKV(arch, nLayer));
  kv.push(u32kv("general.file_type", 1), ...tokenizerKV(VOCAB), ...(o.extra ?? []));
  return kv;
}

export const W = (name: string, shape: number[]): CustomTensor => ({ name, shape });
export const N = (name: string, n = E): CustomTensor => ({ name, shape: [n], type: GGMLType.F32 });

/** attn_norm, separate q/k/v (head dim 32) or fused qkv, attn_output, ffn_norm, gate/up/down. */
export function denseLayer(l: number, o: { qkv?: boolean; gate?: boolean; nFf?: number; qDim?: number; kvDim?: number } = {}): CustomTensor[] {
  const b = `blk.${l}`;
  const nFf = o.nFf ?? 256;
  const q = o.qDim ?? 128;
  const kvd = o.kvDim ?? 64;
  const t: CustomTensor[] = [N(`${b}.attn_norm.weight`)];
  if (o.qkv) t.push(W(`${b}.attn_qkv.weight`, [E, q + 2 * kvd]));
  else t.push(W(`${b}.attn_q.weight`, [E, q]), W(`${b}.attn_k.weight`, [E, kvd]), W(`${b}.attn_v.weight`, [E, kvd]));
  t.push(W(`${b}.attn_output.weight`, [q, E]), N(`${b}.ffn_norm.weight`));
  if (o.gate !== false) t.push(W(`${b}.ffn_gate.weight`, [E, nFf]));
  t.push(W(`${b}.ffn_up.weight`, [E, nFf]), W(`${b}.ffn_down.weight`, [nFf, E]));
  return t;
}

export function moeFfn(l: number, nExpert: number, nFf = 256, shared = false): CustomTensor[] {
  const b = `blk.${l}`;
  const t = [
    { name: `${b}.ffn_gate_inp.weight`, shape: [E, nExpert], type: GGMLType.F32 },
    W(`${b}.ffn_gate_exps.weight`, [E, nFf, nExpert]),
    W(`${b}.ffn_up_exps.weight`, [E, nFf, nExpert]),
    W(`${b}.ffn_down_exps.weight`, [nFf, E, nExpert]),
  ];
  if (shared) t.push(W(`${b}.ffn_gate_shexp.weight`, [E, nFf]), W(`${b}.ffn_up_shexp.weight`, [E, nFf]), W(`${b}.ffn_down_shexp.weight`, [nFf, E]));
  return t;
}

export const embd = (): CustomTensor[] => [W("token_embd.weight", [E, VOCAB])];
export const head = (tied = false): CustomTensor[] => [N("output_norm.weight"), ...(tied ? [] : [W("output.weight", [E, VOCAB])])];
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The families checked against llama_model_quantize for every file type, with and without imatrix. */
export function archFamilies(): ArchModel[] {
  const out: ArchModel[] = [];
  const add = (m: ArchModel) => out.push(m);

  // 70B-class: llama with 80 layers and GQA is LLM_TYPE_70B (attn_v one step up); small rows keep it light
  add({
    label: "llama 80 layers GQA (70B class)",
    arch: "llama",
    kv: archKV("llama", 80, { nHead: 8, nHeadKv: 1, extra: [u32kv("llama.rope.dimension_count", 32), u32kv("llama.attention.key_length", 32)] }),
    tensors: [...embd(), ...range(80).flatMap((l) => denseLayer(l, { nFf: 64, qDim: 64, kvDim: 32 })), ...head()],
  });
  // 8 experts: the attn_v/attn_k/attn_output rules of Mixtral-8x7B
  add({
    label: "mixtral (llama, 8 experts)",
    arch: "llama",
    kv: archKV("llama", 2, { nHead: 4, nHeadKv: 4, extra: [u32kv("llama.expert_count", 8), u32kv("llama.expert_used_count", 2), u32kv("llama.rope.dimension_count", 64)] }),
    tensors: [...embd(), ...range(2).flatMap((l) => [...denseLayer(l).filter((t) => !/ffn_(gate|up|down)\./.test(t.name)), ...moeFfn(l, 8, 64)]), ...head()],
  });
  // MLA: attn_kv_b counts as attn_v; a leading dense layer, shared experts, 4 experts
  add({
    label: "deepseek2 MLA, leading dense layer, shared experts",
    arch: "deepseek2",
    kv: archKV("deepseek2", 3, {
      nHead: 4,
      nHeadKv: 4,
      extra: [u32kv("deepseek2.expert_count", 4), u32kv("deepseek2.expert_used_count", 2), u32kv("deepseek2.leading_dense_block_count", 1), u32kv("deepseek2.attention.q_lora_rank", 64)],
    }),
    tensors: [
      ...embd(),
      ...range(3).flatMap((l) => {
        const b = `blk.${l}`;
        const attn = [
          N(`${b}.attn_norm.weight`),
          W(`${b}.attn_q_a.weight`, [E, 64]),
          N(`${b}.attn_q_a_norm.weight`, 64),
          W(`${b}.attn_q_b.weight`, [64, 256]),
          W(`${b}.attn_kv_a_mqa.weight`, [E, 96]),
          N(`${b}.attn_kv_a_norm.weight`, 64),
          W(`${b}.attn_kv_b.weight`, [256, 256]),
          W(`${b}.attn_output.weight`, [256, E]),
          N(`${b}.ffn_norm.weight`),
        ];
        return l === 0 ? [...attn, W(`${b}.ffn_gate.weight`, [E, 256]), W(`${b}.ffn_up.weight`, [E, 256]), W(`${b}.ffn_down.weight`, [256, E])] : [...attn, ...moeFfn(l, 4, 256, true)];
      }),
      ...head(),
    ],
  });
  // without MLA's kv_b: split attn_k_b/attn_v_b (never attn_v-like), plain attn_q
  add({
    label: "deepseek2 without kv_b (attn_k_b/attn_v_b)",
    arch: "deepseek2",
    kv: archKV("deepseek2", 2, { nHead: 4, nHeadKv: 4, extra: [u32kv("deepseek2.expert_count", 4), u32kv("deepseek2.expert_used_count", 2), u32kv("deepseek2.attention.q_lora_rank", 64)] }),
    tensors: [
      ...embd(),
      ...range(2).flatMap((l) => {
        const b = `blk.${l}`;
        return [
          N(`${b}.attn_norm.weight`),
          W(`${b}.attn_q.weight`, [E, 256]),
          W(`${b}.attn_kv_a_mqa.weight`, [E, 96]),
          W(`${b}.attn_k_b.weight`, [256, 256]),
          W(`${b}.attn_v_b.weight`, [256, 256]),
          W(`${b}.attn_output.weight`, [256, E]),
          N(`${b}.ffn_norm.weight`),
          ...moeFfn(l, 4, 256),
        ];
      }),
      ...head(),
    ],
  });
  // falcon: its own output/ffn_down/attn_output rules, fused qkv, no gate
  add({
    label: "falcon (fused qkv)",
    arch: "falcon",
    kv: archKV("falcon", 3, { nHead: 4, nHeadKv: 1, extra: [u32kv("falcon.rope.dimension_count", 64)] }),
    tensors: [...embd(), ...range(3).flatMap((l) => denseLayer(l, { qkv: true, gate: false })), ...head()],
  });
  // fused qkv and fused gate+up (phi3), position embeddings kept (gpt2)
  add({
    label: "phi3 (fused qkv, fused ffn_up)",
    arch: "phi3",
    kv: archKV("phi3", 2, { nHead: 4, nHeadKv: 4 }),
    tensors: [...embd(), ...range(2).flatMap((l) => denseLayer(l, { qkv: true, gate: false, nFf: 512 })), ...head()],
  });
  add({
    label: "gpt2 (position_embd, fused qkv)",
    arch: "gpt2",
    kv: archKV("gpt2", 2, { nHead: 4 }),
    tensors: [...embd(), W("position_embd.weight", [E, 256]), ...range(2).flatMap((l) => denseLayer(l, { qkv: true, gate: false })), ...head()],
  });
  // bert: token types and positions kept, no output.weight (token_embd takes the output rules)
  add({
    label: "bert (token_types, position_embd, no output)",
    arch: "bert",
    kv: archKV("bert", 2, { nHead: 4 }),
    tensors: [
      ...embd(),
      W("token_types.weight", [E, 2]),
      W("position_embd.weight", [E, 128]),
      N("token_embd_norm.weight"),
      ...range(2).flatMap((l) => [
        W(`blk.${l}.attn_q.weight`, [E, E]),
        W(`blk.${l}.attn_k.weight`, [E, E]),
        W(`blk.${l}.attn_v.weight`, [E, E]),
        W(`blk.${l}.attn_output.weight`, [E, E]),
        N(`blk.${l}.attn_output_norm.weight`),
        W(`blk.${l}.ffn_up.weight`, [E, 256]),
        W(`blk.${l}.ffn_down.weight`, [256, E]),
        N(`blk.${l}.layer_output_norm.weight`),
      ]),
    ],
  });
  // t5: enc./dec. layers (not blk.N), twice as many ffn_down as block_count, attn_rel_b kept
  add({
    label: "t5 (encoder + decoder, attn_rel_b)",
    arch: "t5",
    kv: archKV("t5", 2, { nHead: 4 }),
    tensors: [
      ...embd(),
      ...(["enc", "dec"] as const).flatMap((p) => [
        ...range(2).flatMap((l) => [
          N(`${p}.blk.${l}.attn_norm.weight`),
          W(`${p}.blk.${l}.attn_q.weight`, [E, E]),
          W(`${p}.blk.${l}.attn_k.weight`, [E, E]),
          W(`${p}.blk.${l}.attn_v.weight`, [E, E]),
          W(`${p}.blk.${l}.attn_o.weight`, [E, E]),
          ...(l === 0 ? [W(`${p}.blk.${l}.attn_rel_b.weight`, [4, 32])] : []),
          N(`${p}.blk.${l}.ffn_norm.weight`),
          W(`${p}.blk.${l}.ffn_gate.weight`, [E, 256]),
          W(`${p}.blk.${l}.ffn_up.weight`, [E, 256]),
          W(`${p}.blk.${l}.ffn_down.weight`, [256, E]),
        ]),
        N(`${p}.output_norm.weight`),
      ]),
      W("output.weight", [E, VOCAB]),
    ],
  });
  // recurrent, no attention heads: ssm_conv1d / time_mix_* kept, no attn_v at all
  add({
    label: "mamba (ssm, no heads)",
    arch: "mamba",
    kv: archKV("mamba", 2),
    tensors: [
      ...embd(),
      ...range(2).flatMap((l) => [
        N(`blk.${l}.attn_norm.weight`),
        // trailing 1-sized dimensions: llama.cpp writes ggml_n_dims of them ([E, 512, 1] → 2-D, [E, 1, 1] → 1-D, kept)
        W(`blk.${l}.ssm_in.weight`, [E, 512, 1]),
        W(`blk.${l}.ssm_d.weight`, [E, 1, 1]),
        W(`blk.${l}.ssm_conv1d.weight`, [4, 256]),
        W(`blk.${l}.ssm_x.weight`, [256, 48]),
        W(`blk.${l}.ssm_dt.weight`, [16, 256]),
        W(`blk.${l}.ssm_a`, [16, 256]),
        W(`blk.${l}.ssm_out.weight`, [256, E]),
      ]),
      ...head(),
    ],
  });
  add({
    label: "rwkv7 (time_mix / channel_mix)",
    arch: "rwkv7",
    kv: archKV("rwkv7", 2),
    tensors: [
      ...embd(),
      ...range(2).flatMap((l) => [
        N(`blk.${l}.attn_norm.weight`),
        W(`blk.${l}.time_mix_w1.weight`, [E, 32]),
        W(`blk.${l}.time_mix_w2.weight`, [32, E]),
        W(`blk.${l}.time_mix_key.weight`, [E, E]),
        W(`blk.${l}.time_mix_value.weight`, [E, E]),
        W(`blk.${l}.time_mix_receptance.weight`, [E, E]),
        W(`blk.${l}.time_mix_output.weight`, [E, E]),
        W(`blk.${l}.channel_mix_key.weight`, [E, 512]),
        W(`blk.${l}.channel_mix_value.weight`, [512, E]),
      ]),
      ...head(),
    ],
  });
  // gemma3n: per_layer_token_embd follows the token embedding, altup/laurel/per_layer_model_proj kept, tied
  add({
    label: "gemma3n (per-layer embeddings, altup, laurel, tied)",
    arch: "gemma3n",
    kv: archKV("gemma3n", 2, { nHead: 4, nHeadKv: 2 }),
    tensors: [
      ...embd(),
      W("per_layer_token_embd.weight", [E, VOCAB]),
      W("per_layer_model_proj.weight", [E, 256]),
      W("altup_proj.weight", [E, E, 3]),
      ...range(2).flatMap((l) => [
        ...denseLayer(l),
        W(`blk.${l}.altup_router.weight`, [E, 4]),
        W(`blk.${l}.laurel_l.weight`, [E, 64]),
        W(`blk.${l}.laurel_r.weight`, [64, E]),
      ]),
      ...head(true),
    ],
  });
  // loaded layer count: nanbeige loops its 2 layers 4 times (n_layer_all 8), graniteswitch adds a router layer
  add({
    label: "nanbeige (num_loops 4: 8 loaded layers)",
    arch: "nanbeige",
    kv: archKV("nanbeige", 2, { nHead: 4, nHeadKv: 2, extra: [u32kv("nanbeige.num_loops", 4)] }),
    tensors: [...embd(), ...range(2).flatMap((l) => denseLayer(l)), ...head()],
  });
  add({
    label: "graniteswitch (router layer: block_count + 1)",
    arch: "graniteswitch",
    kv: archKV("graniteswitch", 2, { nHead: 4, nHeadKv: 2 }),
    tensors: [
      ...embd(),
      ...range(2).flatMap((l) => [...denseLayer(l, { qkv: true }), { name: `blk.${l}.attn_q.lora_a`, shape: [E, 8, 2] }]),
      ...head(),
    ],
  });
  // command-r without output.weight: token_embd takes the output rules
  add({
    label: "command-r (tied embeddings)",
    arch: "command-r",
    kv: archKV("command-r", 2, { nHead: 4, nHeadKv: 4 }),
    tensors: [...embd(), ...range(2).flatMap((l) => denseLayer(l)), ...head(true)],
  });
  // a vision projector: no hyper-parameters at all (n_layer_all 0; llama.cpp aborts where a rule reads n_gqa)
  add({
    label: "clip mmproj (no hyper-parameters)",
    arch: "clip",
    kv: [strkv("general.architecture", "clip"), { key: "clip.has_vision_encoder", type: GGUFValueType.BOOL, value: true }, u32kv("clip.vision.block_count", 2), u32kv("clip.vision.embedding_length", E), u32kv("general.file_type", 1)],
    tensors: [
      W("v.patch_embd.weight", [14, 14, 3, E]),
      W("v.position_embd.weight", [E, 64]),
      ...range(2).flatMap((l) => ["attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down"].map((n) => W(`v.blk.${l}.${n}.weight`, [E, E]))),
      N("v.blk.0.ln1.weight"),
      W("mm.0.weight", [E, 512]),
      W("mm.2.weight", [512, E]),
    ],
  });
  // general.alignment 64, every tensor size a multiple of 64, and a name that makes the output
  // header (without imatrix keys) end on 64 bytes: llama.cpp's 32-byte layout is then a valid
  // 64-byte one; with the imatrix keys it is not, and hquant refuses
  const tensors = [...embd(), ...range(2).flatMap((l) => denseLayer(l)), ...head()];
  for (let pad = 0; ; pad++) {
    const kv = archKV("llama", 2, { nHead: 4, nHeadKv: 2, extra: [u32kv("llama.rope.dimension_count", 64), u32kv("general.alignment", 64)] });
    kv[1] = strkv("general.name", `hquant test llama aligned${"-".repeat(pad)}`);
    const placed = tensors.map((t) => ({ ...t, type: t.type ?? GGMLType.F16, offset: 0 }));
    const outputHeader = encodeHeader([...kv, u32kv("general.quantization_version", 2)], placed, 1).length;
    if (Math.ceil(outputHeader / 32) % 2 === 0) {
      add({ label: "llama with general.alignment 64", arch: "llama", kv: kv.filter((e) => e.key !== "general.alignment"), tensors, alignment: 64 });
      break;
    }
  }
  return out;
}

export interface RefusedInput extends ArchModel {
  /** the one-line error hquant gives */
  error: string;
  /** llama.cpp aborts the process rather than returning an error */
  llamaAborts?: boolean;
}

const llamaLayers = (n: number) => [...embd(), ...range(n).flatMap((l) => denseLayer(l)), ...head()];
export const without = (kv: GGUFKV[], key: string) => kv.filter((e) => e.key !== key);

/** Inputs llama.cpp refuses (returns an error or aborts), with hquant's line for each. */
export function refusedInputs(): RefusedInput[] {
  const llama = (extra: GGUFKV[] = []) => archKV("llama", 2, { nHead: 4, nHeadKv: 2, extra });
  const moe = (extra: GGUFKV[]) => archKV("qwen3moe", 2, { nHead: 4, nHeadKv: 2, extra });
  const moeLayers = (n: number) => [...embd(), ...range(n).flatMap((l) => [...denseLayer(l).filter((t) => !/ffn_(gate|up|down)\./.test(t.name)), ...moeFfn(l, 4, 64)]), ...head()];
  return [
    { label: "unknown architecture", arch: "nosucharch", kv: archKV("nosucharch", 2, { nHead: 4 }), tensors: llamaLayers(2), error: "unknown model architecture 'nosucharch' (llama.cpp has no such architecture)" },
    { label: "architecture without a model (gptj)", arch: "gptj", kv: archKV("gptj", 2, { nHead: 4 }), tensors: llamaLayers(2), error: "unsupported model architecture 'gptj' (llama.cpp has no model for it)" },
    { label: "missing context_length", arch: "llama", kv: without(llama(), "llama.context_length"), tensors: llamaLayers(2), error: "key not found in model: llama.context_length (llama.cpp needs it to load the model)" },
    { label: "missing block_count", arch: "llama", kv: without(llama(), "llama.block_count"), tensors: llamaLayers(2), error: "key not found in model: llama.block_count (llama.cpp needs it to load the model)" },
    {
      label: "missing an architecture's required key (layer_norm_rms_epsilon)",
      arch: "llama",
      kv: without(llama(), "llama.attention.layer_norm_rms_epsilon"),
      tensors: llamaLayers(2),
      error: "key not found in model: llama.attention.layer_norm_rms_epsilon (llama.cpp needs it to load the model)",
    },
    {
      label: "missing deepseek2's kv_lora_rank",
      arch: "deepseek2",
      kv: without(archKV("deepseek2", 2, { nHead: 4, extra: [u32kv("deepseek2.attention.q_lora_rank", 64)] }), "deepseek2.attention.kv_lora_rank"),
      tensors: llamaLayers(2),
      error: "key not found in model: deepseek2.attention.kv_lora_rank (llama.cpp needs it to load the model)",
    },
    {
      label: "invalid rope dimensions",
      arch: "llama",
      kv: llama([u32kv("llama.rope.dimension_count", 32)]),
      tensors: llamaLayers(2),
      error: "invalid rope dimensions: llama.rope.dimension_count is 32, llama.cpp expects the head size 64",
    },
    {
      label: "expert_used_count > expert_count",
      arch: "qwen3moe",
      kv: moe([u32kv("qwen3moe.expert_count", 4), u32kv("qwen3moe.expert_used_count", 5)]),
      tensors: moeLayers(2),
      error: "qwen3moe.expert_used_count 5 is larger than expert_count 4 (llama.cpp aborts)",
      llamaAborts: true,
    },
    {
      label: "expert tensors of a layer past block_count (ffn_down)",
      arch: "qwen3moe",
      kv: moe([u32kv("qwen3moe.expert_count", 4), u32kv("qwen3moe.expert_used_count", 2)]),
      tensors: [...moeLayers(2), ...moeFfn(2, 4, 64)],
      error: "blk.2.ffn_down_exps.weight: bad layer 2, must be in [0, 2)",
    },
    {
      label: "expert tensors of a layer past block_count (ffn_gate only)",
      arch: "qwen3moe",
      kv: moe([u32kv("qwen3moe.expert_count", 4), u32kv("qwen3moe.expert_used_count", 2)]),
      tensors: [...moeLayers(2), W("blk.2.ffn_gate_exps.weight", [E, 64, 4])],
      error: "blk.2.ffn_gate_exps.weight: bad layer 2, must be in [0, 2)",
    },
    {
      label: "block_count 0",
      arch: "llama",
      kv: [...without(llama(), "llama.block_count"), u32kv("llama.block_count", 0)],
      tensors: llamaLayers(0),
      error: "llama.block_count 0 is not in 1..512 (llama.cpp aborts)",
      llamaAborts: true,
    },
    {
      label: "unknown rope scaling type",
      arch: "llama",
      kv: llama([strkv("llama.rope.scaling.type", "spiral")]),
      tensors: llamaLayers(2),
      error: 'llama.rope.scaling.type "spiral" is not one of none, linear, yarn, longrope (llama.cpp aborts)',
      llamaAborts: true,
    },
    {
      label: "nextn_predict_layers > block_count",
      arch: "llama",
      kv: llama([u32kv("llama.nextn_predict_layers", 3)]),
      tensors: llamaLayers(2),
      error: "llama.nextn_predict_layers 3 is larger than block_count 2 (llama.cpp aborts)",
      llamaAborts: true,
    },
  ];
}

export async function writeArchModel(m: ArchModel, dir: string, index: number): Promise<string> {
  const slug = m.label.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  return makeCustomModel({ fileName: `${index}-${slug}.gguf`, dir, kv: m.kv, tensors: m.tensors, seed: 100 + index, alignment: m.alignment });
}

/** llama-quantize's per-tensor options, given to both tools */
export interface RunOptions {
  pure?: boolean;
  tokenEmbeddingType?: string;
  outputTensorType?: string;
  tensorTypes?: [pattern: string, type: string][];
}

/** The main options on top of a file type: --pure, the embedding/output types, --tensor-type (std::regex patterns). */
export const OPTION_RUNS: { ftype: FileTypeName; options: RunOptions }[] = [
  { ftype: "Q4_K_M", options: { pure: true } },
  { ftype: "Q3_K_M", options: { tokenEmbeddingType: "q8_0", outputTensorType: "q5_K" } },
  { ftype: "Q5_K_M", options: { tensorTypes: [["[[:digit:]]\\.ffn_(up|down)", "q8_0"], ["attn_(k|v|kv_b)", "q4_0"], ["(?!blk)[[:alpha:]_]+\\.weight$", "q5_0"]] } },
];

export function resolvedOptions(o: RunOptions) {
  const where = "test option";
  return {
    ...(o.pure && { pure: true }),
    ...(o.tokenEmbeddingType && { tokenEmbeddingType: parseTargetType(o.tokenEmbeddingType, where) }),
    ...(o.outputTensorType && { outputTensorType: parseTargetType(o.outputTensorType, where) }),
    ...(o.tensorTypes && { tensorTypes: o.tensorTypes.map(([pattern, type]) => ({ pattern, type: parseTargetType(type, where) })) }),
  };
}
