// memcpy out of llama.cpp's memory (logits, graph tensors) into a JS or WebAssembly buffer: how the
// hot paths read it. A koffi.view of the memory is no copy, but V8 accounts the view's bytes as
// external memory and collects garbage for them: measured on this 2-core VM, a view of 3 MB cost
// 105 µs against 75 µs for memcpy, and a view of 4 bytes 2.2 µs against 0.1 µs.
type Koffi = typeof import("koffi");
export type NativeCopy = (dst: ArrayBufferView, src: bigint, bytes: number) => void;

const copies = new WeakMap<object, NativeCopy>();

/**
 * Bytes still in llama.cpp's memory, copied by `copyTo` straight into where they are worked on
 * (a kernel's WebAssembly memory), with no view of them in between.
 */
export interface NativeBytes {
  byteLength: number;
  copyTo(dst: Uint8Array): void;
}

/** The C library's memcpy through `koffi` (one binding per koffi instance: workers load their own). */
export function nativeMemcpy(koffi: Koffi): NativeCopy {
  let copy = copies.get(koffi);
  if (!copy) {
    // the process's own symbols hold the C library's memcpy; Windows has no such lookup
    const lib = koffi.load(process.platform === "win32" ? "msvcrt.dll" : null);
    copy = lib.func("void *memcpy(void *dst, const void *src, size_t n)") as unknown as NativeCopy;
    copies.set(koffi, copy);
  }
  return copy;
}
