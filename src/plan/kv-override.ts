// llama-quantize's --override-kv KEY=TYPE:VALUE (common's string_parse_kv_override, applied by
// llama_model_quantize_impl): int → u32 of |value|, float → f32, bool → true/false, str → at most
// 127 bytes. Set like gguf_set_val_*: an existing key is removed and the new one appended.
import { UserError } from "../errors.js";
import { GGUFValueType, type GGUFKV } from "../gguf/model.js";

/** llama_model_kv_override.key is char[128] */
const MAX_KEY_BYTES = 127;
const MAX_STR_BYTES = 127;

export function parseKvOverride(arg: string): GGUFKV {
  const where = `--override-kv ${arg}`;
  const eq = arg.indexOf("=");
  if (eq <= 0 || Buffer.byteLength(arg.slice(0, eq)) > MAX_KEY_BYTES) throw new UserError(`${where}: expected KEY=TYPE:VALUE (TYPE int, float, bool or str)`);
  const key = arg.slice(0, eq);
  const rest = arg.slice(eq + 1);
  const colon = rest.indexOf(":");
  const type = colon < 0 ? rest : rest.slice(0, colon);
  const value = colon < 0 ? "" : rest.slice(colon + 1);
  switch (colon < 0 ? "" : type) {
    case "int": {
      if (!/^\s*[-+]?\d+/.test(value)) throw new UserError(`${where}: ${JSON.stringify(value)} is not an integer`);
      const n = Math.abs(parseInt(value, 10));
      if (n > 0xffffffff) throw new UserError(`${where}: ${value} does not fit the u32 llama-quantize writes`);
      return { key, type: GGUFValueType.UINT32, value: n };
    }
    case "float": {
      const f = Number.parseFloat(value);
      if (!Number.isFinite(f)) throw new UserError(`${where}: ${JSON.stringify(value)} is not a number`);
      return { key, type: GGUFValueType.FLOAT32, value: Math.fround(f) };
    }
    case "bool":
      if (value !== "true" && value !== "false") throw new UserError(`${where}: a bool is true or false`);
      return { key, type: GGUFValueType.BOOL, value: value === "true" };
    case "str":
      if (Buffer.byteLength(value) > MAX_STR_BYTES) throw new UserError(`${where}: the value cannot exceed ${MAX_STR_BYTES} bytes`);
      return { key, type: GGUFValueType.STRING, value };
    default:
      throw new UserError(`${where}: unknown type ${JSON.stringify(type)}; valid: int, float, bool, str`);
  }
}
