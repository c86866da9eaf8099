// The prompt suite of `hquant bench --prompts`: a JSON list of prompts, each greedy-decoded with
// llama.cpp's greedy sampler; a prompt passes when its continuation contains every expected
// substring (and none of the forbidden ones).
import { UserError } from "../../errors.js";
import type { BatchContext } from "../../runtime/batch.js";

export interface PromptCase {
  prompt: string;
  /** substrings the continuation must contain */
  expect: string[];
  /** substrings it must not contain */
  reject?: string[];
  /** new tokens at most (default 32) */
  maxTokens?: number;
}

export interface PromptResult {
  prompt: string;
  output: string;
  pass: boolean;
  /** expected substrings missing, forbidden ones present */
  missing: string[];
  present: string[];
}

export interface PromptSuiteScore {
  passed: number;
  total: number;
  results: PromptResult[];
}

export const DEFAULT_PROMPT_TOKENS = 32;

const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");

/** Checks the suite's JSON: one line naming the file and the entry at fault. */
export function parsePromptSuite(text: string, file: string): PromptCase[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not JSON (${(err as Error).message.split("\n")[0]})`);
  }
  if (!Array.isArray(data) || data.length === 0) throw new UserError(`${file}: must be a non-empty JSON list of {"prompt", "expect": [...]} entries`);
  return data.map((e, i) => {
    const where = `${file}: entry ${i + 1}`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw new UserError(`${where}: must be an object {"prompt", "expect": [...]}`);
    const o = e as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => !["prompt", "expect", "reject", "maxTokens"].includes(k));
    if (unknown.length) throw new UserError(`${where}: unknown field ${JSON.stringify(unknown[0])} (prompt, expect, reject, maxTokens)`);
    if (typeof o.prompt !== "string" || o.prompt === "") throw new UserError(`${where}: "prompt" must be a non-empty string`);
    if (!strings(o.expect) || (o.expect as string[]).length === 0) throw new UserError(`${where}: "expect" must be a non-empty list of strings`);
    if (o.reject !== undefined && !strings(o.reject)) throw new UserError(`${where}: "reject" must be a list of strings`);
    if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && (o.maxTokens as number) > 0 && (o.maxTokens as number) <= 4096)) throw new UserError(`${where}: "maxTokens" must be an integer 1…4096`);
    return { prompt: o.prompt, expect: o.expect as string[], reject: o.reject as string[] | undefined, maxTokens: o.maxTokens as number | undefined };
  });
}

export function runPromptSuite(context: BatchContext, tokenize: (text: string) => number[], cases: PromptCase[]): PromptSuiteScore {
  const results = cases.map((c) => {
    const { text } = context.generateGreedy(tokenize(c.prompt), c.maxTokens ?? DEFAULT_PROMPT_TOKENS);
    const missing = c.expect.filter((s) => !text.includes(s));
    const present = (c.reject ?? []).filter((s) => text.includes(s));
    return { prompt: c.prompt, output: text, pass: missing.length === 0 && present.length === 0, missing, present };
  });
  return { passed: results.filter((r) => r.pass).length, total: results.length, results };
}
