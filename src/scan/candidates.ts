// The single edits a search step can make to a layer stack of `nLayer` layers, per surgery op, in a
// fixed order (the order breaks ties between equally harmful edits, so a search is deterministic).
import { UserError } from "../errors.js";
import type { SurgeryOp } from "../surgery/index.js";

export type SearchOp = "delete" | "duplicate" | "swap" | "interpolate" | "merge";
export const SEARCH_OPS: readonly SearchOp[] = ["delete", "duplicate", "swap", "interpolate", "merge"];

/** One candidate edit: its op (indices refer to the stack it is applied to) and a short label. */
export interface Candidate {
  op: SurgeryOp;
  label: string;
  /** layers the stack gains (+1 duplicate/interpolate), loses (−1 delete, 1−C merge) or keeps (swap) */
  layerDelta: number;
}

export interface CandidateOptions {
  /** layers per merge (`--merge-count`, LaCo's C; default 2) */
  mergeCount?: number;
}

/** The edit's label: `delete 3`, `duplicate 3`, `swap 3-4`, `interpolate 3,5`, `merge 3-5`. */
export function editLabel(op: SurgeryOp): string {
  switch (op.op) {
    case "delete":
      return `delete ${op.layers.join(",")}`;
    case "duplicate":
      return op.after === op.layer ? `duplicate ${op.layer}` : `duplicate ${op.layer} after ${op.after}`;
    case "swap":
      return `swap ${op.a}-${op.b}`;
    case "interpolate":
      return `interpolate ${op.a},${op.b}${op.alpha === 0.5 ? "" : ` α=${op.alpha}`}`;
    case "merge":
      return `merge ${op.from}-${op.from + op.count - 1}`;
  }
}

/**
 * Every single edit of kind `op` on a stack of `nLayer` layers:
 * - delete i (while more than one layer is left);
 * - duplicate i, the copy right after i;
 * - swap i↔i+1 (neighbours);
 * - interpolate i and i+2 (α = 0.5), inserted after i+1, i.e. between the two;
 * - merge of the C consecutive layers i … i+C−1 (LaCo's RDSC onto layer i).
 */
export function enumerateCandidates(op: SearchOp, nLayer: number, opts: CandidateOptions = {}): Candidate[] {
  const out: SurgeryOp[] = [];
  switch (op) {
    case "delete":
      if (nLayer > 1) for (let i = 0; i < nLayer; i++) out.push({ op: "delete", layers: [i] });
      break;
    case "duplicate":
      for (let i = 0; i < nLayer; i++) out.push({ op: "duplicate", layer: i, after: i });
      break;
    case "swap":
      for (let i = 0; i + 1 < nLayer; i++) out.push({ op: "swap", a: i, b: i + 1 });
      break;
    case "interpolate":
      for (let i = 0; i + 2 < nLayer; i++) out.push({ op: "interpolate", a: i, b: i + 2, alpha: 0.5, after: i + 1 });
      break;
    case "merge": {
      const count = checkMergeCount(opts.mergeCount ?? 2);
      for (let i = 0; i + count <= nLayer; i++) out.push({ op: "merge", from: i, count });
      break;
    }
  }
  return out.map((o) => ({ op: o, label: editLabel(o), layerDelta: layerDelta(o) }));
}

/** Candidates of several ops, in the order of `ops` (each op's own order within). */
export function enumerateAll(ops: readonly SearchOp[], nLayer: number, opts: CandidateOptions = {}): Candidate[] {
  return ops.flatMap((op) => enumerateCandidates(op, nLayer, opts));
}

export function layerDelta(op: SurgeryOp): number {
  switch (op.op) {
    case "delete":
      return -op.layers.length;
    case "duplicate":
    case "interpolate":
      return 1;
    case "swap":
      return 0;
    case "merge":
      return 1 - op.count;
  }
}

export function checkMergeCount(count: number, flag = "--merge-count"): number {
  if (!Number.isInteger(count) || count < 2) throw new UserError(`${flag} must be an integer ≥ 2 (got ${count})`);
  return count;
}

/** `--op` for a search: one op or `all`. */
export function parseSearchOps(value: string): SearchOp[] {
  if (value === "all") return [...SEARCH_OPS];
  if (!SEARCH_OPS.includes(value as SearchOp)) throw new UserError(`--op must be ${SEARCH_OPS.join(", ")} or all (got ${JSON.stringify(value)})`);
  return [value as SearchOp];
}
