// The build's pipeline loop, shared by buildModel, buildModels and writePreparedTensors: a bounded
// number of pieces in flight (read and being quantized), their results handed on strictly in
// order. Memory is bounded by the window whatever the model size; the window is refilled before
// each result is consumed, so the workers never wait on a write.

/** A unit of work: started when it enters the window, its result consumed in order. */
export interface InOrderPiece {
  start(): Promise<unknown>;
}

type ResultOf<P extends InOrderPiece> = Awaited<ReturnType<P["start"]>>;

/**
 * Starts `work`'s pieces, at most `maxInFlight` at once, and calls `consume` with each one's
 * result in the order `work` yields them. On an error or abort every started piece settles first
 * (the caller may then tear down what they use), and the error is thrown.
 */
export async function runInOrder<P extends InOrderPiece>(
  work: Iterator<P>,
  maxInFlight: number,
  consume: (piece: P, result: ResultOf<P>) => Promise<void> | void,
  signal?: AbortSignal,
): Promise<void> {
  const inFlight: { piece: P; result: Promise<ResultOf<P>> }[] = [];
  const fill = () => {
    while (inFlight.length < maxInFlight) {
      const next = work.next();
      if (next.done) return;
      const result = next.value.start() as Promise<ResultOf<P>>;
      result.catch(() => undefined); // awaited in order below; keeps an early failure from being "unhandled"
      inFlight.push({ piece: next.value, result });
    }
  };
  try {
    fill();
    while (inFlight.length > 0) {
      signal?.throwIfAborted();
      const { piece, result } = inFlight.shift()!;
      const value = await result;
      fill();
      await consume(piece, value);
    }
  } finally {
    await Promise.allSettled(inFlight.map((f) => f.result));
  }
}
