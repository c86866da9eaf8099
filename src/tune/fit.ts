// One budget: the knapsack over the tensors' options, with the header the chosen schedule writes.
// A longer schedule (more overrides) makes a larger header, so the data capacity is the budget
// minus the header of the schedule being tried: solve, size the schedule exactly, and shrink the
// capacity by any excess until the file fits (one DP table serves every capacity tried).
import type { GGMLType } from "../gguf/ggml-types.js";
import type { TuneSpace } from "./candidates.js";
import { knapsackTable, type KnapsackOption } from "./allocate.js";
import type { BudgetLimit } from "./budget.js";
import type { Assignment, SizedSchedule } from "./schedule.js";
import type { CostTable } from "./sensitivity.js";

export interface Allocation {
  assignment: Map<string, GGMLType>;
  sized: SizedSchedule;
  /** Σ predicted ΔKLD */
  predictedKld: number;
  /** the knapsack ran on rounded sizes (a very large model) */
  approximate: boolean;
  /** knapsack solutions tried: more than one when the header of the first one did not fit */
  rounds: number;
}

/** The measure a limit bounds: the file (header and padding included) or bits per weight. */
export function limitBytes(limit: BudgetLimit, sized: SizedSchedule): number {
  return limit.kind === "file" ? sized.fileBytes : sized.plan.tensorBytes;
}

export function limitMax(limit: BudgetLimit): number {
  return limit.kind === "file" ? limit.maxFileBytes : limit.maxTensorBytes;
}

/** The assignment giving every tensor its smallest option (the smallest file possible). */
export function smallestAssignment(space: TuneSpace): Map<string, GGMLType> {
  return new Map(space.tensors.map((t) => [t.name, t.options[0]!.type]));
}

const MAX_ROUNDS = 16;

export function allocate(space: TuneSpace, costs: CostTable, limit: BudgetLimit, size: (a: Assignment) => SizedSchedule): Allocation | undefined {
  const items: KnapsackOption[][] = space.tensors.map((t) =>
    t.options.map((o) => ({ size: limit.kind === "file" ? o.paddedBytes : o.bytes, cost: costs.get(t.name)!.get(o.type)! })),
  );
  const fixed = limit.kind === "file" ? space.fixedPaddedBytes : space.fixedBytes;
  const max = limitMax(limit);
  // the capacity if the header were the smallest schedule's (one type everywhere: the fewest
  // overrides); the schedule found is then sized exactly and the capacity shrunk by any excess
  const smallestHeader = limit.kind === "file" ? size(smallestAssignment(space)).headerBytes : 0;
  const top = max - fixed - smallestHeader;
  if (top < 0) return undefined;
  const table = knapsackTable(items, top);
  let capacity = top;
  for (let round = 1; round <= MAX_ROUNDS && capacity >= 0; round++) {
    const r = table.best(capacity);
    if (!r) return undefined;
    const assignment = new Map(space.tensors.map((t, i) => [t.name, t.options[r.choice[i]!]!.type]));
    const sized = size(assignment);
    const used = limitBytes(limit, sized);
    if (used <= max) return { assignment, sized, predictedKld: r.cost, approximate: r.approximate, rounds: round };
    capacity -= used - max;
  }
  return undefined;
}
