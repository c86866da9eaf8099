// A fetch that serves a file from memory with HTTP range semantics (206 + Content-Range), for
// giving @huggingface/gguf the bytes an http source would see.
/** A fetch serving `bytes` (zeros past them, up to `size`) with HTTP range semantics. */
export function memoryFetch(bytes: Uint8Array, size: number): typeof fetch {
  return (async (_url: unknown, init?: RequestInit) => {
    const range = new Headers(init?.headers).get("range");
    const m = /bytes=(\d+)-(\d+)?/.exec(range ?? "");
    const start = m ? Number(m[1]) : 0;
    const end = Math.min(size - 1, m?.[2] !== undefined ? Number(m[2]) : size - 1);
    if (start >= size) return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    const body = new Uint8Array(end - start + 1);
    body.set(bytes.subarray(start, Math.min(bytes.length, end + 1)));
    return new Response(body, { status: 206, headers: { "content-range": `bytes ${start}-${end}/${size}`, "content-length": String(body.length) } });
  }) as typeof fetch;
}
