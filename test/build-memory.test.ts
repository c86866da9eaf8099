// Bounded memory: chunk buffers are reused (BufferPool), and a build hands the same few buffers
// round and round between the reader, the workers and the writer.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildModel } from "../src/build/index.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { uniformSchedule } from "../src/plan/schedule.js";
import { BufferPool, POOLED_BUFFER_BYTES, QuantizePool } from "../src/pool/index.js";
import { MODEL } from "./build-util.js";
import { llamaQuantize } from "./oracle/llama.js";

describe("BufferPool", () => {
  it("hands a returned buffer out again, the smallest that fits", () => {
    const pool = new BufferPool(4);
    const small = pool.take(1000);
    expect(small.byteLength).toBe(POOLED_BUFFER_BYTES);
    const large = pool.take(POOLED_BUFFER_BYTES * 2);
    expect(large.byteLength).toBe(POOLED_BUFFER_BYTES * 2);
    pool.give(large);
    pool.give(small);
    expect(pool.take(10)).toBe(small);
    expect(pool.take(POOLED_BUFFER_BYTES + 1)).toBe(large);
    expect(pool.size).toBe(0);
  });

  it("ignores detached and small buffers, and keeps at most maxFree (the largest)", () => {
    const pool = new BufferPool(2);
    const detached = pool.take(1);
    structuredClone(detached, { transfer: [detached] });
    pool.give(detached);
    pool.give(new ArrayBuffer(100));
    expect(pool.size).toBe(0);
    const sizes = [1, 3, 2].map((k) => new ArrayBuffer(POOLED_BUFFER_BYTES * k));
    for (const b of sizes) pool.give(b);
    pool.give(sizes[1]!); // already free: not twice
    expect(pool.size).toBe(2);
    expect(pool.take(1)).toBe(sizes[2]);
    expect(pool.take(1)).toBe(sizes[1]);
  });
});

describe("build with reused buffers", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-memory-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("writes llama.cpp's bytes with one thread (main thread only) and with three", async () => {
    const ref = path.join(tmp, "ref.gguf");
    llamaQuantize(MODEL, ref, { ftype: "Q4_K_S", threads: 2 });
    for (const threads of [1, 3]) {
      const pool = new QuantizePool(threads);
      try {
        const out = path.join(tmp, `t${threads}.gguf`);
        await buildModel({ input: MODEL, output: out, pool, schedule: (m) => uniformSchedule("Q4_K_S", mixtureHParams(m.kv).nLayer) });
        expect(fs.readFileSync(out).equals(fs.readFileSync(ref)), `${threads} thread(s)`).toBe(true);
      } finally {
        await pool.destroy();
      }
    }
  });
});
