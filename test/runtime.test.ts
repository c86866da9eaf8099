// src/runtime: finding the platform's llama.cpp, the context parameters as llama.cpp reads them back
// (the blob offsets against the library itself), and one-line errors. The raw logits against the
// independent oracle, per token, are in test/eval-perplexity.test.ts.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LlamaModel, locateLlamaLibrary } from "../src/runtime/index.js";

const MODEL = "models/tinyllama-16l-f16.gguf";

describe("llama.cpp runtime", () => {
  it("finds the platform package's libraries through module resolution", () => {
    const loc = locateLlamaLibrary();
    expect(loc.packageName).toBe(`@node-llama-cpp/${process.platform}-${process.arch}`);
    expect(path.basename(loc.llama)).toBe("libllama.v0.4.0.so");
    expect(path.basename(loc.ggml)).toBe("libggml.v0.4.0.so");
    expect(loc.binsDir.endsWith(path.join("bins", "linux-x64"))).toBe(true);
  });

  it("names the supported platforms when there is no prebuilt library", () => {
    expect(() => locateLlamaLibrary("freebsd-x64")).toThrow(
      "no prebuilt llama.cpp for freebsd-x64: hquant's evaluator supports linux-x64, linux-arm64, darwin-arm64, darwin-x64, win32-x64, win32-arm64",
    );
  });

  it("takes a llama.cpp build of one's own from HQUANT_LLAMA_DIR, and names the variable when it holds none", () => {
    const shipped = locateLlamaLibrary();
    try {
      process.env.HQUANT_LLAMA_DIR = shipped.binsDir;
      expect(locateLlamaLibrary()).toEqual({ packageName: shipped.binsDir, backend: "cpu", binsDir: shipped.binsDir, llama: shipped.llama, ggml: shipped.ggml, ggmlBase: shipped.ggmlBase });
      process.env.HQUANT_LLAMA_DIR = "test/fixtures";
      expect(() => locateLlamaLibrary()).toThrow("HQUANT_LLAMA_DIR=test/fixtures: no libllama / libggml / libggml-base there");
    } finally {
      delete process.env.HQUANT_LLAMA_DIR;
    }
  });

  it("pins a CPU variant with HQUANT_GGML_CPU, and names the variable when the variant does not exist", () => {
    const load = (variant: string) =>
      spawnSync(process.execPath, ["--input-type=module", "-e", "const m = await import('./dist/runtime/library.js'); try { m.llamaApi(); console.log('loaded'); } catch (e) { console.log(e.message); }"], {
        encoding: "utf8",
        env: { ...process.env, HQUANT_GGML_CPU: variant },
      }).stdout.trim();
    expect(load("x64")).toBe("loaded");
    const binsDir = locateLlamaLibrary().binsDir;
    expect(load("nosuch")).toMatch(new RegExp(`^HQUANT_GGML_CPU=nosuch: no such CPU variant in ${binsDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(there: .*haswell.*\\)$`));
  });

  it("bounds OpenMP's spinning (GOMP_SPINCOUNT) before llama.cpp loads, unless the user set a wait policy or a spin count", () => {
    const env = (extra: Record<string, string>) => {
      const { OMP_WAIT_POLICY: _p, GOMP_SPINCOUNT: _s, ...base } = process.env;
      const code = "const m = await import('./dist/runtime/library.js'); m.llamaApi(); console.log(JSON.stringify([process.env.OMP_WAIT_POLICY ?? null, process.env.GOMP_SPINCOUNT ?? null]))";
      return JSON.parse(spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", env: { ...base, ...extra } }).stdout.trim());
    };
    expect(env({})).toEqual([null, "30000"]);
    expect(env({ OMP_WAIT_POLICY: "ACTIVE" })).toEqual(["ACTIVE", null]);
    expect(env({ GOMP_SPINCOUNT: "5" })).toEqual([null, "5"]);
  });

  it("creates llama-perplexity's context: llama.cpp reads back every size hquant wrote into the params blob", () => {
    const model = LlamaModel.load(MODEL);
    try {
      expect(model.nVocab).toBe(4096);
      expect(model.bos).toBe(1);
      for (const [ctx, nSeq, threads] of [[256, 8, 2], [512, 4, 1], [4096, 1, 3]]) {
        const c = model.createContext({ ctx, nSeq, threads });
        try {
          expect(c.settings()).toEqual({ nCtx: ctx * nSeq, nBatch: ctx * nSeq, nUbatch: 512, nSeqMax: nSeq, nThreads: threads, nThreadsBatch: threads });
        } finally {
          c.dispose();
        }
      }
    } finally {
      model.dispose();
    }
  });

  it("tokenizes as common_tokenize(add_special): BOS first, the same on a libuv thread", async () => {
    const model = LlamaModel.load(MODEL);
    try {
      const text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
      const tokens = model.tokenize(text);
      expect(tokens[0]).toBe(1);
      expect(tokens.length).toBeGreaterThan(100);
      expect(Array.from(await model.tokenizeAsync(text))).toEqual(Array.from(tokens));
      expect(Array.from(model.tokenize(""))).toEqual([1]);
    } finally {
      model.dispose();
    }
  });

  it("rejects a file llama.cpp cannot load with one line naming it", () => {
    const file = "test/fixtures/eval-test.txt";
    let message = "";
    try {
      LlamaModel.load(file);
    } catch (err) {
      message = (err as Error).message;
      expect((err as Error).name).toBe("UserError");
    }
    expect(message.startsWith(`${file}: llama.cpp cannot load this model (`)).toBe(true);
    expect(message.split("\n")).toHaveLength(1);
  });

  it("loads without repacked weights when asked (llama_model_params.use_extra_bufts): a Q4_K model then decodes through the other kernel", () => {
    // The CPU backend repacks Q4_K weights for its 8×8 GEMM, which sums in another order than the
    // vector dot product: the logits differ in the last bits, while each way is deterministic.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-repack-"));
    try {
      const q4 = path.join(dir, "q4_k_m.gguf");
      expect(spawnSync(process.execPath, ["bin/hquant.js", "build", MODEL, q4, "Q4_K_M", "--quiet"], { encoding: "utf8" }).status).toBe(0);
      const lastLogits = (repack?: boolean) => {
        const model = LlamaModel.load(q4, undefined, repack === undefined ? undefined : { repack });
        try {
          const tokens = model.tokenize("The quick brown fox jumps over the lazy dog.");
          const ctx = model.createContext({ ctx: tokens.length, nSeq: 1, threads: 2 });
          try {
            ctx.decode([tokens], 0);
            return Array.from(ctx.logitsView(0, tokens.length - 1));
          } finally {
            ctx.dispose();
          }
        } finally {
          model.dispose();
        }
      };
      const repacked = lastLogits();
      expect(lastLogits(true)).toEqual(repacked);
      const plain = lastLogits(false);
      expect(lastLogits(false)).toEqual(plain);
      expect(plain).not.toEqual(repacked);
      const top = (l: number[]) => l.indexOf(Math.max(...l));
      expect(top(plain)).toBe(top(repacked));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
