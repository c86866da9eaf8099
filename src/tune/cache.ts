// The tuner's disk cache: one small JSON file per measurement, written to a temporary name and
// renamed into place, so an interrupted tune leaves only complete entries and resumes from them.
// Folder per (base model, text, ctx, chunks, imatrix): a measurement depends on nothing else.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export interface MeasureKey {
  modelSha256: string;
  textSha256: string;
  ctx: number;
  chunks: number;
  /** sha256 of the imatrix file, or "none" */
  imatrixSha256: string;
}

export function measureDir(cacheDir: string, key: MeasureKey): string {
  const id = createHash("sha256")
    .update(`${key.modelSha256}\n${key.textSha256}\nctx=${key.ctx}\nchunks=${key.chunks}\nimatrix=${key.imatrixSha256}`)
    .digest("hex");
  return path.join(cacheDir, `tune-${id.slice(0, 32)}`);
}

export function writeJsonAtomic(file: string, data: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 1) + "\n");
  fs.renameSync(tmp, file);
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}
