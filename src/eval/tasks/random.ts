// The random task selection of llama-perplexity, draw for draw: std::mt19937 seeded with 1, and the
// two ways it turns draws into indices (libstdc++'s uniform_int_distribution for --hellaswag; a float
// scale for --winogrande and --multiple-choice). Hand-written: a generator that must match the C++
// standard library's output bit for bit is 40 lines, and no npm package promises libstdc++'s
// distribution algorithm.

/** std::mt19937 (32-bit Mersenne Twister, MT19937 with the standard tempering). */
export class Mt19937 {
  private readonly mt = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      // 1812433253 · prev mod 2^32, in two 16-bit halves to stay exact
      this.mt[i] = (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
    }
  }

  /** The next 32-bit draw. */
  next(): number {
    const mt = this.mt;
    if (this.index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/**
 * std::uniform_int_distribution<size_t>(0, n − 1)(rng) as libstdc++ (GCC ≥ 11) computes it for a
 * 32-bit generator: Lemire's multiply-and-reject on 64-bit products.
 */
export function uniformIndex(rng: Mt19937, n: number): number {
  const range = BigInt(n);
  const mask32 = 0xffffffffn;
  let product = BigInt(rng.next()) * range;
  let low = product & mask32;
  if (low < range) {
    const threshold = ((1n << 32n) - range) % range;
    while (low < threshold) {
      product = BigInt(rng.next()) * range;
      low = product & mask32;
    }
  }
  return Number(product >> 32n);
}

/** int(scale · rng() · n) in float arithmetic, scale = 1/(1 + 2^32 − 1) (winogrande and multiple-choice selection). */
export function floatIndex(rng: Mt19937, n: number): number {
  const scale = Math.fround(1 / Math.fround(1 + Math.fround(4294967295)));
  return Math.trunc(Math.fround(Math.fround(scale * Math.fround(rng.next())) * Math.fround(n)));
}
