// The graph-evaluation callback (llama_context_params.cb_eval, ggml_backend_sched_eval_callback)
// and the ggml tensors it hands over: hquant imatrix reads every matrix multiplication's inputs
// here. ggml asks first (`ask` = true: "do you want this node's data?"), computes the graph up to a
// node that was wanted, then calls again with `ask` = false; returning false then stops the graph.
// struct ggml_tensor is read at its offsets in ggml/include/ggml.h of llama.cpp 80fb11a (LP64).
import { llamaApi, type LlamaApi } from "./library.js";

/** (tensor address, ask) → want it / go on. Runs on the thread that called llama_decode. */
export type EvalCallback = (tensor: bigint, ask: boolean) => boolean;

const T = { type: 0, buffer: 8, ne: 16, nb: 48, op: 80, src: 152, data: 248, name: 256, bytes: 336 } as const;
const GGML_MAX_NAME = 64;
/** enum ggml_type: GGML_TYPE_F32 */
export const GGML_F32 = 0;

export interface GraphTensor {
  /** the ggml_tensor's address */
  address: bigint;
  /** its ggml_backend_buffer (0n: none) */
  buffer: bigint;
  type: number;
  ne: [number, number, number, number];
  nb: [number, number, number, number];
  /** ggml_op_name of the op: "MUL_MAT", "MUL_MAT_ID", … */
  op: string;
  /** src[0], src[1], src[2] (0n when absent) */
  src: [bigint, bigint, bigint];
  data: bigint;
  name: string;
}

type OpName = (op: number) => string;
let opName: OpName | undefined;
const opNames: string[] = [];
const decoder = new TextDecoder();

function opNameOf(api: LlamaApi, op: number): string {
  opName ??= api.koffi.load(api.location.ggmlBase).func("const char *ggml_op_name(int op)") as unknown as OpName;
  return (opNames[op] ??= opName(op));
}

/** A koffi-registered C function pointer for cb_eval; unregister() when its context is freed. */
let evalProto: ReturnType<LlamaApi["koffi"]["proto"]> | undefined;

export function registerEvalCallback(onEval: EvalCallback): { pointer: bigint; unregister(): void } {
  const api = llamaApi();
  const proto = (evalProto ??= api.koffi.proto("bool hq_ggml_eval_cb(void *t, bool ask, void *user)"));
  const pointer = api.koffi.register((t: bigint, ask: boolean) => onEval(t, ask), api.koffi.pointer(proto));
  return { pointer, unregister: () => api.koffi.unregister(pointer) };
}

/** The op of the ggml_tensor at `t` alone: what the callback's `ask` needs for most nodes. */
export function readOp(t: bigint): string {
  const api = llamaApi();
  return opNameOf(api, api.koffi.decode(t + BigInt(T.op), "int32") as number);
}

// the struct is copied into this buffer: the callback runs on one thread, and readTensor keeps nothing of it
const header = new Uint8Array(T.bytes);
const headerView = new DataView(header.buffer);

/** The fields of the ggml_tensor at `t` that the callback needs. */
export function readTensor(t: bigint): GraphTensor {
  const api = llamaApi();
  api.memcpy(header, t, T.bytes);
  const dv = headerView;
  const i64 = (at: number) => Number(dv.getBigInt64(at, true));
  const name = header.subarray(T.name, T.name + GGML_MAX_NAME);
  const end = name.indexOf(0);
  return {
    address: t,
    buffer: dv.getBigUint64(T.buffer, true),
    type: dv.getInt32(T.type, true),
    ne: [i64(T.ne), i64(T.ne + 8), i64(T.ne + 16), i64(T.ne + 24)],
    nb: [i64(T.nb), i64(T.nb + 8), i64(T.nb + 16), i64(T.nb + 24)],
    op: opNameOf(api, dv.getInt32(T.op, true)),
    src: [dv.getBigUint64(T.src, true), dv.getBigUint64(T.src + 8, true), dv.getBigUint64(T.src + 16, true)],
    data: dv.getBigUint64(T.data, true),
    name: decoder.decode(name.subarray(0, end < 0 ? GGML_MAX_NAME : end)),
  };
}

/** ggml_nbytes of a tensor of 1-element blocks (f32, i32): the end of its last element. */
export function tensorByteLength(t: GraphTensor): number {
  let n = t.nb[0] * t.ne[0];
  for (let i = 1; i < 4; i++) n += (t.ne[i] - 1) * t.nb[i];
  return n;
}

/**
 * Copies the tensor's bytes (tensorByteLength of them) into `dst`: llama.cpp's memcpy out of a host
 * buffer, ggml_backend_tensor_get out of GPU memory (as llama-imatrix does).
 */
export function copyTensor(t: GraphTensor, dst: Uint8Array): void {
  const api = llamaApi();
  const bytes = tensorByteLength(t);
  if (dst.byteLength < bytes) throw new Error(`${t.name}: ${bytes} bytes into a buffer of ${dst.byteLength}`);
  if (t.buffer === 0n || (api.bufferIsHost(t.buffer) as boolean)) api.memcpy(dst, t.data, bytes);
  else api.tensorGet(t.address, dst, 0, bytes);
}

/** A copy of the tensor's bytes. */
export function tensorBytesView(t: GraphTensor): DataView {
  const copy = new Uint8Array(tensorByteLength(t));
  copyTensor(t, copy);
  return new DataView(copy.buffer);
}
