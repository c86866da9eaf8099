// The release manifest (DIR/release.json): what is done. A file is listed only once it is complete
// and verified in llama.cpp, with each of its files' size and sha256 and the hash of the plan that
// made it; a re-run skips a listed file whose bytes and plan hash still match, and makes the rest.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../eval/run.js";
import type { BaseLine, BenchRow } from "../eval/report.js";
import type { Plan } from "../plan/planner.js";

export const MANIFEST_NAME = "release.json";

export interface ManifestFile {
  key: string;
  kind: string;
  description: string;
  /** the files (one, or the shards), relative to the release folder */
  files: { name: string; bytes: number; sha256: string }[];
  planHash: string;
  /** the `hquant build` arguments that make the same bytes alone */
  build: string[];
  imatrix: boolean;
  /** the schedule shipped beside it, relative to the release folder */
  schedule?: string;
  verified: { tensors: number; tokens: number; logits: number };
  /** its evaluation against the base, for the evaluation settings `evalKey` */
  eval?: { evalKey: string; row: BenchRow };
}

export interface Manifest {
  hquant: string;
  name: string;
  input: string;
  imatrix?: { file: string; sha256: string; made: string };
  /** the tuned schedules and the tune command that made them (reused by a re-run with the same command) */
  tune?: { command: string; schedules: { label: string; file: string; sha256: string; description: string }[] };
  files: Record<string, ManifestFile>;
  base?: BaseLine;
  evaluation?: { text: string; ctx: number; chunks: number; positions: number; evalKey: string };
}

export function sha256Bytes(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export function readManifest(dir: string): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_NAME), "utf8")) as Manifest;
  } catch {
    return undefined; // none, or unreadable: everything is made again
  }
}

export function writeManifest(dir: string, m: Manifest): void {
  writeFileAtomic(path.join(dir, MANIFEST_NAME), JSON.stringify(m, null, 2) + "\n");
}

/** What decides a file's bytes: the input's identity, the build arguments, the inputs they name, the plan. */
export function planHash(parts: { version: string; input: { size: number; mtimeMs: number }; build: readonly string[]; imatrixSha?: string; scheduleSha?: string; plan: Plan; split?: number }): string {
  const tensors = parts.plan.tensors.map((t) => [t.name, t.dstType, t.shape]);
  return sha256Bytes(JSON.stringify({ ...parts, build: parts.build.slice(1), plan: tensors }));
}

/** Whether the manifest's entry is still on disk as it was written (sizes and hashes) and made by the same plan. */
export async function isDone(dir: string, entry: ManifestFile | undefined, hash: string): Promise<boolean> {
  if (!entry || entry.planHash !== hash) return false;
  for (const f of entry.files) {
    const p = path.join(dir, f.name);
    if (!fs.existsSync(p) || fs.statSync(p).size !== f.bytes) return false;
    if ((await sha256File(p)) !== f.sha256) return false;
  }
  return true;
}
