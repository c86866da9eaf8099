// The lattice tables ggml's IQ quantizers search (iq2xs_init_impl for the IQ2 and IQ1S grids,
// iq3xs_init_impl for the IQ3 grids), built once per instance on first use:
//   positions   one i8 per coordinate: 2l+1 for level code l (the grid as the quantizers see it)
//   map         one i32 per packed code word u (kmapSize of them): the grid index when u is a grid
//               point, else -(offset+1) with neighbours[offset] = n followed by n grid indices
//   neighbours  u16 lists: for every u off the grid, the grid points in its nwant nearest
//               distinct squared distances, ordered by (distance, index)
// ggml sorts all (distance, index) pairs with qsort; the order is total, so taking the distance
// buckets in ascending order and each bucket by ascending index gives the same lists without a
// sort. Kernels allocate nothing, so every table is static, sized for its lattice (the neighbour
// totals are fixed by the grids; init traps if one were ever exceeded).
import { expandGrid } from "./iq-grid";
import {
  IQ1S_CODES, IQ1S_LEVELS, IQ1S_SIZE, IQ2S_CODES, IQ2S_LEVELS, IQ2S_SIZE, IQ2XS_CODES, IQ2XS_LEVELS, IQ2XS_SIZE,
  IQ2XXS_CODES, IQ2XXS_LEVELS, IQ2XXS_SIZE, IQ3S_CODES, IQ3S_LEVELS, IQ3S_SIZE, IQ3XXS_CODES, IQ3XXS_LEVELS, IQ3XXS_SIZE,
} from "./iq-grids";

export const LATTICE_IQ2XXS: i32 = 0;
export const LATTICE_IQ2XS: i32 = 1;
export const LATTICE_IQ2S: i32 = 2;
/** Shared by iq1_s and iq1_m. */
export const LATTICE_IQ1S: i32 = 3;
export const LATTICE_IQ3XXS: i32 = 4;
export const LATTICE_IQ3S: i32 = 5;

// kmap sizes: every code word of 8 two-bit (IQ2/IQ1) or 4 three-bit (IQ3) coordinates
const KMAP_2BIT: i32 = 43692;
const KMAP_3BIT: i32 = 4096;

// u16 entries of each neighbour table (lists plus their counts)
const NB_IQ2XXS: i32 = 417400;
const NB_IQ2XS: i32 = 551722;
const NB_IQ2S: i32 = 209100;
const NB_IQ1S: i32 = 1375339;
const NB_IQ3XXS: i32 = 22825;
const NB_IQ3S: i32 = 28317;

const POS_IQ2XXS = memory.data(256 * 8, 8);
const POS_IQ2XS = memory.data(512 * 8, 8);
const POS_IQ2S = memory.data(1024 * 8, 8);
const POS_IQ1S = memory.data(2048 * 8, 8);
const POS_IQ3XXS = memory.data(256 * 4, 4);
const POS_IQ3S = memory.data(512 * 4, 4);

const VAL_IQ2XXS = memory.data(256 * 8, 8);
const VAL_IQ2XS = memory.data(512 * 8, 8);
const VAL_IQ2S = memory.data(1024 * 8, 8);
const VAL_IQ1S = memory.data(2048 * 8, 8);
const VAL_IQ3XXS = memory.data(256 * 4, 4);
const VAL_IQ3S = memory.data(512 * 4, 4);

const MAP_IQ2XXS = memory.data(KMAP_2BIT * 4, 4);
const MAP_IQ2XS = memory.data(KMAP_2BIT * 4, 4);
const MAP_IQ2S = memory.data(KMAP_2BIT * 4, 4);
const MAP_IQ1S = memory.data(KMAP_2BIT * 4, 4);
const MAP_IQ3XXS = memory.data(KMAP_3BIT * 4, 4);
const MAP_IQ3S = memory.data(KMAP_3BIT * 4, 4);

const NBR_IQ2XXS = memory.data(NB_IQ2XXS * 2, 2);
const NBR_IQ2XS = memory.data(NB_IQ2XS * 2, 2);
const NBR_IQ2S = memory.data(NB_IQ2S * 2, 2);
const NBR_IQ1S = memory.data(NB_IQ1S * 2, 2);
const NBR_IQ3XXS = memory.data(NB_IQ3XXS * 2, 2);
const NBR_IQ3S = memory.data(NB_IQ3S * 2, 2);

// scratch of the build: one squared distance per grid point, and which distances occur
const DIST = memory.data(2048 * 4, 16);
const MAX_D2: i32 = 8 * 36; // 8 coordinates, each |Δ| ≤ 6 (2-bit) — 4 coordinates, |Δ| ≤ 14 (3-bit) is 784
const SEEN = memory.data(800 * 4, 4);

let built: i32 = 0; // bit per lattice
let valuesBuilt: i32 = 0;

@inline function gridSize(lattice: i32): i32 {
  switch (lattice) {
    case LATTICE_IQ2XXS: return IQ2XXS_SIZE;
    case LATTICE_IQ2XS: return IQ2XS_SIZE;
    case LATTICE_IQ2S: return IQ2S_SIZE;
    case LATTICE_IQ1S: return IQ1S_SIZE;
    case LATTICE_IQ3XXS: return IQ3XXS_SIZE;
    default: return IQ3S_SIZE;
  }
}

@inline function codesOf(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return IQ2XXS_CODES;
    case LATTICE_IQ2XS: return IQ2XS_CODES;
    case LATTICE_IQ2S: return IQ2S_CODES;
    case LATTICE_IQ1S: return IQ1S_CODES;
    case LATTICE_IQ3XXS: return IQ3XXS_CODES;
    default: return IQ3S_CODES;
  }
}

@inline function levelsOf(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return IQ2XXS_LEVELS;
    case LATTICE_IQ2XS: return IQ2XS_LEVELS;
    case LATTICE_IQ2S: return IQ2S_LEVELS;
    case LATTICE_IQ1S: return IQ1S_LEVELS;
    case LATTICE_IQ3XXS: return IQ3XXS_LEVELS;
    default: return IQ3S_LEVELS;
  }
}

@inline function is3bit(lattice: i32): bool {
  return lattice >= LATTICE_IQ3XXS;
}

/** nwant of ggml's init: how many distinct nearest distances each neighbour list spans. */
@inline function distancesWanted(lattice: i32): i32 {
  switch (lattice) {
    case LATTICE_IQ2S: return 1;
    case LATTICE_IQ1S: return 3;
    case LATTICE_IQ3S: return 3;
    default: return 2;
  }
}

@inline function neighbourCapacity(lattice: i32): i32 {
  switch (lattice) {
    case LATTICE_IQ2XXS: return NB_IQ2XXS;
    case LATTICE_IQ2XS: return NB_IQ2XS;
    case LATTICE_IQ2S: return NB_IQ2S;
    case LATTICE_IQ1S: return NB_IQ1S;
    case LATTICE_IQ3XXS: return NB_IQ3XXS;
    default: return NB_IQ3S;
  }
}

function positionsTable(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return POS_IQ2XXS;
    case LATTICE_IQ2XS: return POS_IQ2XS;
    case LATTICE_IQ2S: return POS_IQ2S;
    case LATTICE_IQ1S: return POS_IQ1S;
    case LATTICE_IQ3XXS: return POS_IQ3XXS;
    default: return POS_IQ3S;
  }
}

function mapTable(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return MAP_IQ2XXS;
    case LATTICE_IQ2XS: return MAP_IQ2XS;
    case LATTICE_IQ2S: return MAP_IQ2S;
    case LATTICE_IQ1S: return MAP_IQ1S;
    case LATTICE_IQ3XXS: return MAP_IQ3XXS;
    default: return MAP_IQ3S;
  }
}

function neighbourTable(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return NBR_IQ2XXS;
    case LATTICE_IQ2XS: return NBR_IQ2XS;
    case LATTICE_IQ2S: return NBR_IQ2S;
    case LATTICE_IQ1S: return NBR_IQ1S;
    case LATTICE_IQ3XXS: return NBR_IQ3XXS;
    default: return NBR_IQ3S;
  }
}

function valuesTable(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return VAL_IQ2XXS;
    case LATTICE_IQ2XS: return VAL_IQ2XS;
    case LATTICE_IQ2S: return VAL_IQ2S;
    case LATTICE_IQ1S: return VAL_IQ1S;
    case LATTICE_IQ3XXS: return VAL_IQ3XXS;
    default: return VAL_IQ3S;
  }
}

/** Squared distances from code word u (positions 2l+1) to every grid point, into DIST (i32 each). */
function distances(u: i32, size: i32, coords: i32, bits: i32, pos: usize): void {
  const mask = (1 << bits) - 1;
  if (coords == 8) {
    // eight i8 coordinates: widen to i16, square the differences pairwise-summed into i32 lanes
    const pu = i16x8(
      <i16>(2 * (u & mask) + 1), <i16>(2 * ((u >> bits) & mask) + 1), <i16>(2 * ((u >> (2 * bits)) & mask) + 1), <i16>(2 * ((u >> (3 * bits)) & mask) + 1),
      <i16>(2 * ((u >> (4 * bits)) & mask) + 1), <i16>(2 * ((u >> (5 * bits)) & mask) + 1), <i16>(2 * ((u >> (6 * bits)) & mask) + 1), <i16>(2 * ((u >> (7 * bits)) & mask) + 1),
    );
    for (let j = 0; j < size; j++) {
      const pg = i16x8.extend_low_i8x16_s(v128.load64_zero(pos + (<usize>j << 3)));
      const diff = i16x8.sub(pg, pu);
      const sq = i32x4.dot_i16x8_s(diff, diff);
      const d2 = i32x4.extract_lane(sq, 0) + i32x4.extract_lane(sq, 1) + i32x4.extract_lane(sq, 2) + i32x4.extract_lane(sq, 3);
      store<i32>(DIST + (<usize>j << 2), d2);
    }
  } else {
    for (let j = 0; j < size; j++) {
      let d2 = 0;
      for (let k = 0; k < coords; k++) {
        const d = <i32>load<i8>(pos + <usize>(j * coords + k)) - (2 * ((u >> (bits * k)) & mask) + 1);
        d2 += d * d;
      }
      store<i32>(DIST + (<usize>j << 2), d2);
    }
  }
}

function build(lattice: i32): void {
  const size = gridSize(lattice);
  const three = is3bit(lattice);
  const coords = three ? 4 : 8;
  const bits = three ? 3 : 2;
  const kmapSize = three ? KMAP_3BIT : KMAP_2BIT;
  const nwant = distancesWanted(lattice);
  const pos = positionsTable(lattice);
  const map = mapTable(lattice);
  const nbr = neighbourTable(lattice);
  const capacity = neighbourCapacity(lattice);
  const codes = codesOf(lattice);
  const mask = (1 << bits) - 1;
  for (let i = 0; i < size; i++) {
    const code = <i32>load<u16>(codes + (<usize>i << 1));
    for (let k = 0; k < coords; k++) store<i8>(pos + <usize>(i * coords + k), <i8>(2 * ((code >> (bits * k)) & mask) + 1));
  }
  for (let u = 0; u < kmapSize; u++) store<i32>(map + (<usize>u << 2), -1);
  for (let i = 0; i < size; i++) store<i32>(map + (<usize>load<u16>(codes + (<usize>i << 1)) << 2), i);
  const maxD2 = three ? 784 : MAX_D2;
  let counter = 0;
  for (let u = 0; u < kmapSize; u++) {
    if (load<i32>(map + (<usize>u << 2)) >= 0) continue;
    distances(u, size, coords, bits, pos);
    memory.fill(SEEN, 0, <usize>(maxD2 + 1) << 2);
    for (let j = 0; j < size; j++) store<i32>(SEEN + (<usize>load<i32>(DIST + (<usize>j << 2)) << 2), 1);
    store<i32>(map + (<usize>u << 2), -(counter + 1));
    const start = counter++;
    let n = 0;
    let have = 0;
    for (let d = 0; d <= maxD2 && have < nwant; d++) {
      if (load<i32>(SEEN + (<usize>d << 2)) == 0) continue;
      have++;
      for (let j = 0; j < size; j++) {
        if (load<i32>(DIST + (<usize>j << 2)) != d) continue;
        if (counter >= capacity) unreachable();
        store<u16>(nbr + (<usize>counter << 1), <u16>j);
        counter++;
        n++;
      }
    }
    store<u16>(nbr + (<usize>start << 1), <u16>n);
  }
  if (counter != capacity) unreachable();
}

@inline function ensureBuilt(lattice: i32): void {
  if ((built & (1 << lattice)) == 0) {
    build(lattice);
    built |= 1 << lattice;
  }
}

/** The grid as ggml's quantizers see it: i8 positions 2l+1, 8 (IQ2/IQ1) or 4 (IQ3) per point. */
export function latticePositions(lattice: i32): usize {
  ensureBuilt(lattice);
  return positionsTable(lattice);
}

/** kmap: i32 per packed code word (2 bits × 8 or 3 bits × 4 of the levels l). */
export function latticeMap(lattice: i32): usize {
  ensureBuilt(lattice);
  return mapTable(lattice);
}

/**
 * Base of the neighbour lists: for a code word u off the grid (map[u] < 0) its list starts at
 * u16 index -map[u] - 1 — the count, then the grid indices.
 */
export function latticeNeighbours(lattice: i32): usize {
  ensureBuilt(lattice);
  return neighbourTable(lattice);
}

/** The grid as dequantization uses it: one i8 level value per coordinate (8/25/43, 4…62, 1…15, −1/0/1). */
export function latticeValues(lattice: i32): usize {
  const v = valuesTable(lattice);
  if ((valuesBuilt & (1 << lattice)) == 0) {
    const three = is3bit(lattice);
    expandGrid(codesOf(lattice), levelsOf(lattice), gridSize(lattice), three ? 4 : 8, three ? 3 : 2, v);
    valuesBuilt |= 1 << lattice;
  }
  return v;
}
