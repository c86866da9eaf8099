// Synthetic models of the architecture families whose loader changes one of llama.cpp's mixture
// rules in a way test/arch-models.ts does not reach (LLM_TYPE_70B set by other loaders than llama's,
// the 8-expert rules on a non-llama MoE, n_gqa ≥ 4 outside llama, tied sliding-window models), and
// the inputs whose required hyper-parameters depend on other keys (deepseek2's q_lora_rank unless it
// is a "lite" model, ernie4_5-moe's expert keys, a sliding window that needs its pattern) or that
// llama.cpp refuses for a key of the wrong type. Every key is spelled out here (skipRequired), so
// the models do not change when the generated table of src/plan/arch-facts.ts does.
import { GGUFValueType, type GGUFKV } from "../src/gguf/model.js";
import { denseLayer, E, embd, head, moeFfn, N, range, W, archKV, without, type ArchModel, type RefusedInput } from "./arch-models.js";
import { f32kv, u32kv, type CustomTensor } from "./factory.js";

const rmsEps = (arch: string) => f32kv(`${arch}.attention.layer_norm_rms_epsilon`, 1e-5);
const normEps = (arch: string) => f32kv(`${arch}.attention.layer_norm_epsilon`, 1e-5);
const i32kv = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.INT32, value });

/** 80 (or 68) tiny layers: head dim 32, rows of 64 where a k-quant falls back. */
function deepStack(n: number): CustomTensor[] {
  return [...embd(), ...range(n).flatMap((l) => denseLayer(l, { nFf: 64, qDim: 64, kvDim: 64 })), ...head()];
}

/** attn_q, MLA kv_a / kv_b, attn_output and a dense FFN (deepseek2 without experts). */
function mlaLayer(l: number): CustomTensor[] {
  const b = `blk.${l}`;
  return [
    N(`${b}.attn_norm.weight`),
    W(`${b}.attn_q.weight`, [E, 256]),
    W(`${b}.attn_kv_a_mqa.weight`, [E, 96]),
    N(`${b}.attn_kv_a_norm.weight`, 64),
    W(`${b}.attn_kv_b.weight`, [64, 256]),
    W(`${b}.attn_output.weight`, [256, E]),
    N(`${b}.ffn_norm.weight`),
    W(`${b}.ffn_gate.weight`, [E, 256]),
    W(`${b}.ffn_up.weight`, [E, 256]),
    W(`${b}.ffn_down.weight`, [256, E]),
  ];
}

const deepseek2KV = (nLayer: number, extra: GGUFKV[] = []) =>
  archKV("deepseek2", nLayer, {
    nHead: 4,
    skipRequired: true,
    extra: [rmsEps("deepseek2"), u32kv("deepseek2.attention.kv_lora_rank", 64), u32kv("deepseek2.expert_feed_forward_length", 64), u32kv("deepseek2.expert_shared_count", 0), ...extra],
  });

const ernieMoeKV = (extra: GGUFKV[] = []) =>
  archKV("ernie4_5-moe", 2, {
    nHead: 4,
    nHeadKv: 2,
    skipRequired: true,
    extra: [rmsEps("ernie4_5-moe"), u32kv("ernie4_5-moe.expert_count", 4), u32kv("ernie4_5-moe.expert_used_count", 2), ...extra],
  });
const ernieMoeLayers = (): CustomTensor[] => [
  ...embd(),
  ...range(2).flatMap((l) => [...denseLayer(l).filter((t) => !/ffn_(gate|up|down)\./.test(t.name)), ...moeFfn(l, 4, 64)]),
  ...head(),
];

const mellumKV = (extra: GGUFKV[]) =>
  archKV("mellum", 2, { nHead: 4, nHeadKv: 2, skipRequired: true, extra: [rmsEps("mellum"), u32kv("mellum.expert_feed_forward_length", 64), ...extra] });
const smallLlama = (): CustomTensor[] => [...embd(), ...range(2).flatMap((l) => denseLayer(l)), ...head()];
const llamaKV = (extra: GGUFKV[] = []) => archKV("llama", 2, { nHead: 4, nHeadKv: 2, skipRequired: true, extra: [rmsEps("llama"), ...extra] });

/** The families checked against llama_model_quantize in test/arch-rules.test.ts (goldens and bytes). */
export function ruleFamilies(): ArchModel[] {
  return [
    // qwen2's loader says LLM_TYPE_70B at 80 layers with no GQA condition (llama's would say 65B)
    { label: "qwen2 80 layers MHA (70B class)", arch: "qwen2", kv: archKV("qwen2", 80, { nHead: 8, nHeadKv: 8, skipRequired: true, extra: [rmsEps("qwen2")] }), tensors: deepStack(80) },
    // llama-embed has llama's loader (a subclass): 70B at 80 layers with GQA
    {
      label: "llama-embed 80 layers GQA (llama's loader, 70B class)",
      arch: "llama-embed",
      kv: archKV("llama-embed", 80, { nHead: 8, nHeadKv: 2, skipRequired: true, extra: [rmsEps("llama-embed"), u32kv("llama-embed.rope.dimension_count", 32)] }),
      tensors: deepStack(80),
    },
    { label: "olmo 80 layers (70B class)", arch: "olmo", kv: archKV("olmo", 80, { nHead: 8, nHeadKv: 8, skipRequired: true, extra: [normEps("olmo")] }), tensors: deepStack(80) },
    { label: "jais2 68 layers (70B class at 68)", arch: "jais2", kv: archKV("jais2", 68, { nHead: 8, nHeadKv: 8, skipRequired: true, extra: [normEps("jais2")] }), tensors: deepStack(68) },
    // n_expert == 8 on another architecture than llama, with shared experts
    {
      label: "qwen2moe 8 experts, shared expert",
      arch: "qwen2moe",
      kv: archKV("qwen2moe", 2, { nHead: 4, nHeadKv: 2, skipRequired: true, extra: [rmsEps("qwen2moe"), u32kv("qwen2moe.expert_count", 8), u32kv("qwen2moe.expert_used_count", 2)] }),
      tensors: [...embd(), ...range(2).flatMap((l) => [...denseLayer(l).filter((t) => !/ffn_(gate|up|down)\./.test(t.name)), ...moeFfn(l, 8, 64, true)]), ...head()],
    },
    // n_gqa 4 (the Q2_K / Q2_K_S / IQ4 attn_v rules), q/k norms, post norms, sliding window, tied embeddings
    {
      label: "gemma3 GQA 4, sliding window, tied",
      arch: "gemma3",
      kv: archKV("gemma3", 2, { nHead: 8, nHeadKv: 2, skipRequired: true, extra: [rmsEps("gemma3"), u32kv("gemma3.attention.sliding_window", 128)] }),
      tensors: [
        ...embd(),
        ...range(2).flatMap((l) => [
          ...denseLayer(l, { qDim: 256, kvDim: 64 }),
          N(`blk.${l}.attn_q_norm.weight`, 32),
          N(`blk.${l}.attn_k_norm.weight`, 32),
          N(`blk.${l}.post_attention_norm.weight`),
          N(`blk.${l}.post_ffw_norm.weight`),
        ]),
        ...head(true),
      ],
    },
    {
      label: "olmo2 (q/k norms, post norms)",
      arch: "olmo2",
      kv: archKV("olmo2", 2, { nHead: 4, nHeadKv: 4, skipRequired: true, extra: [rmsEps("olmo2")] }),
      tensors: [
        ...embd(),
        ...range(2).flatMap((l) => [
          ...denseLayer(l, { kvDim: 128 }).filter((t) => !t.name.endsWith("attn_norm.weight") && !t.name.endsWith("ffn_norm.weight")),
          N(`blk.${l}.attn_q_norm.weight`, 128),
          N(`blk.${l}.attn_k_norm.weight`, 128),
          N(`blk.${l}.post_attention_norm.weight`),
          N(`blk.${l}.post_ffw_norm.weight`),
        ]),
        ...head(),
      ],
    },
    // no gate, biases everywhere (kept: not weights), GQA 2
    {
      label: "starcoder2 (no gate, biases)",
      arch: "starcoder2",
      kv: archKV("starcoder2", 3, { nHead: 4, nHeadKv: 2, skipRequired: true, extra: [normEps("starcoder2")] }),
      tensors: [
        ...embd(),
        ...range(3).flatMap((l) => [
          ...denseLayer(l, { gate: false }),
          ...["attn_q", "attn_output", "ffn_down"].map((n) => N(`blk.${l}.${n}.bias`)),
          N(`blk.${l}.attn_k.bias`, 64),
          N(`blk.${l}.attn_v.bias`, 64),
          N(`blk.${l}.ffn_up.bias`),
          N(`blk.${l}.attn_norm.bias`),
        ]),
        ...head(),
        N("output_norm.bias"),
      ],
    },
    // a "lite" deepseek2 (26 layers): no q_lora_rank needed, plain attn_q, attn_kv_b counted as attn_v
    { label: "deepseek2 lite (26 layers, no q_lora_rank)", arch: "deepseek2", kv: deepseek2KV(26), tensors: [...embd(), ...range(26).flatMap(mlaLayer), ...head()] },
    // ernie4_5-moe: the expert keys ernie4_5's loader reads only for the MoE architecture
    {
      label: "ernie4_5-moe (expert keys present)",
      arch: "ernie4_5-moe",
      kv: ernieMoeKV([u32kv("ernie4_5-moe.expert_feed_forward_length", 64), u32kv("ernie4_5-moe.interleave_moe_layer_step", 1)]),
      tensors: ernieMoeLayers(),
    },
    // a sliding window with its pattern given as a period
    { label: "mellum sliding window with pattern", arch: "mellum", kv: mellumKV([u32kv("mellum.attention.sliding_window", 128), u32kv("mellum.attention.sliding_window_pattern", 2)]), tensors: smallLlama() },
  ];
}

/** Inputs whose required keys depend on other keys, or with a key of the wrong type: llama.cpp refuses each. */
export function ruleRefusedInputs(): RefusedInput[] {
  return [
    {
      label: "deepseek2 not lite (2 layers) without q_lora_rank",
      arch: "deepseek2",
      kv: deepseek2KV(2),
      tensors: [...embd(), ...range(2).flatMap(mlaLayer), ...head()],
      error: "key not found in model: deepseek2.attention.q_lora_rank (llama.cpp needs it to load the model)",
    },
    {
      label: "ernie4_5-moe without expert_feed_forward_length",
      arch: "ernie4_5-moe",
      kv: ernieMoeKV([u32kv("ernie4_5-moe.interleave_moe_layer_step", 1)]),
      tensors: ernieMoeLayers(),
      error: "key not found in model: ernie4_5-moe.expert_feed_forward_length (llama.cpp needs it to load the model)",
    },
    {
      label: "ernie4_5-moe without interleave_moe_layer_step",
      arch: "ernie4_5-moe",
      kv: ernieMoeKV([u32kv("ernie4_5-moe.expert_feed_forward_length", 64)]),
      tensors: ernieMoeLayers(),
      error: "key not found in model: ernie4_5-moe.interleave_moe_layer_step (llama.cpp needs it to load the model)",
    },
    {
      label: "mellum sliding window without its pattern",
      arch: "mellum",
      kv: mellumKV([u32kv("mellum.attention.sliding_window", 128)]),
      tensors: smallLlama(),
      error: "key not found in model: mellum.attention.sliding_window_pattern (llama.cpp needs it to load the model)",
    },
    // what a loader throws or asserts on its keys' values (the generated `refusals`)
    {
      label: "cohere2moe with neither norm epsilon",
      arch: "cohere2moe",
      kv: archKV("cohere2moe", 2, {
        nHead: 4,
        nHeadKv: 2,
        skipRequired: true,
        extra: [u32kv("cohere2moe.attention.sliding_window", 128), f32kv("cohere2moe.logit_scale", 1), u32kv("cohere2moe.leading_dense_block_count", 0), u32kv("cohere2moe.expert_feed_forward_length", 64), u32kv("cohere2moe.attention.sliding_window_pattern", 4)],
      }),
      tensors: smallLlama(),
      error: "cohere2moe: missing Cohere2 MoE norm epsilon (llama.cpp refuses the model)",
    },
    {
      label: "minimax-m3 indexer block size 0",
      arch: "minimax-m3",
      kv: archKV("minimax-m3", 2, {
        nHead: 4,
        nHeadKv: 2,
        skipRequired: true,
        extra: [
          rmsEps("minimax-m3"),
          u32kv("minimax-m3.expert_feed_forward_length", 64),
          u32kv("minimax-m3.expert_shared_count", 0),
          u32kv("minimax-m3.expert_gating_func", 2),
          ...["head_count", "key_length", "top_k", "local_blocks"].map((k) => u32kv(`minimax-m3.attention.indexer.${k}`, 4)),
          u32kv("minimax-m3.attention.indexer.block_size", 0),
        ],
      }),
      tensors: smallLlama(),
      error: "minimax-m3: GGML_ASSERT(hparams.indexer_block_size > 0) failed (llama.cpp aborts)",
      llamaAborts: true,
    },
    {
      label: "context_length of type i32",
      arch: "llama",
      kv: [...without(llamaKV(), "llama.context_length"), i32kv("llama.context_length", 256)],
      tensors: smallLlama(),
      error: "key llama.context_length has type i32, llama.cpp expects u32",
    },
    {
      label: "optional rope.freq_base of type u32",
      arch: "llama",
      kv: llamaKV([u32kv("llama.rope.freq_base", 10000)]),
      tensors: smallLlama(),
      error: "key llama.rope.freq_base has type u32, llama.cpp expects f32",
    },
    {
      label: "layer_norm_rms_epsilon of type u32",
      arch: "llama",
      kv: [...without(llamaKV(), "llama.attention.layer_norm_rms_epsilon"), u32kv("llama.attention.layer_norm_rms_epsilon", 0)],
      tensors: smallLlama(),
      error: "key llama.attention.layer_norm_rms_epsilon has type u32, llama.cpp expects f32",
    },
    {
      label: "head_count array of the wrong length",
      arch: "llama",
      kv: [...without(llamaKV(), "llama.attention.head_count"), { key: "llama.attention.head_count", type: GGUFValueType.ARRAY, arrayType: GGUFValueType.UINT32, value: [4, 4, 4] }],
      tensors: smallLlama(),
      error: "key llama.attention.head_count has 3 values, llama.cpp expects 2",
    },
  ];
}
