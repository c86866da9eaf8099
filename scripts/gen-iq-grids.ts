// Generates kernels/iq-grids.ts: the lattice grids of the IQ1/IQ2/IQ3 formats, read back from
// llama.cpp itself. For each grid index a block is written whose scale makes the dequantized value
// the grid coordinate times an exact power of two (signs off, delta known), and the prebuilt
// libggml-base's dequantize_row_<type> is asked for it; nothing is copied from the source.
// Each grid point is stored as its coordinates' level codes (2 or 3 bits each, first coordinate in
// the low bits) beside the few levels the grid uses, as ggml's iq*_init_impl expands them.
//
// usage: npx tsx scripts/gen-iq-grids.ts > kernels/iq-grids.ts
import { fileURLToPath } from "node:url";
import { GGMLType, rowSize } from "../src/gguf/ggml-types.js";
import { oracleDequantize } from "../test/oracle/ggml.js";

export interface IqGrid {
  /** Name of the constants in kernels/iq-grids.ts. */
  name: string;
  /** Number of grid points. */
  size: number;
  /** Coordinates per point. */
  coords: number;
  /** Bits per coordinate code. */
  bits: number;
  /** The distinct coordinate values, ascending; codes index into it. */
  levels: number[];
  /** One code word per point. */
  codes: number[];
}

const F16_ONE = 0x3c00;

/**
 * Coordinates of every grid point of `type`: writes blocks with one index per group of coordinates
 * and reads the dequantized values back. `place(block, group, index)` sets up group `group` (0-based
 * within the block) to use `index`; returns the scale each value is multiplied by and the offset added.
 */
function readGrid(
  type: GGMLType, size: number, coords: number, groupsPerBlock: number,
  place: (block: Uint8Array, group: number, index: number) => void, scale: number, offset: number,
): number[][] {
  const blockBytes = rowSize(type, 256);
  const nblocks = Math.ceil(size / groupsPerBlock);
  const bytes = new Uint8Array(blockBytes * nblocks);
  const view = new DataView(bytes.buffer);
  for (let b = 0; b < nblocks; b++) {
    view.setUint16(b * blockBytes, F16_ONE, true);
    const block = bytes.subarray(b * blockBytes, (b + 1) * blockBytes);
    for (let g = 0; g < groupsPerBlock; g++) place(block, g, (b * groupsPerBlock + g) % size);
  }
  const values = oracleDequantize(type, bytes, nblocks, 256);
  const points: number[][] = [];
  for (let i = 0; i < size; i++) {
    const b = Math.floor(i / groupsPerBlock), g = i % groupsPerBlock;
    const at = b * 256 + g * coords;
    points.push(Array.from(values.subarray(at, at + coords), (v) => (v - offset * scale) / scale));
  }
  return points;
}

function encode(name: string, coords: number, bits: number, points: number[][]): IqGrid {
  const levels = [...new Set(points.flat())].sort((a, b) => a - b);
  if (levels.length > 1 << bits) throw new Error(`${name}: ${levels.length} levels do not fit ${bits} bits`);
  for (const l of levels) if (!Number.isInteger(l)) throw new Error(`${name}: level ${l} is not an integer`);
  const codes = points.map((p) => p.reduce((w, v, j) => w | (levels.indexOf(v) << (bits * j)), 0));
  return { name, size: points.length, coords, bits, levels, codes };
}

const u16 = (b: Uint8Array, at: number, v: number) => {
  b[at] = v & 0xff;
  b[at + 1] = (v >> 8) & 0xff;
};

/** Every IQ grid, read from the oracle. */
export function readIqGrids(): IqGrid[] {
  // block layouts (ggml-common.h): d is the first f16; scale nibbles 0 give db = 0.125 (IQ2) / 0.25 (IQ3_XXS) / 1 (IQ3_S, IQ1_S)
  const iq2xxs = readGrid(GGMLType.IQ2_XXS, 256, 8, 32, (blk, g, idx) => {
    // qs (u16[32] after d): per 32 values two u32, the first holding four 8-bit indices; signs/scale 0
    blk[2 + 8 * (g >> 2) + (g & 3)] = idx;
  }, 0.125, 0);
  const iq2xs = readGrid(GGMLType.IQ2_XS, 512, 8, 32, (blk, g, idx) => u16(blk, 2 + 2 * g, idx), 0.125, 0);
  const iq2s = readGrid(GGMLType.IQ2_S, 1024, 8, 32, (blk, g, idx) => {
    // qs[32] low bits, then signs[32], qh[8] (2 high bits per group), scales[8]
    blk[2 + g] = idx & 0xff;
    blk[2 + 64 + (g >> 2)] |= (idx >> 8) << (2 * (g & 3));
  }, 0.125, 0);
  const iq3xxs = readGrid(GGMLType.IQ3_XXS, 256, 4, 64, (blk, g, idx) => {
    blk[2 + g] = idx;
  }, 0.25, 0);
  const iq3s = readGrid(GGMLType.IQ3_S, 512, 4, 64, (blk, g, idx) => {
    // qs[64] low bits, qh[8] (1 high bit per group), signs[32], scales[4]
    blk[2 + g] = idx & 0xff;
    blk[2 + 64 + (g >> 3)] |= (idx >> 8) << (g & 7);
  }, 1, 0);
  const iq1s = readGrid(GGMLType.IQ1_S, 2048, 8, 32, (blk, g, idx) => {
    // qs[32] low bits, qh u16[8]: 3 high bits per group, scale bits 12-14 = 0 (dl = 1), bit 15 = 0 (delta +1/8)
    blk[2 + g] = idx & 0xff;
    const at = 2 + 32 + 2 * (g >> 2);
    u16(blk, at, (blk[at]! | (blk[at + 1]! << 8)) | ((idx >> 8) << (3 * (g & 3))));
  }, 1, 0.125);
  return [
    encode("IQ2XXS", 8, 2, iq2xxs),
    encode("IQ2XS", 8, 2, iq2xs),
    encode("IQ2S", 8, 2, iq2s),
    encode("IQ3XXS", 4, 3, iq3xxs),
    encode("IQ3S", 4, 3, iq3s),
    encode("IQ1S", 8, 2, iq1s),
  ];
}

/** The AssemblyScript source of kernels/iq-grids.ts. */
export function iqGridsSource(grids: IqGrid[]): string {
  const lines = [
    "// Generated by scripts/gen-iq-grids.ts from llama.cpp's dequantize_row_* (do not edit).",
    "// <NAME>_LEVELS: the coordinate values a grid uses, ascending. <NAME>_CODES: one u16 per grid",
    "// point, its coordinates' indices into the levels, `bits` each, first coordinate lowest.",
  ];
  for (const g of grids) {
    lines.push("", `// ${g.name}: ${g.size} points of ${g.coords} coordinates, ${g.bits} bits each`);
    lines.push(`export const ${g.name}_SIZE: i32 = ${g.size};`);
    lines.push(`export const ${g.name}_LEVELS: usize = memory.data<i8>([${g.levels.join(", ")}]);`);
    lines.push(`export const ${g.name}_CODES: usize = memory.data<u16>([`);
    for (let i = 0; i < g.codes.length; i += 16) lines.push("  " + g.codes.slice(i, i + 16).join(", ") + ",");
    lines.push("]);");
  }
  return lines.join("\n") + "\n";
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(iqGridsSource(readIqGrids()));
