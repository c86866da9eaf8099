// --tensor-type patterns are std::regex (ECMAScript, libstdc++) in llama.cpp: hquant must select
// the same tensors, and refuse what llama.cpp refuses. Checked against llama_model_quantize itself
// (each pattern as an override on a small model: the same tensor types, or both refuse), and the
// translation's refusals and messages one by one.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readHeaderAt } from "../src/gguf/reader.js";
import { typeName } from "../src/gguf/ggml-types.js";
import { planModel } from "../src/plan/planner.js";
import { parseTargetType, uniformSchedule } from "../src/plan/schedule.js";
import { translateStdRegex } from "../src/plan/std-regex.js";
import { UserError } from "../src/errors.js";
import { archFamilies, writeArchModel } from "./arch-models.js";
import { llamaQuantizeIsolated } from "./oracle/llama-isolated.js";
import { oracleReadHeader } from "./oracle/llama.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-regex-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Patterns where the dialects differ, and ordinary ones (all lower-case: llama-quantize lower-cases them). */
const PATTERNS = [
  "attn_(q|k)",
  "blk\\.[[:digit:]]+\\.ffn_down",
  "^blk\\.(1|0)\\.attn_[[:alpha:]]\\.",
  "[[:punct:]]out",
  "[^[:digit:]]\\.weight$",
  "[[:alnum:]_]+_norm",
  "[[:xdigit:]]{2}",
  "ffn_(up|gate)(?=\\.)",
  "attn_(?!output)",
  "a**",
  "(?:ffn){1,}?_up",
  "\\bblk",
  "\\d\\.attn_v",
  "\\x61ttn_q",
  "\\u0066fn",
  "\\qtoken",
  "]",
  "}",
  "output\\.",
  "[a-c-e]ttn",
  "[--z]",
  // refused by std::regex (and so by hquant), accepted by JavaScript
  "(?<=blk\\.0\\.)attn_q",
  "(?<!blk\\.0\\.)attn_q",
  "(?<name>attn)_q",
  "attn_q{",
  "attn_q{,2}",
  "{2}attn",
  "(?i)attn",
  "[[:foo:]]",
  "[[:digit:]-z]",
  "[\\d-z]",
  "\\x4",
  "\\u41",
  "\\1",
  "(?=attn)*",
  "[[:",
  "attn\\",
];

describe("--tensor-type patterns against llama_model_quantize", () => {
  it(`${PATTERNS.length} patterns select the same tensors as std::regex, or both refuse`, async () => {
    const llama = archFamilies().find((f) => f.label.startsWith("mixtral"))!;
    const model = await writeArchModel(llama, tmp, 0);
    const header = await readHeaderAt(model);
    const jobs = PATTERNS.map((pattern, i) => ({
      input: model,
      output: path.join(tmp, `re-${i}.gguf`),
      opts: { ftype: "Q4_0", threads: 1, tensorTypes: [[pattern, "q5_1"]] as [string, string][] },
    }));
    const reference = await llamaQuantizeIsolated(jobs);
    const got: string[] = [];
    const want: string[] = [];
    let selecting = 0;
    for (const [i, pattern] of PATTERNS.entries()) {
      const r = reference[i]!;
      expect(r.status, `${pattern}: llama.cpp must not abort`).not.toBe("aborted");
      want.push(`${pattern}: ${r.status === "ok" ? selection(oracleReadHeader(jobs[i]!.output).tensors.map((t) => [t.name, typeName(t.type)])) : "refused"}`);
      try {
        const plan = planModel(header, uniformSchedule("Q4_0", 2, { tensorTypes: [{ pattern, type: parseTargetType("q5_1", "t") }] }));
        const types = plan.tensors.map((t): [string, string] => [t.name, typeName(t.dstType)]);
        if (types.some(([, type]) => type === "q5_1")) selecting++;
        got.push(`${pattern}: ${selection(types)}`);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        got.push(`${pattern}: refused`);
      }
    }
    expect(got).toEqual(want);
    expect(selecting).toBeGreaterThan(10);
  });
});

/** The tensors a pattern turned into q5_1 (a type no Q4_0 rule picks), compactly. */
function selection(types: [string, string][]): string {
  return types.filter(([, t]) => t === "q5_1").map(([n]) => n).join(",") || "(none)";
}

describe("translation of std::regex ECMAScript", () => {
  const where = "--tensor-type P";
  const refused = (pattern: string) => {
    try {
      translateStdRegex(pattern, where);
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };

  it("POSIX classes become ASCII sets; everything else keeps its meaning", () => {
    expect(translateStdRegex("blk\\.[[:digit:]]+", where)).toBe("blk\\x2e[0-9]+");
    expect(translateStdRegex("[^[:alpha:][:digit:]_]", where)).toBe("[^A-Za-z0-9_]");
    expect(translateStdRegex("[[:DIGIT:]]", where)).toBe("[0-9]");
    expect(translateStdRegex("a**", where)).toBe("(?:a*)*");
    expect(translateStdRegex("x{2}?|(?!y)\\w", where)).toBe("x{2}?|(?!y)\\w");
    expect(translateStdRegex("\\qa\\-", where)).toBe("qa\\x2d");
  });

  it("refuses with one line what libstdc++ refuses, and the documented subset", () => {
    expect(refused("(?<=a)b")).toBe(`${where}: bad regular expression "(?<=a)b" (lookbehind '(?<=' at position 0 (std::regex has none))`);
    expect(refused("(?<n>a)")).toBe(`${where}: bad regular expression "(?<n>a)" (named group at position 0 (std::regex has none))`);
    expect(refused("a{,2}")).toBe(`${where}: bad regular expression "a{,2}" ('{' at position 1 does not start a repetition {n}, {n,} or {n,m})`);
    expect(refused("a{3,2}")).toBe(`${where}: bad regular expression "a{3,2}" (repetition {3,2} has max < min)`);
    expect(refused("[[:foo:]]")).toBe(`${where}: bad regular expression "[[:foo:]]" (unknown character class [:foo:])`);
    expect(refused("[z-a]")).toBe(`${where}: bad regular expression "[z-a]" (range z-a is out of order)`);
    expect(refused("^*")).toBe(`${where}: bad regular expression "^*" (nothing to repeat before '*' at position 1)`);
    expect(refused("(a")).toBe(`${where}: bad regular expression "(a" (missing ')' at position 2)`);
    expect(refused("a)")).toBe(`${where}: bad regular expression "a)" (unmatched ')' at position 1)`);
    // the subset: accepted by libstdc++, refused here
    expect(refused("[[.a.]]")).toBe(`${where}: bad regular expression "[[.a.]]" ('[.' at position 1: collating elements and equivalence classes are not supported)`);
    expect(refused("(a)\\1")).toBe(`${where}: bad regular expression "(a)\\\\1" (backreference \\1 at position 3 is not supported)`);
    expect(refused("\\ca")).toBe(`${where}: bad regular expression "\\\\ca" (\\c at position 0 is not supported)`);
    expect(refused("blk\u00e9")).toBe(`${where}: bad regular expression "blk\u00e9" (only ASCII patterns are supported)`);
  });
});
