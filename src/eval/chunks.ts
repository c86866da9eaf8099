// How llama-perplexity cuts a text into evaluation chunks (perplexity() in perplexity.cpp): the
// text is tokenized once (with BOS when the vocabulary adds one), cut into ⌊n_tokens/ctx⌋ chunks of
// ctx tokens, each chunk's first token is replaced by BOS, and only the second half is scored: the
// logits at positions first … ctx−2 (first = ctx/2) predict the tokens at first+1 … ctx−1.
import { UserError } from "../errors.js";

export interface ChunkPlan {
  ctx: number;
  /** chunks evaluated */
  nChunk: number;
  /** first scored position (logits at first … ctx−2 are scored) */
  first: number;
  /** scored positions per chunk: ctx − 1 − first */
  scoredPerChunk: number;
}

/** The chunking of `nTokens` tokens at context `ctx`, bounded by `maxChunks` (all chunks when undefined). */
export function planChunks(nTokens: number, ctx: number, maxChunks: number | undefined, textName: string): ChunkPlan {
  if (!Number.isInteger(ctx) || ctx < 4) throw new UserError(`--ctx must be an integer ≥ 4 (got ${ctx})`);
  if (maxChunks !== undefined && (!Number.isInteger(maxChunks) || maxChunks < 1)) {
    throw new UserError(`--chunks must be a positive integer (got ${maxChunks})`);
  }
  if (nTokens < 2 * ctx) {
    throw new UserError(`${textName}: tokenizes to only ${nTokens} tokens; a context of ${ctx} needs at least ${2 * ctx}`);
  }
  const nChunkMax = Math.floor(nTokens / ctx);
  const nChunk = maxChunks === undefined ? nChunkMax : Math.min(maxChunks, nChunkMax);
  const first = Math.floor(ctx / 2);
  return { ctx, nChunk, first, scoredPerChunk: ctx - 1 - first };
}

/** The tokens fed for chunk `index`: ctx tokens of the text, the first replaced by BOS when the model adds BOS. */
export function chunkInput(tokens: ArrayLike<number>, plan: ChunkPlan, index: number, bos: number | null): number[] {
  const start = index * plan.ctx;
  const input = Array.from({ length: plan.ctx }, (_, k) => tokens[start + k]);
  if (bos !== null) input[0] = bos;
  return input;
}

/** The token predicted at scored slot `j` of chunk `index` (the text's token, never the BOS substitute). */
export function scoredTarget(tokens: ArrayLike<number>, plan: ChunkPlan, index: number, j: number): number {
  return tokens[index * plan.ctx + plan.first + j + 1];
}
