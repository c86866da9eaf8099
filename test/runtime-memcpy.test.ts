// memcpy out of native memory (src/runtime/memcpy.ts): what the imatrix callback, the evaluator's
// threads and the task logits read llama.cpp's buffers with instead of koffi.view.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { nativeMemcpy } from "../src/runtime/memcpy.js";

const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");

describe("nativeMemcpy", () => {
  it("copies exactly n bytes from an address into a typed array's window, WebAssembly memory included", () => {
    const copy = nativeMemcpy(koffi);
    const src = Float32Array.from({ length: 64 }, (_, i) => i * 1.5 - 7);
    const address = koffi.address(src) as bigint;
    // into the middle of a JS array: the bytes before and after stay as they were
    const dst = new Float32Array(80).fill(-1);
    copy(dst.subarray(8, 8 + 40), address + 16n, 4 * 40);
    expect(Array.from(dst.subarray(0, 8))).toEqual(new Array(8).fill(-1));
    expect(Array.from(dst.subarray(8, 48))).toEqual(Array.from(src.subarray(4, 44)));
    expect(Array.from(dst.subarray(48))).toEqual(new Array(32).fill(-1));
    // into a WebAssembly memory at an offset, as the kernels take their rows
    const memory = new WebAssembly.Memory({ initial: 1 });
    copy(new Uint8Array(memory.buffer, 1024, 4 * 64), address, 4 * 64);
    expect(Array.from(new Float32Array(memory.buffer, 1024, 64))).toEqual(Array.from(src));
    expect(new Uint8Array(memory.buffer, 1024 + 4 * 64, 64).every((b) => b === 0)).toBe(true);
  });

  it("binds once per koffi instance", () => {
    expect(nativeMemcpy(koffi)).toBe(nativeMemcpy(koffi));
  });
});
