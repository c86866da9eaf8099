// The low-end hybrid preset (presets/IQ2_H.json): below 3 bits per weight on the bundled model,
// between the uniform IQ2_XS and IQ2_M files it mixes, at any depth the IQ3_XXS/IQ2_M ends and the
// IQ2_S/IQ2_XS middle, and, like the IQ2 file types, refused without an importance matrix.
import { describe, expect, it } from "vitest";
import { readHeaderAt } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { loadPreset } from "../src/plan/options.js";
import { planModel, type ResolvedSchedule } from "../src/plan/planner.js";
import { resolveSchedule, uniformSchedule } from "../src/plan/schedule.js";
import { BUNDLED_MODEL } from "./lowbit-models.js";

describe("IQ2_H preset", () => {
  it("is below 3 bpw on the bundled model, between uniform IQ2_XS and IQ2_M", async () => {
    const h = await readHeaderAt(BUNDLED_MODEL);
    const n = mixtureHParams(h.kv).nLayer;
    const bpw = (s: ResolvedSchedule) => {
      const p = planModel(h, { ...s, imatrix: "imatrix.gguf" });
      return (p.tensorBytes * 8) / p.elements;
    };
    const hybrid = bpw(resolveSchedule(loadPreset("IQ2_H"), n, "IQ2_H"));
    expect(hybrid).toBeLessThan(3);
    expect(hybrid).toBeGreaterThan(bpw(uniformSchedule("IQ2_XS", n)));
    expect(hybrid).toBeLessThan(bpw(uniformSchedule("IQ2_M", n)));
  });

  it("keeps IQ3_XXS at both ends and IQ2_S/IQ2_XS in the middle at any depth", () => {
    for (const n of [4, 16, 28, 32, 80]) {
      const layers = resolveSchedule(loadPreset("IQ2_H"), n, "p").layerFtypes;
      expect([layers[0], layers[n - 1]]).toEqual(["IQ3_XXS", "IQ3_XXS"]);
      const middle = new Set(layers.slice(Math.ceil(n / 8), Math.floor((3 * n) / 4)));
      for (const f of middle) expect(["IQ2_S", "IQ2_XS"]).toContain(f);
      if (n >= 16) expect(middle.size).toBe(2);
    }
  });

  it("needs an importance matrix", async () => {
    const h = await readHeaderAt(BUNDLED_MODEL);
    const plan = planModel(h, resolveSchedule(loadPreset("IQ2_H"), mixtureHParams(h.kv).nLayer, "IQ2_H"));
    expect(plan.tensors.filter((t) => t.requiresImatrix).map((t) => t.ftype)).toContain("IQ3_XXS");
    expect(plan.fileType.name).toBe("IQ2_S");
  });
});
