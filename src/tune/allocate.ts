// Allocation: a multiple-choice knapsack. Each item (tensor) takes exactly one option (type) with
// an exact size and a predicted cost (ΔKLD); minimise the total cost with the total size at most
// the capacity. Solved exactly by dynamic programming over sizes in units of their greatest common
// divisor (tensor sizes share large factors, so this is small: ~10⁴ units for the bundled model);
// when the table would be too large the sizes are rounded *up* to a coarser unit, which keeps every
// answer within the capacity (never over budget) at a small loss of optimality.
// Deterministic: the same input gives the same choice (strict comparisons, fixed order).

export interface KnapsackOption {
  /** exact size (a non-negative integer, e.g. bytes) */
  size: number;
  cost: number;
}

export interface KnapsackResult {
  /** chosen option index per item */
  choice: number[];
  cost: number;
  size: number;
  /** true when sizes were rounded to a coarser unit than their gcd (the optimum is then not guaranteed) */
  approximate: boolean;
}

/** DP cells (items × capacity units) allowed before sizes are rounded up to a coarser unit. */
export const MAX_DP_CELLS = 64_000_000;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** The cheapest choice of one option per item whose sizes sum to at most `capacity`; undefined if none fits. */
export function solveKnapsack(items: readonly (readonly KnapsackOption[])[], capacity: number, maxCells = MAX_DP_CELLS): KnapsackResult | undefined {
  return knapsackTable(items, capacity, maxCells).best(capacity);
}

/** Options no other option beats: a larger option must be strictly cheaper than every smaller one. */
function undominated(opts: readonly KnapsackOption[]): number[] {
  const order = opts.map((_, k) => k).sort((a, b) => opts[a]!.size - opts[b]!.size || a - b);
  const kept: number[] = [];
  let cheapest = Infinity;
  for (const k of order) {
    if (opts[k]!.cost < cheapest) {
      kept.push(k);
      cheapest = opts[k]!.cost;
    }
  }
  return kept;
}

/**
 * The DP table for every capacity up to `maxCapacity`: `best(c)` backtracks the optimum within c
 * without recomputing (the tuner shrinks the capacity by the header's growth this way).
 */
export function knapsackTable(items: readonly (readonly KnapsackOption[])[], maxCapacity: number, maxCells = MAX_DP_CELLS): { best(capacity: number): KnapsackResult | undefined } {
  if (items.some((opts) => opts.length === 0)) throw new Error("knapsack: an item without options");
  for (const opts of items) for (const o of opts) if (!Number.isInteger(o.size) || o.size < 0) throw new Error(`knapsack: size ${o.size} is not a non-negative integer`);
  // dominated options never win (a no-larger option is no costlier): dropped, which changes no optimum
  const kept = items.map(undominated);
  // every item takes at least its smallest option: only the extra over that competes for capacity
  const minSize = items.map((opts) => Math.min(...opts.map((o) => o.size)));
  const minTotal = minSize.reduce((a, b) => a + b, 0);
  const spare = maxCapacity - minTotal;
  if (spare < 0) return { best: () => undefined };
  let unit = 0;
  for (const [i, ks] of kept.entries()) for (const k of ks) unit = gcd(unit, items[i]![k]!.size - minSize[i]!);
  if (unit === 0) unit = 1; // every option of every item has the same size
  let approximate = false;
  if (items.length * (Math.floor(spare / unit) + 1) > maxCells) {
    const coarse = Math.ceil(spare / Math.max(1, Math.floor(maxCells / items.length) - 1));
    unit = Math.ceil(coarse / unit) * unit;
    approximate = true;
  }
  const width = Math.floor(spare / unit) + 1;
  const units = items.map((opts, i) => opts.map((o) => Math.ceil((o.size - minSize[i]!) / unit)));
  // table[c]: least cost of the items so far within c units (non-decreasing in c)
  let table = new Float64Array(width);
  let next = new Float64Array(width);
  const choice = items.map(() => new Uint16Array(width));
  for (const [i, opts] of items.entries()) {
    const ch = choice[i]!;
    const u = units[i]!;
    next.fill(Infinity);
    for (const k of kept[i]!) {
      const s = u[k]!;
      const cost = opts[k]!.cost;
      for (let c = s; c < width; c++) {
        const v = table[c - s]! + cost;
        if (v < next[c]!) {
          next[c] = v;
          ch[c] = k;
        }
      }
    }
    [table, next] = [next, table];
  }
  const final = table;
  return {
    best(capacity: number): KnapsackResult | undefined {
      if (capacity > maxCapacity) throw new Error(`knapsack: capacity ${capacity} above the table's ${maxCapacity}`);
      const top = Math.floor((capacity - minTotal) / unit);
      if (top < 0 || !Number.isFinite(final[top]!)) return undefined;
      const picked = new Array<number>(items.length);
      let c = top;
      for (let i = items.length - 1; i >= 0; i--) {
        const k = choice[i]![c]!;
        picked[i] = k;
        c -= units[i]![k]!;
      }
      const size = picked.reduce((a, k, i) => a + items[i]![k]!.size, 0);
      const cost = picked.reduce((a, k, i) => a + items[i]![k]!.cost, 0);
      return { choice: picked, cost, size, approximate };
    },
  };
}
