// Where GGUF bytes come from: a local file (positioned reads) or an HTTP(S) URL (range requests).
// Readers only ever ask for bounded pieces, so a 70 GB model is never loaded whole, and a remote
// model can be planned from its header alone.
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

export async function openSource(pathOrUrl: string): Promise<ByteSource> {
  return isUrl(pathOrUrl) ? openHttpSource(pathOrUrl) : openFileSource(pathOrUrl);
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

async function httpFetch(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { message?: string } })?.cause?.message;
    throw new UserError(`${url}: request failed: ${cause ?? (err as Error).message}`);
  }
}

async function remoteSize(url: string): Promise<number> {
  const head = await httpFetch(url, { method: "HEAD" });
  const length = head.headers.get("content-length");
  if (head.ok && length !== null && /^\d+$/.test(length)) return Number(length);
  // Some servers do not answer HEAD with a length: ask for the first byte instead.
  const probe = await httpFetch(url, { headers: { Range: "bytes=0-0" } });
  await probe.arrayBuffer().catch(() => undefined);
  const total = contentRangeTotal(probe.headers.get("content-range"));
  if (probe.status === 206 && total !== undefined) return total;
  throw new UserError(`${url}: cannot determine the size (HTTP ${probe.status}, no Content-Length or Content-Range)`);
}

export async function openHttpSource(url: string): Promise<ByteSource> {
  const size = await remoteSize(url);
  return {
    name: url,
    size,
    async read(offset, length) {
      checkRange(url, size, offset, length);
      if (length === 0) return new Uint8Array(0);
      const res = await httpFetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      if (res.status !== 206 && !(res.status === 200 && offset === 0 && length === size)) {
        await res.arrayBuffer().catch(() => undefined);
        throw new UserError(`${url}: range request bytes=${offset}-${offset + length - 1} failed (HTTP ${res.status})`);
      }
      const body = new Uint8Array(await res.arrayBuffer());
      if (body.length !== length) {
        throw new UserError(`${url}: range request returned ${body.length} bytes, expected ${length}`);
      }
      return body;
    },
    async close() {},
  };
}
