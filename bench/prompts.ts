// Where the time of `hquant bench --prompts` goes: the prompt suite's greedy generation (one
// context for every prompt, the KV cache kept between tokens: one llama_decode of one token per new
// token), in this process so that its CPU time is counted, at 1 thread and at --threads,
// interleaved A/B. ggml's CPU threads meet at a spinning barrier after every op of the graph; on a
// busy machine a descheduled thread makes the others spin out their time slices, which is what a
// one-token decode of a small model pays. The continuations must be the same at every thread count.
//
//   npx tsx bench/prompts.ts [--model models/tinyllama-16l-f16.gguf] [--threads 2] [--tokens 16] [--reps 2]
// (quiet: a few seconds)
import { execSync } from "node:child_process";
import { parseArgs } from "node:util";
import { BatchContext } from "../src/runtime/batch.js";
import { LlamaModel } from "../src/runtime/index.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "models/tinyllama-16l-f16.gguf" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "16" },
    reps: { type: "string", default: "2" },
  },
});
const PROMPTS = ["Call me", "The whale", "Stubb and Flask", "CHAPTER 1. Loomings."];
const tokens = Number(values.tokens);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

console.log(`uptime: ${execSync("uptime").toString().trim()}`);
const model = LlamaModel.load(values.model!);
const outputs = new Map<number, string[]>();
const rows: string[] = ["| threads | rep | CPU s | wall s | CPU ms / token |", "|---:|---:|---:|---:|---:|"];
try {
  for (let rep = 1; rep <= Number(values.reps); rep++) {
    for (const threads of [1, Number(values.threads)]) {
      const ctx = BatchContext.create(model, { nCtx: 256, nSeq: 1, nBatch: 256, threads });
      try {
        const c0 = cpu();
        const t0 = performance.now();
        let generated = 0;
        const texts = PROMPTS.map((p) => {
          const r = ctx.generateGreedy(Array.from(model.tokenize(p)), tokens);
          generated += r.tokens.length;
          return r.text;
        });
        const c = cpu() - c0;
        rows.push(`| ${threads} | ${rep} | ${c.toFixed(2)} | ${((performance.now() - t0) / 1000).toFixed(2)} | ${((1000 * c) / generated).toFixed(2)} |`);
        const seen = outputs.get(-1);
        if (seen && JSON.stringify(seen) !== JSON.stringify(texts)) throw new Error(`threads ${threads}: other continuations than before`);
        outputs.set(-1, texts);
      } finally {
        ctx.dispose();
      }
    }
  }
} finally {
  model.dispose();
}
console.log(`${PROMPTS.length} prompts × ${tokens} tokens, ${values.model}\n\n${rows.join("\n")}\n\ncontinuations equal at every thread count: ${JSON.stringify(outputs.get(-1))}`);
console.log(`uptime: ${execSync("uptime").toString().trim()}`);
