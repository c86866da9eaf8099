// The tune report's acceptance arithmetic: a tuned file must beat every standard file / preset
// that is not larger; the standard types' curve is their Pareto front interpolated in log KLD.
import { describe, expect, it } from "vitest";
import type { BenchRow } from "../src/eval/report.js";
import type { TuneResult } from "../src/tune/index.js";
import { acceptance, standardCurve, tunedRows } from "../src/tune/report.js";

const row = (label: string, bytes: number, kld: number, preset?: string): BenchRow => ({
  label, file: `${label}.gguf`, bytes, bpw: bytes / 1e6, ppl: 1, pplErr: 0, kld, kld99: 2 * kld, kldMax: 3 * kld, topTokenPct: 90, ftype: label, imatrix: false, ...(preset && { preset }),
});

function result(tuned: { text: string; bytes: number; kld: number }[]): TuneResult {
  return {
    imatrix: undefined,
    budgets: tuned.map((t) => ({
      budget: { kind: "bytes", bytes: t.bytes, text: t.text },
      chosen: { variant: "measured", predictedKld: t.kld, fileBytes: t.bytes, bpw: t.bytes / 1e6 },
      candidates: [],
      schedule: { ftype: "Q4_K_M" },
      scheduleFile: `${t.text}.json`,
      types: {},
      eval: { ppl: 1, pplErr: 0, kld: t.kld, kldErr: 0, kld99: 0, kldMax: 0, topTokenPct: 95, positions: 1 },
      heldOut: true,
    })),
  } as unknown as TuneResult;
}

describe("tune acceptance", () => {
  const standard = [row("A", 100, 0.04), row("B", 200, 0.01), row("C", 400, 0.0025), row("H", 150, 0.005, "hybrid"), row("D", 300, 0.02)];

  it("interpolates the standard types' Pareto front in log KLD (presets and dominated types left out)", () => {
    expect(standardCurve(standard, 100)).toBeCloseTo(0.04, 12);
    expect(standardCurve(standard, 150)).toBeCloseTo(0.02, 12); // geometric midpoint of 0.04 and 0.01
    expect(standardCurve(standard, 300)).toBeCloseTo(0.005, 12); // D is dominated by B
    expect(standardCurve(standard, 50)).toBe(0.04);
    expect(standardCurve(standard, 900)).toBe(0.0025);
  });

  it("requires each tuned file to beat every standard file and preset not larger than it", () => {
    const ok = acceptance(result([{ text: "x", bytes: 200, kld: 0.004 }]), standard);
    expect(ok.required).toBe(true);
    expect(ok.checks[0]!.beatenBy).toEqual([]);
    expect(ok.checks[0]!.belowCurve).toBeCloseTo(0.6, 12);
    // the preset H (smaller, KLD 0.005) beats a tuned file of KLD 0.006
    const bad = acceptance(result([{ text: "x", bytes: 200, kld: 0.004 }, { text: "y", bytes: 160, kld: 0.006 }]), standard);
    expect(bad.required).toBe(false);
    expect(bad.checks[1]!.beatenBy).toEqual(["H"]);
    expect(tunedRows(result([{ text: "y", bytes: 160, kld: 0.006 }]))[0]!.label).toBe("tuned y");
  });
});
