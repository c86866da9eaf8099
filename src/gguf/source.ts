// Where GGUF bytes come from: a local file (positioned reads) or an HTTP(S) URL (range requests).
// Readers only ever ask for bounded pieces, so a 70 GB model is never loaded whole, and a remote
// model can be planned from its header alone.
// Not @huggingface/gguf's range reader: it fetches 2 MB pieces with no timeout or cancellation of its own.
import { promises as fsp } from "node:fs";
import { UserError } from "../errors.js";

export interface ByteSource {
  /** the path or URL, for messages */
  readonly name: string;
  readonly size: number;
  /** exactly `length` bytes at `offset`; a read past the end is a UserError */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export function isUrl(pathOrUrl: string): boolean {
  return /^https?:\/\//i.test(pathOrUrl);
}

export async function openSource(pathOrUrl: string, opts: SourceOptions = {}): Promise<ByteSource> {
  return isUrl(pathOrUrl) ? openHttpSource(pathOrUrl, opts) : openFileSource(pathOrUrl);
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new Error(`${name}: invalid read range offset ${offset} length ${length}`);
  }
  if (offset + length > size) {
    throw new UserError(`${name}: unexpected end of file reading ${length} bytes at offset ${offset} (size ${size})`);
  }
}

const FS_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "is a directory, not a GGUF file",
  ENOTDIR: "no such file (a parent is not a directory)",
};

export async function openFileSource(path: string): Promise<ByteSource> {
  let handle: fsp.FileHandle;
  let size: number;
  try {
    handle = await fsp.open(path, "r");
  } catch (err) {
    throw fsError(path, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new UserError(`${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    await handle.close();
    throw err instanceof UserError ? err : fsError(path, err);
  }
  return {
    name: path,
    size,
    async read(offset, length) {
      checkRange(path, size, offset, length);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new UserError(`${path}: unexpected end of file reading ${length} bytes at offset ${offset} (file shrank?)`);
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      await handle.close();
    },
  };
}

function fsError(path: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException)?.code ?? "";
  const why = FS_ERRORS[code] ?? (err instanceof Error ? err.message : String(err));
  return new UserError(`${path}: ${why}`);
}

/** An in-memory source (tests, fuzzing). Bytes past `bytes.length` up to `size` read as zeros. */
export function memorySource(bytes: Uint8Array, name = "<memory>", size = bytes.length): ByteSource {
  return {
    name,
    size,
    async read(offset, length) {
      checkRange(name, size, offset, length);
      const out = new Uint8Array(length);
      if (offset < bytes.length) out.set(bytes.subarray(offset, Math.min(bytes.length, offset + length)));
      return out;
    },
    async close() {},
  };
}

function contentRangeTotal(header: string | null): number | undefined {
  const m = header ? /\/(\d+)\s*$/.exec(header) : null;
  return m ? Number(m[1]) : undefined;
}

/** How remote sources are read: a timeout for the answer and for each piece of the body, and cancellation. */
export interface SourceOptions {
  /** ms to wait for a connection and answer, and for each piece of a body (default 30 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;

/**
 * One HTTP request whose every wait is bounded: the answer (connect, headers) and then each piece
 * of the body must come within `timeoutMs`, else a one-line error; no body is read unless asked.
 */
class HttpRequest {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private readonly onAbort = () => this.controller.abort(this.opts.signal?.reason);

  constructor(
    private readonly url: string,
    private readonly opts: SourceOptions,
  ) {
    opts.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.timeoutMs);
  }

  private failure(err: unknown, waitingFor: string): Error {
    if (this.opts.signal?.aborted) return this.opts.signal.reason instanceof Error ? this.opts.signal.reason : new Error("aborted");
    if (this.timedOut) return new UserError(`${this.url}: no ${waitingFor} within ${this.timeoutMs / 1000} s (--timeout)`);
    if (err instanceof UserError) return err;
    const cause = (err as { cause?: { message?: string } })?.cause?.message;
    return new UserError(`${this.url}: request failed: ${cause ?? (err as Error).message}`);
  }

  async send(init: RequestInit): Promise<Response> {
    this.opts.signal?.throwIfAborted();
    this.arm();
    try {
      return await fetch(this.url, { ...init, signal: this.controller.signal });
    } catch (err) {
      this.close();
      throw this.failure(err, "answer");
    }
  }

  /** The body, which must be exactly `expected` bytes (a longer one is cut off, not downloaded). */
  async body(res: Response, expected: number): Promise<Uint8Array> {
    const out = new Uint8Array(expected);
    let done = 0;
    try {
      if (!res.body) throw new UserError(`${this.url}: empty answer`);
      const reader = res.body.getReader();
      for (;;) {
        this.arm();
        const { done: end, value } = await reader.read();
        if (end) break;
        if (done + value.length > expected) {
          await reader.cancel().catch(() => undefined);
          throw new UserError(`${this.url}: range request returned more than the ${expected} bytes asked for`);
        }
        out.set(value, done);
        done += value.length;
      }
    } catch (err) {
      throw this.failure(err, "data");
    } finally {
      this.close();
    }
    if (done !== expected) throw new UserError(`${this.url}: range request returned ${done} bytes, expected ${expected}`);
    return out;
  }

  /** Drops the answer's body unread and releases the connection. */
  discard(): void {
    this.controller.abort();
    this.close();
  }

  close(): void {
    clearTimeout(this.timer);
    this.opts.signal?.removeEventListener("abort", this.onAbort);
  }
}

const httpStatus = (res: Response) => `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
const NO_RANGES = "server does not support range requests";

async function remoteSize(url: string, opts: SourceOptions): Promise<number> {
  const headRequest = new HttpRequest(url, opts);
  const head = await headRequest.send({ method: "HEAD" });
  headRequest.discard();
  if (head.status >= 400) throw new UserError(`${url}: ${httpStatus(head)}`);
  const length = head.headers.get("content-length");
  if (head.ok && length !== null && /^\d+$/.test(length) && head.headers.get("accept-ranges") !== "none") return Number(length);
  // Some servers do not answer HEAD with a length: ask for the first byte instead.
  const probeRequest = new HttpRequest(url, opts);
  const probe = await probeRequest.send({ headers: { Range: "bytes=0-0" } });
  probeRequest.discard();
  if (probe.status >= 400) throw new UserError(`${url}: ${httpStatus(probe)}`);
  if (probe.status === 200) throw new UserError(`${url}: ${NO_RANGES} (${httpStatus(probe)} to a range request)`);
  const total = contentRangeTotal(probe.headers.get("content-range"));
  if (probe.status === 206 && total !== undefined) return total;
  throw new UserError(`${url}: cannot determine the size (${httpStatus(probe)}, no Content-Length or Content-Range)`);
}

export async function openHttpSource(url: string, opts: SourceOptions = {}): Promise<ByteSource> {
  const size = await remoteSize(url, opts);
  return {
    name: url,
    size,
    async read(offset, length) {
      checkRange(url, size, offset, length);
      if (length === 0) return new Uint8Array(0);
      const request = new HttpRequest(url, opts);
      const res = await request.send({ headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      if (res.status !== 206) {
        // never read a whole-file answer to a range request: stop at the first one
        request.discard();
        if (res.status === 200) throw new UserError(`${url}: ${NO_RANGES} (${httpStatus(res)} to a range request)`);
        throw new UserError(`${url}: range request bytes=${offset}-${offset + length - 1} failed (${httpStatus(res)})`);
      }
      return request.body(res, length);
    },
    async close() {},
  };
}
