// The ggml tensor types a GGUF file can carry: id, name, block size, bytes per block.
// Complete (every id llama.cpp v0.4.0 knows) so that any GGUF can be read, sized and copied,
// including types hquant cannot quantize to. Values match ggml_type_name/ggml_blck_size/
// ggml_type_size of the reference libggml-base (checked by test/ggml-types.test.ts).

export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
}

export interface GGMLTypeInfo {
  readonly id: GGMLType;
  /** ggml's own name (ggml_type_name): "q4_K", "iq4_xs", "bf16" … */
  readonly name: string;
  /** elements per block */
  readonly blockSize: number;
  /** bytes per block */
  readonly typeSize: number;
}

function t(id: GGMLType, name: string, blockSize: number, typeSize: number): GGMLTypeInfo {
  return { id, name, blockSize, typeSize };
}

export const GGML_TYPES: readonly GGMLTypeInfo[] = [
  t(GGMLType.F32, "f32", 1, 4),
  t(GGMLType.F16, "f16", 1, 2),
  t(GGMLType.Q4_0, "q4_0", 32, 18),
  t(GGMLType.Q4_1, "q4_1", 32, 20),
  t(GGMLType.Q5_0, "q5_0", 32, 22),
  t(GGMLType.Q5_1, "q5_1", 32, 24),
  t(GGMLType.Q8_0, "q8_0", 32, 34),
  t(GGMLType.Q8_1, "q8_1", 32, 36),
  t(GGMLType.Q2_K, "q2_K", 256, 84),
  t(GGMLType.Q3_K, "q3_K", 256, 110),
  t(GGMLType.Q4_K, "q4_K", 256, 144),
  t(GGMLType.Q5_K, "q5_K", 256, 176),
  t(GGMLType.Q6_K, "q6_K", 256, 210),
  t(GGMLType.Q8_K, "q8_K", 256, 292),
  t(GGMLType.IQ2_XXS, "iq2_xxs", 256, 66),
  t(GGMLType.IQ2_XS, "iq2_xs", 256, 74),
  t(GGMLType.IQ3_XXS, "iq3_xxs", 256, 98),
  t(GGMLType.IQ1_S, "iq1_s", 256, 50),
  t(GGMLType.IQ4_NL, "iq4_nl", 32, 18),
  t(GGMLType.IQ3_S, "iq3_s", 256, 110),
  t(GGMLType.IQ2_S, "iq2_s", 256, 82),
  t(GGMLType.IQ4_XS, "iq4_xs", 256, 136),
  t(GGMLType.I8, "i8", 1, 1),
  t(GGMLType.I16, "i16", 1, 2),
  t(GGMLType.I32, "i32", 1, 4),
  t(GGMLType.I64, "i64", 1, 8),
  t(GGMLType.F64, "f64", 1, 8),
  t(GGMLType.IQ1_M, "iq1_m", 256, 56),
  t(GGMLType.BF16, "bf16", 1, 2),
  t(GGMLType.TQ1_0, "tq1_0", 256, 54),
  t(GGMLType.TQ2_0, "tq2_0", 256, 66),
  t(GGMLType.MXFP4, "mxfp4", 32, 17),
  t(GGMLType.NVFP4, "nvfp4", 64, 36),
  t(GGMLType.Q1_0, "q1_0", 128, 18),
  t(GGMLType.Q2_0, "q2_0", 64, 18),
];

const BY_ID = new Map<number, GGMLTypeInfo>(GGML_TYPES.map((x) => [x.id, x]));
const BY_NAME = new Map<string, GGMLTypeInfo>(GGML_TYPES.map((x) => [x.name.toLowerCase(), x]));

/** Type info for a ggml type id, or undefined for ids no GGUF may carry (4, 5, 31–33, 36–38, ≥ 43). */
export function typeInfo(id: number): GGMLTypeInfo | undefined {
  return BY_ID.get(id);
}

/** Type info for an id that is known to be valid (throws otherwise: a programming error). */
export function mustTypeInfo(id: number): GGMLTypeInfo {
  const info = BY_ID.get(id);
  if (!info) throw new Error(`unknown ggml type id ${id}`);
  return info;
}

/** Case-insensitive lookup by ggml name ("q4_k", "Q4_K", "bf16"). */
export function typeByName(name: string): GGMLTypeInfo | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** ggml name of a type id ("q4_K"), or "type<N>" for an id outside the table. */
export function typeName(id: number): string {
  return BY_ID.get(id)?.name ?? `type${id}`;
}

/** Bytes of one row of `ncols` elements (ggml_row_size); ncols must be a multiple of the block size. */
export function rowSize(id: number, ncols: number): number {
  const info = mustTypeInfo(id);
  return (ncols / info.blockSize) * info.typeSize;
}

/** Bytes of a tensor of the given shape (ne[0] is the row length), as a bigint-safe number. */
export function tensorBytes(id: number, shape: readonly number[]): number {
  const info = mustTypeInfo(id);
  let n = 1;
  for (const d of shape) n *= d;
  return (n / info.blockSize) * info.typeSize;
}
