// The lattice tables ggml's IQ quantizers search (iq2xs_init_impl for the IQ2 and IQ1S grids,
// iq3xs_init_impl for the IQ3 grids), built once per instance on first use:
//   positions   one i8 per coordinate: 2l+1 for level code l (the grid as the quantizers see it)
//   map         one i32 per packed code word u (kmapSize of them): the grid index when u is a grid
//               point, else -(offset+1) with neighbours[offset] = n followed by n grid indices
//   neighbours  u16 lists: for every u off the grid, the grid points in its nwant nearest
//               distinct squared distances, ordered by (distance, index); 2-bit code words
//               with a level 3 get none (map NO_LIST): ggml builds theirs, but its quantizers
//               clamp every level to 0…2 and never read them
// ggml sorts all (distance, index) pairs with qsort; the order is total, so taking the distance
// buckets in ascending order and each bucket by ascending index gives the same lists without a
// sort. Kernels allocate nothing, so every table is static, sized for its lattice (the neighbour
// totals are fixed by the grids; the build traps if one differs).
import { expandGrid } from "./iq-grid";
import {
  IQ1S_CODES, IQ1S_LEVELS, IQ2S_CODES, IQ2S_LEVELS, IQ2XS_CODES, IQ2XS_LEVELS, IQ2XXS_CODES, IQ2XXS_LEVELS,
  IQ3S_CODES, IQ3S_LEVELS, IQ3XXS_CODES, IQ3XXS_LEVELS,
} from "./iq-grids";

export const LATTICE_IQ2XXS: i32 = 0;
export const LATTICE_IQ2XS: i32 = 1;
export const LATTICE_IQ2S: i32 = 2;
/** Shared by iq1_s and iq1_m. */
export const LATTICE_IQ1S: i32 = 3;
export const LATTICE_IQ3XXS: i32 = 4;
export const LATTICE_IQ3S: i32 = 5;

// Per lattice: grid points, 3-bit coordinates?, nwant (how many distinct nearest distances a
// neighbour list spans, as ggml's init), u16 entries of its neighbour table (lists plus their
// counts: fixed by the grid), and where its tables start in the shared static buffers below.
const SPEC_FIELDS = 8;
const F_SIZE = 0, F_THREE = 1, F_NWANT = 2, F_NB = 3, F_POS = 4, F_MAP = 5, F_NBR = 6, F_VAL = 7;
const SPEC = memory.data<i32>([
  //  size three nwant neighbours positions map     neighbours values   (offsets: bytes, i32s, u16s, bytes)
  256, 0, 2, 119462, 0, 0, 0, 0, // IQ2XXS
  512, 0, 2, 187770, 2048, 43692, 119462, 2048, // IQ2XS
  1024, 0, 1, 50253, 6144, 87384, 307232, 6144, // IQ2S
  2048, 0, 3, 332234, 14336, 131076, 357485, 14336, // IQ1S
  256, 1, 2, 22825, 30720, 174768, 689719, 30720, // IQ3XXS
  512, 1, 3, 28317, 31744, 178864, 712544, 31744, // IQ3S
]);
// kmap sizes: every code word of 8 two-bit (IQ2/IQ1) or 4 three-bit (IQ3) coordinates
const KMAP_2BIT: i32 = 43692;
const KMAP_3BIT: i32 = 4096;
const POSITIONS = memory.data(33792, 8);
const VALUES = memory.data(33792, 8);
const MAPS = memory.data(182960 * 4, 4);
const NEIGHBOURS = memory.data(740861 * 2, 2);

@inline function spec(lattice: i32, field: i32): i32 {
  return load<i32>(SPEC + (<usize>(lattice * SPEC_FIELDS + field) << 2));
}

// scratch of the build: one squared distance per grid point, and which distances occur
const DIST = memory.data(2048 * 4, 16);
const MAX_D2_2BIT: i32 = 8 * 36; // 8 coordinates, |Δ| ≤ 6
const MAX_D2_3BIT: i32 = 4 * 196; // 4 coordinates, |Δ| ≤ 14
const SEEN = memory.data((MAX_D2_3BIT + 1) * 4, 4);

/** map value of a code word that has no neighbour list (a 2-bit word with a level 3). */
export const NO_LIST: i32 = i32.MIN_VALUE;

let built: i32 = 0; // bit per lattice
let valuesBuilt: i32 = 0;

@inline function gridSize(lattice: i32): i32 { return spec(lattice, F_SIZE); }
@inline function is3bit(lattice: i32): bool { return spec(lattice, F_THREE) != 0; }
@inline function distancesWanted(lattice: i32): i32 { return spec(lattice, F_NWANT); }
@inline function neighbourCapacity(lattice: i32): i32 { return spec(lattice, F_NB); }
@inline function positionsTable(lattice: i32): usize { return POSITIONS + <usize>spec(lattice, F_POS); }
@inline function mapTable(lattice: i32): usize { return MAPS + (<usize>spec(lattice, F_MAP) << 2); }
@inline function neighbourTable(lattice: i32): usize { return NEIGHBOURS + (<usize>spec(lattice, F_NBR) << 1); }
@inline function valuesTable(lattice: i32): usize { return VALUES + <usize>spec(lattice, F_VAL); }

function codesOf(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return IQ2XXS_CODES;
    case LATTICE_IQ2XS: return IQ2XS_CODES;
    case LATTICE_IQ2S: return IQ2S_CODES;
    case LATTICE_IQ1S: return IQ1S_CODES;
    case LATTICE_IQ3XXS: return IQ3XXS_CODES;
    default: return IQ3S_CODES;
  }
}

function levelsOf(lattice: i32): usize {
  switch (lattice) {
    case LATTICE_IQ2XXS: return IQ2XXS_LEVELS;
    case LATTICE_IQ2XS: return IQ2XS_LEVELS;
    case LATTICE_IQ2S: return IQ2S_LEVELS;
    case LATTICE_IQ1S: return IQ1S_LEVELS;
    case LATTICE_IQ3XXS: return IQ3XXS_LEVELS;
    default: return IQ3S_LEVELS;
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
  const maxD2 = three ? MAX_D2_3BIT : MAX_D2_2BIT;
  let counter = 0;
  for (let u = 0; u < kmapSize; u++) {
    if (load<i32>(map + (<usize>u << 2)) >= 0) continue;
    // a 2-bit code word with a level 3 is never looked up (the quantizers clamp l to 0…2): no list
    if (!three && (u & (u >> 1) & 0x5555) != 0) {
      store<i32>(map + (<usize>u << 2), NO_LIST);
      continue;
    }
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
