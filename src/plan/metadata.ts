// The output's metadata, as llama_model_quantize_impl builds it: every input key in order
// (gguf_set_kv), then general.quantization_version and general.file_type set with
// gguf_set_val_u32 — which removes an existing key and appends it, so both move to the end —
// the split keys removed, then the kv overrides llama-quantize adds for an importance matrix
// (quantize.imatrix.*, tools/quantize/quantize.cpp). hquant's own keys (hquant.*) come last, so
// that without them the metadata is exactly llama.cpp's.
import { typeName } from "../gguf/ggml-types.js";
import { GGUFValueType, type GGUFKV } from "../gguf/model.js";
import type { TensorSpec } from "../gguf/writer.js";
import type { Plan } from "./planner.js";
import { layerTypeNames, usedMixtures } from "./summary.js";
import { describeMixture } from "./schedule.js";

/** GGML_QNT_VERSION */
export const QUANTIZATION_VERSION = 2;
const SPLIT_KEYS = ["split.no", "split.count", "split.tensors.count"];
/** llama_model_kv_override.val_str is char[128]: llama-quantize keeps the first 127 bytes. */
const KV_OVERRIDE_MAX_STR_BYTES = 127;

export interface ImatrixInfo {
  /** the path as the user gave it (llama-quantize records argv as is) */
  file: string;
  /** datasets named in the imatrix (llama-quantize records the first) */
  datasets: string[];
  /** number of entries used */
  entries: number;
  /** chunks the imatrix was computed on (recorded only when > 0) */
  chunks: number;
}

export interface OutputMetadataOptions {
  imatrix?: ImatrixInfo;
  /** record the schedule under hquant.* (off to get llama.cpp's metadata exactly) */
  hquant?: { version: string } | false;
  /** --override-kv entries, set after the split keys are removed and before quantize.imatrix.* */
  overrides?: readonly GGUFKV[];
}

const u32 = (key: string, value: number): GGUFKV => ({ key, type: GGUFValueType.UINT32, value });
const str = (key: string, value: string): GGUFKV => ({ key, type: GGUFValueType.STRING, value });
const strArray = (key: string, value: string[]): GGUFKV => ({
  key,
  type: GGUFValueType.ARRAY,
  arrayType: GGUFValueType.STRING,
  value,
});

/** Remove `key` and append the new entry: gguf_set_val_* semantics. */
function setKV(kv: GGUFKV[], entry: GGUFKV): void {
  const at = kv.findIndex((e) => e.key === entry.key);
  if (at >= 0) kv.splice(at, 1);
  kv.push(entry);
}

function truncateUtf8(s: string, maxBytes: number): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= maxBytes) return s;
  let end = maxBytes;
  // never cut a character in two (llama.cpp would; such names are not expected)
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}

/** The hquant.* keys: how the file was made, for `hquant inspect`. */
export function hquantKeys(plan: Plan, version: string): GGUFKV[] {
  const s = plan.schedule;
  const kv: GGUFKV[] = [
    str("hquant.version", version),
    str("hquant.schedule.name", s.name),
    str("hquant.schedule.file_type", s.ftype),
    strArray("hquant.schedule.layer_file_types", [...s.layerFtypes]),
  ];
  // custom mixtures: the layers' names and the definitions (layer_file_types holds their bases)
  if (s.layerMixtures) {
    kv.push(strArray("hquant.schedule.layer_types", layerTypeNames(s)));
    kv.push(strArray("hquant.schedule.mixtures", usedMixtures(s).map(describeMixture)));
  }
  if (s.tokenEmbeddingType !== undefined) kv.push(str("hquant.schedule.token_embedding_type", typeName(s.tokenEmbeddingType)));
  if (s.outputTensorType !== undefined) kv.push(str("hquant.schedule.output_tensor_type", typeName(s.outputTensorType)));
  if (s.tensorTypes.length > 0) {
    kv.push(strArray("hquant.schedule.tensor_types", s.tensorTypes.map((o) => `${o.pattern}=${typeName(o.type)}`)));
  }
  if (s.leaveOutputTensor) kv.push({ key: "hquant.schedule.leave_output_tensor", type: GGUFValueType.BOOL, value: true });
  if (s.pure) kv.push({ key: "hquant.schedule.pure", type: GGUFValueType.BOOL, value: true });
  if (plan.surgery) kv.push(str("hquant.surgery", JSON.stringify(plan.surgery.ops)));
  return kv;
}

/** With layer surgery the metadata starts from the surgered keys (block_count, per-layer arrays). */
export function outputMetadata(inputKv: readonly GGUFKV[], plan: Plan, options: OutputMetadataOptions = {}): GGUFKV[] {
  const kv = (plan.surgery?.kv ?? inputKv).map((e) => ({ ...e }));
  setKV(kv, u32("general.quantization_version", QUANTIZATION_VERSION));
  setKV(kv, u32("general.file_type", plan.fileType.id));
  for (const key of SPLIT_KEYS) {
    const at = kv.findIndex((e) => e.key === key);
    if (at >= 0) kv.splice(at, 1);
  }
  for (const o of options.overrides ?? []) setKV(kv, { ...o });
  const im = options.imatrix;
  if (im) {
    setKV(kv, str("quantize.imatrix.file", truncateUtf8(im.file, KV_OVERRIDE_MAX_STR_BYTES)));
    if (im.datasets.length > 0) setKV(kv, str("quantize.imatrix.dataset", truncateUtf8(im.datasets[0]!, KV_OVERRIDE_MAX_STR_BYTES)));
    setKV(kv, u32("quantize.imatrix.entries_count", im.entries));
    if (im.chunks > 0) setKV(kv, u32("quantize.imatrix.chunks_count", im.chunks));
  }
  if (options.hquant) for (const e of hquantKeys(plan, options.hquant.version)) setKV(kv, e);
  return kv;
}

/** The output's tensor infos, in output order. */
export function outputTensors(plan: Plan): TensorSpec[] {
  return plan.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.dstType }));
}
