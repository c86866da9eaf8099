// The imatrix's per-element work in WebAssembly (kernels/imatrix.ts): the sums of squared
// activations. One instance per collection, of the module the quantization kernels compiled;
// activations are copied into its memory (a memcpy) and worked on four columns at a time with
// llama-imatrix's f32 operations, so the results are the bits the JavaScript loops gave. (The
// log-probabilities behind the printed perplexity run on the evaluator's threads: eval/vocab-math.ts.)
import { kernelModule } from "../quant/kernels.js";
import type { NativeBytes } from "../runtime/memcpy.js";

interface ImatrixExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  accumulateSquares(acc: number, x: number, pairs: number, npairs: number, ncols: number): number;
}

const align = (n: number) => (n + 63) & ~63;

export class ImatrixKernels {
  private readonly k: ImatrixExports;

  constructor() {
    this.k = new WebAssembly.Instance(kernelModule(), { env: { abort: () => { throw new Error("kernel abort"); } } }).exports as unknown as ImatrixExports;
  }

  /** Linear memory for `bytes` past the heap base; returns the base. */
  private reserve(bytes: number): number {
    const base = align(this.k.heapBase());
    const have = this.k.memory.buffer.byteLength;
    if (base + bytes > have) this.k.memory.grow(Math.ceil((base + bytes - have) / 65536));
    return base;
  }

  /**
   * For each pair p in order: acc[pairs[2p+1] + j] += x[pairs[2p] + j]² for j < ncols (offsets in
   * floats). Returns false when an accumulator row touched is no longer finite.
   */
  accumulateSquares(acc: Float32Array, x: NativeBytes, pairs: Int32Array, ncols: number): boolean {
    const accBytes = align(acc.length * 4);
    const xBytes = align(x.byteLength);
    const base = this.reserve(accBytes + xBytes + pairs.length * 4);
    const buf = this.k.memory.buffer;
    new Float32Array(buf, base, acc.length).set(acc);
    x.copyTo(new Uint8Array(buf, base + accBytes, x.byteLength));
    new Int32Array(buf, base + accBytes + xBytes, pairs.length).set(pairs);
    const bad = this.k.accumulateSquares(base, base + accBytes, base + accBytes + xBytes, pairs.length / 2, ncols);
    acc.set(new Float32Array(buf, base, acc.length));
    return bad === 0;
  }
}
