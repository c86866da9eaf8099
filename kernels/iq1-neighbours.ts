// The IQ1S grid's lookup tables as ggml's iq2xs_init_impl builds them for iq1_s / iq1_m: a map from a
// point's 16-bit code (2 bits per coordinate) to its grid index, and for every code not on the
// grid its neighbours: the grid points at the 3 smallest distinct squared distances, ordered by
// (distance, grid index) as the reference's qsort with iq2_compare_func orders them.
// Only codes whose coordinates are all in 0..2 are built (the quantizers never look up a code with
// a 3), in memory reserved here, once per instance.
import { IQ1S_CODES, IQ1S_SIZE } from "./iq-grids";

const KMAP_SIZE: i32 = 43692;
/** ≥ the total length of all lists (4513 codes off the grid, 327721 neighbours, one count each). */
const NEIGHBOURS_CAPACITY: i32 = 340000;

// kmap: grid index (>= 0), -(offset + 1) of the code's list in NEIGHBOURS, or 0x7fffffff (unused)
const IQ1S_MAP: usize = memory.data(KMAP_SIZE * 4, 16);
const IQ1S_NEIGHBOURS: usize = memory.data(NEIGHBOURS_CAPACITY * 2, 16);
// the same lists with each neighbour's code instead of its index (read four at a time)
const IQ1S_NEIGHBOUR_CODES: usize = memory.data(NEIGHBOURS_CAPACITY * 2 + 16, 16);
const HIST: usize = memory.data(64 * 4, 16);
let iq1sReady = false;

/** Squared distance between two points' codes divided by 4 (coordinates 2l+1: each differs by 0, 2 or 4). */
@inline
function dist2Over4(a: i32, b: i32): i32 {
  const x = a ^ b;
  const lo = x & 0x5555, hi = (x >> 1) & 0x5555;
  // digits 0..2: a^b is 1 or 3 for |Δ| = 1, 2 for |Δ| = 2
  return popcnt(lo) + 4 * popcnt(hi & ~lo);
}

function buildIq1s(): void {
  for (let i = 0; i < KMAP_SIZE; i++) store<i32>(IQ1S_MAP + (<usize>i << 2), 0x7fffffff);
  for (let g = 0; g < IQ1S_SIZE; g++) store<i32>(IQ1S_MAP + (<usize>load<u16>(IQ1S_CODES + (<usize>g << 1)) << 2), g);
  let counter = 0;
  for (let u = 0; u < KMAP_SIZE; u++) {
    if ((u & (u >> 1) & 0x5555) != 0) continue; // some coordinate is 3
    const m = IQ1S_MAP + (<usize>u << 2);
    if (load<i32>(m) != 0x7fffffff) continue;
    memory.fill(HIST, 0, 64 * 4);
    for (let g = 0; g < IQ1S_SIZE; g++) {
      const h = HIST + (<usize>dist2Over4(<i32>load<u16>(IQ1S_CODES + (<usize>g << 1)), u) << 2);
      store<i32>(h, load<i32>(h) + 1);
    }
    // the three smallest distances present
    let d0 = -1, d1 = -1, d2 = -1;
    for (let d = 0; d < 64; d++) {
      if (load<i32>(HIST + (<usize>d << 2)) == 0) continue;
      if (d0 < 0) d0 = d;
      else if (d1 < 0) d1 = d;
      else { d2 = d; break; }
    }
    store<i32>(m, -(counter + 1));
    const start = counter++;
    let n = 0;
    for (let k = 0; k < 3; k++) {
      const d = k == 0 ? d0 : k == 1 ? d1 : d2;
      if (d < 0) break;
      for (let g = 0; g < IQ1S_SIZE; g++) {
        if (dist2Over4(<i32>load<u16>(IQ1S_CODES + (<usize>g << 1)), u) != d) continue;
        store<u16>(IQ1S_NEIGHBOURS + (<usize>counter << 1), <u16>g);
        store<u16>(IQ1S_NEIGHBOUR_CODES + (<usize>counter << 1), load<u16>(IQ1S_CODES + (<usize>g << 1)));
        counter++;
        n++;
      }
    }
    store<u16>(IQ1S_NEIGHBOURS + (<usize>start << 1), <u16>n);
  }
}

/** Builds the IQ1S tables on first use. */
export function iq1sTablesReady(): void {
  if (iq1sReady) return;
  buildIq1s();
  iq1sReady = true;
}

/** kmap_q2xs[u] of the IQ1S grid: the grid index of code u, or < 0 when u is off the grid. */
@inline
export function iq1sGridIndex(u: i32): i32 {
  return load<i32>(IQ1S_MAP + (<usize>u << 2));
}

/** The neighbour list of an off-grid code u (u16 count, then grid indices). */
@inline
export function iq1sNeighbours(u: i32): usize {
  return IQ1S_NEIGHBOURS + (<usize>(-load<i32>(IQ1S_MAP + (<usize>u << 2)) - 1) << 1);
}

/** The codes of the neighbours of iq1sNeighbours(u), at the same positions. */
@inline
export function iq1sNeighbourCodes(u: i32): usize {
  return IQ1S_NEIGHBOUR_CODES + (<usize>(-load<i32>(IQ1S_MAP + (<usize>u << 2)) - 1) << 1);
}
