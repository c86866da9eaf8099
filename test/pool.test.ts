// The worker pool: chunks go to workers by transfer (the caller's buffer is detached afterwards),
// and what comes back are llama.cpp's bytes for that chunk (F16 source converted to f32 first).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { GGMLType, rowSize } from "../src/gguf/ggml-types.js";
import { QuantizePool, sharedQuantizePool, WORKER_PATH } from "../src/pool/index.js";
import { oracleDequantize, oracleQuantize } from "./oracle/ggml.js";

const pool = new QuantizePool(2);
afterAll(() => pool.destroy());

function seededF16Rows(nrows: number, ncols: number, seed: number): Uint8Array {
  // random f32 in a realistic weight range, rounded to f16 by the reference library
  let s = seed >>> 0;
  const f32 = new Float32Array(nrows * ncols);
  for (let i = 0; i < f32.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f32[i] = ((s / 2 ** 32) - 0.5) * 0.2;
  }
  return oracleQuantize(GGMLType.F16, f32, nrows, ncols);
}

describe("quantize pool", () => {
  it("loads the compiled worker", () => {
    expect(WORKER_PATH).toMatch(/dist\/pool\/worker\.js$/);
  });

  it("quantizes F16 chunks like llama.cpp, with and without importance, by transfer", async () => {
    const nrows = 64;
    const ncols = 512;
    const cases = [GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.IQ4_XS];
    const imatrix = new Float32Array(ncols).map((_, i) => 0.5 + (i % 7) / 3);
    await Promise.all(
      cases.flatMap((type, k) =>
        [null, imatrix].map(async (im) => {
          const f16 = seededF16Rows(nrows, ncols, 17 + k);
          const expected = oracleQuantize(type, oracleDequantize(GGMLType.F16, f16, nrows, ncols), nrows, ncols, im);
          const data = f16.slice().buffer;
          const result = await pool.run({ srcType: GGMLType.F16, dstType: type, nrows, ncols, data, imatrix: im });
          expect(data.byteLength, "source buffer was transferred").toBe(0);
          expect(result).toBeInstanceOf(ArrayBuffer);
          // the rows are quantized over the source: the same buffer comes back, result first
          expect((result as ArrayBuffer).byteLength, "source buffer handed back for reuse").toBe(f16.length);
          const bytes = new Uint8Array(result as ArrayBuffer, 0, rowSize(type, ncols) * nrows);
          expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
        }),
      ),
    );
  });

  it("returns a new buffer when a destination row is longer than a source row (F16 → F32)", async () => {
    const nrows = 8;
    const ncols = 256;
    const f16 = seededF16Rows(nrows, ncols, 5);
    const result = await pool.run({ srcType: GGMLType.F16, dstType: GGMLType.F32, nrows, ncols, data: f16.slice().buffer, imatrix: null });
    const expected = oracleDequantize(GGMLType.F16, f16, nrows, ncols);
    expect((result as ArrayBuffer).byteLength).toBe(nrows * ncols * 4);
    expect(Buffer.from(result as ArrayBuffer).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
  });

  it("reads only the chunk's rows from a larger (pooled) buffer", async () => {
    const nrows = 16;
    const ncols = 512;
    const f16 = seededF16Rows(nrows, ncols, 9);
    const big = new Uint8Array(1 << 20).fill(0x7c); // trailing bytes are f16 +Inf: must never be read
    big.set(f16);
    const expected = oracleQuantize(GGMLType.Q4_K, oracleDequantize(GGMLType.F16, f16, nrows, ncols), nrows, ncols);
    const result = await pool.run({ srcType: GGMLType.F16, dstType: GGMLType.Q4_K, nrows, ncols, data: big.buffer, imatrix: null });
    expect((result as ArrayBuffer).byteLength).toBe(1 << 20);
    expect(Buffer.from(result as ArrayBuffer, 0, expected.length).equals(Buffer.from(expected))).toBe(true);
  });

  it("with one thread, one worker quantizes everything: same bytes, the buffer moved", async () => {
    const single = new QuantizePool(1);
    try {
      const nrows = 32;
      const ncols = 256;
      const f16 = seededF16Rows(nrows, ncols, 23);
      const expected = oracleQuantize(GGMLType.Q5_K, oracleDequantize(GGMLType.F16, f16, nrows, ncols), nrows, ncols);
      const data = f16.slice().buffer;
      const result = await single.run({ srcType: GGMLType.F16, dstType: GGMLType.Q5_K, nrows, ncols, data, imatrix: null });
      expect(data.byteLength, "source buffer was moved").toBe(0);
      expect((result as ArrayBuffer).byteLength).toBe(f16.length);
      expect(Buffer.from(result as ArrayBuffer, 0, expected.length).equals(Buffer.from(expected))).toBe(true);
      const nan = new Float32Array(2 * 256).fill(1);
      nan[256 + 3] = Number.POSITIVE_INFINITY;
      expect(await single.run({ srcType: GGMLType.F32, dstType: GGMLType.Q8_0, nrows: 2, ncols: 256, data: nan.buffer, imatrix: null })).toEqual({ nonFiniteRow: 1 });
    } finally {
      await single.destroy();
    }
  });

  it("reports the first row holding NaN", async () => {
    const f32 = new Float32Array(4 * 256).fill(0.25);
    f32[2 * 256 + 5] = Number.NaN;
    const result = await pool.run({ srcType: GGMLType.F32, dstType: GGMLType.Q4_K, nrows: 4, ncols: 256, data: f32.buffer, imatrix: null });
    expect(result).toEqual({ nonFiniteRow: 2 });
  });

  it("passes a kernel's error back as an Error with its message, and keeps working", async () => {
    const f32 = new Float32Array(256).fill(0.5);
    await expect(pool.run({ srcType: GGMLType.F32, dstType: GGMLType.IQ2_XXS, nrows: 1, ncols: 256, data: f32.buffer, imatrix: null })).rejects.toThrow(
      "iq2_xxs needs an importance matrix: llama.cpp does not quantize it without one",
    );
    const ok = new Float32Array(256).fill(0.5);
    const expected = oracleQuantize(GGMLType.Q8_0, ok, 1, 256);
    const result = await pool.run({ srcType: GGMLType.F32, dstType: GGMLType.Q8_0, nrows: 1, ncols: 256, data: ok.slice().buffer, imatrix: null });
    expect(Buffer.from(result as ArrayBuffer, 0, expected.length).equals(Buffer.from(expected))).toBe(true);
  });

  it("rejects a task whose signal is aborted, whether it is waiting for a worker or not yet sent", async () => {
    const single = new QuantizePool(1);
    try {
      const chunk = () => ({ srcType: GGMLType.F16, dstType: GGMLType.Q4_K, nrows: 64, ncols: 512, data: seededF16Rows(64, 512, 3).buffer as ArrayBuffer, imatrix: null });
      const controller = new AbortController();
      // the one worker holds two tasks; the third waits in the pool until the abort removes it
      const sent = [single.run(chunk()), single.run(chunk())];
      const waiting = single.run(chunk(), controller.signal);
      controller.abort(new Error("stop"));
      await expect(waiting).rejects.toThrow("stop");
      await expect(single.run(chunk(), controller.signal)).rejects.toThrow("stop");
      for (const r of await Promise.all(sent)) expect(r).toBeInstanceOf(ArrayBuffer);
    } finally {
      await single.destroy();
    }
    await expect(single.run({ srcType: GGMLType.F32, dstType: GGMLType.Q8_0, nrows: 1, ncols: 32, data: new ArrayBuffer(128), imatrix: null })).rejects.toThrow("quantize pool destroyed");
  });

  it("rejects a running task at once when its signal is aborted, and keeps working", async () => {
    const single = new QuantizePool(1);
    try {
      const controller = new AbortController();
      const running = single.run({ srcType: GGMLType.F16, dstType: GGMLType.Q4_K, nrows: 64, ncols: 512, data: seededF16Rows(64, 512, 4).buffer as ArrayBuffer, imatrix: null }, controller.signal);
      controller.abort(new Error("stop now"));
      await expect(running).rejects.toThrow("stop now");
      const f16 = seededF16Rows(4, 256, 6);
      const expected = oracleQuantize(GGMLType.Q8_0, oracleDequantize(GGMLType.F16, f16, 4, 256), 4, 256);
      const result = await single.run({ srcType: GGMLType.F16, dstType: GGMLType.Q8_0, nrows: 4, ncols: 256, data: f16.slice().buffer, imatrix: null });
      expect(Buffer.from(result as ArrayBuffer, 0, expected.length).equals(Buffer.from(expected))).toBe(true);
    } finally {
      await single.destroy();
    }
  });

  it("turns a worker's death into a one-line error, and a fresh worker takes its place", async () => {
    const single = new QuantizePool(1);
    try {
      const big = () => ({ srcType: GGMLType.F16, dstType: GGMLType.IQ4_XS, nrows: 256, ncols: 2048, data: seededF16Rows(256, 2048, 8).buffer as ArrayBuffer, imatrix: null });
      const running = single.run(big());
      // the pool's piscina, reached only here: a worker killed from outside (as the OOM killer would)
      const { threads } = (single as unknown as { piscina: { threads: import("node:worker_threads").Worker[] } }).piscina;
      await new Promise((r) => setTimeout(r, 50));
      await threads[0]!.terminate();
      const err = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(/^a kernel thread died \(worker exited with code: \d+\)$/);
      const f16 = seededF16Rows(4, 256, 7);
      const expected = oracleQuantize(GGMLType.Q6_K, oracleDequantize(GGMLType.F16, f16, 4, 256), 4, 256);
      const result = await single.run({ srcType: GGMLType.F16, dstType: GGMLType.Q6_K, nrows: 4, ncols: 256, data: f16.slice().buffer, imatrix: null });
      expect(Buffer.from(result as ArrayBuffer, 0, expected.length).equals(Buffer.from(expected))).toBe(true);
    } finally {
      await single.destroy();
    }
  });

  it("shares one pool per size in a process until it is destroyed", async () => {
    const a = sharedQuantizePool(2);
    expect(sharedQuantizePool(2)).toBe(a);
    expect(sharedQuantizePool(1)).not.toBe(a);
    expect(a.threads).toBe(2);
    await sharedQuantizePool(1).destroy();
    await a.destroy();
    expect(sharedQuantizePool(2)).not.toBe(a);
    await sharedQuantizePool(2).destroy();
  });

  it("takes many tasks with one signal without Node's listener-leak warning", () => {
    const script = `
      const { QuantizePool } = await import(${JSON.stringify(path.resolve(WORKER_PATH, "../index.js"))});
      const pool = new QuantizePool(1);
      const signal = new AbortController().signal;
      const task = () => ({ srcType: 0, dstType: 8, nrows: 1, ncols: 32, data: new Float32Array(32).fill(1).buffer, imatrix: null });
      const results = await Promise.all(Array.from({ length: 24 }, () => pool.run(task(), signal)));
      await pool.destroy();
      console.log(results.length);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    expect({ code: r.status, stdout: r.stdout.trim(), stderr: r.stderr }).toEqual({ code: 0, stdout: "24", stderr: "" });
  });

  it("never keeps the process alive once idle (a shared pool is never destroyed)", () => {
    const script = `
      const { sharedQuantizePool } = await import(${JSON.stringify(path.resolve(WORKER_PATH, "../index.js"))});
      const r = await sharedQuantizePool(2).run({ srcType: 0, dstType: 8, nrows: 1, ncols: 32, data: new Float32Array(32).fill(1).buffer, imatrix: null });
      sharedQuantizePool(1); // started, never used
      console.log(r.byteLength);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    expect(r.error).toBeUndefined();
    expect({ code: r.status, stdout: r.stdout.trim(), stderr: r.stderr }).toEqual({ code: 0, stdout: "128", stderr: "" });
  });
});
