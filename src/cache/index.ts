// The measurement cache (`~/.cache/hquant/bench`, or under $XDG_CACHE_HOME): what bench, scan and
// tune keep between runs — base-model distributions (base-*), tune measurements (tune-*,
// tune-proxy-*.json) and scan measurements (scan-*.jsonl) — listed, sized and cleaned. Only
// entries with those names are ever touched: the folder may be shared with other files.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { defaultCacheDir } from "../eval/run.js";

export { defaultCacheDir };

export type CacheKind = "base" | "tune" | "scan";

export interface CacheEntry {
  name: string;
  kind: CacheKind;
  /** bytes on disk (a folder: every file in it) */
  bytes: number;
  /** last modification, ms since the epoch (a folder: its newest file) */
  mtimeMs: number;
}

const KIND_BY_PREFIX: readonly [string, CacheKind][] = [
  ["base-", "base"],
  ["tune-", "tune"],
  ["scan-", "scan"],
];

function kindOf(name: string): CacheKind | undefined {
  return KIND_BY_PREFIX.find(([p]) => name.startsWith(p))?.[1];
}

function sizeOf(p: string): { bytes: number; mtimeMs: number } {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return { bytes: st.size, mtimeMs: st.mtimeMs };
  let bytes = 0;
  let mtimeMs = st.mtimeMs;
  for (const e of fs.readdirSync(p)) {
    const s = sizeOf(path.join(p, e));
    bytes += s.bytes;
    mtimeMs = Math.max(mtimeMs, s.mtimeMs);
  }
  return { bytes, mtimeMs };
}

/** The cache's entries, largest first; [] when the folder does not exist. */
export function listCache(dir: string = defaultCacheDir()): CacheEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new UserError(`${dir}: cannot read the cache folder (${(err as NodeJS.ErrnoException).code})`);
  }
  const out: CacheEntry[] = [];
  for (const name of names) {
    const kind = kindOf(name);
    if (kind === undefined) continue;
    out.push({ name, kind, ...sizeOf(path.join(dir, name)) });
  }
  return out.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
}

export interface CleanOptions {
  /** only entries not modified for this many days */
  olderThanDays?: number;
  /** only entries of this kind */
  kind?: CacheKind;
  /** list what would go, remove nothing */
  dryRun?: boolean;
}

/** Removes the cache entries the options select; returns them. */
export function cleanCache(dir: string = defaultCacheDir(), opts: CleanOptions = {}, now = Date.now()): CacheEntry[] {
  const cutoff = opts.olderThanDays === undefined ? Infinity : now - opts.olderThanDays * 86_400_000;
  const chosen = listCache(dir).filter((e) => (opts.kind === undefined || e.kind === opts.kind) && e.mtimeMs < cutoff);
  if (!opts.dryRun) for (const e of chosen) fs.rmSync(path.join(dir, e.name), { recursive: true, force: true });
  return chosen;
}
