// llama.cpp's own GGUF parser (gguf_init_from_file in the prebuilt libggml-base.so) as an oracle:
// the header bytes it would write back (gguf_get_meta_data), or null when it rejects the file.
import { createRequire } from "node:module";
import path from "node:path";
import { LLAMA_BINS } from "./ggml.js";

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const koffi = require("koffi") as typeof import("koffi");

type Fn = (...args: unknown[]) => unknown;
let api: { init: Fn; free: Fn; metaSize: Fn; metaData: Fn; nTensors: Fn } | undefined;

function gguf() {
  if (!api) {
    const lib = koffi.load(path.join(LLAMA_BINS, "libggml-base.so"));
    const params = koffi.struct("hquant_gguf_init_params", { no_alloc: "bool", ctx: "void *" });
    api = {
      init: lib.func("void *gguf_init_from_file(const char *fname, hquant_gguf_init_params params)") as unknown as Fn,
      free: lib.func("void gguf_free(void *ctx)") as unknown as Fn,
      metaSize: lib.func("size_t gguf_get_meta_size(void *ctx)") as unknown as Fn,
      metaData: lib.func("void gguf_get_meta_data(void *ctx, _Out_ uint8_t *data)") as unknown as Fn,
      nTensors: lib.func("int64_t gguf_get_n_tensors(void *ctx)") as unknown as Fn,
    };
    void params;
  }
  return api;
}

/** llama.cpp's re-serialized header of `file` (what gguf_write_to_file writes before the data), or null if it rejects the file. */
export function llamaGgufMeta(file: string): Uint8Array | null {
  const g = gguf();
  const ctx = g.init(file, { no_alloc: true, ctx: null });
  if (ctx === null) return null;
  try {
    const size = Number(g.metaSize(ctx));
    const out = new Uint8Array(size);
    g.metaData(ctx, out);
    return out;
  } finally {
    g.free(ctx);
  }
}
