// The committed IQ grids (kernels/iq-grids.ts) are what llama.cpp's own dequantize_row_* gives for
// every grid index: regenerated from the oracle and compared with the file, text for text.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { iqGridsSource, readIqGrids } from "../scripts/gen-iq-grids.js";

describe("IQ grids", () => {
  const grids = readIqGrids();

  it("kernels/iq-grids.ts is the generator's output from the live oracle", () => {
    const committed = fs.readFileSync(new URL("../kernels/iq-grids.ts", import.meta.url), "utf8");
    expect(committed).toBe(iqGridsSource(grids));
  });

  it("has the sizes of ggml's grids and distinct points", () => {
    expect(grids.map((g) => [g.name, g.size, g.levels.length])).toEqual([
      ["IQ2XXS", 256, 3], ["IQ2XS", 512, 3], ["IQ2S", 1024, 3], ["IQ3XXS", 256, 8], ["IQ3S", 512, 8], ["IQ1S", 2048, 3],
    ]);
    for (const g of grids) expect(new Set(g.codes).size).toBe(g.size);
  });
});
