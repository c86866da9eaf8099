// `hquant scan` without the evaluator: the single-layer edits as the planner sees them, the ranking
// and --top, and the table / chart it prints and writes.
import { describe, expect, it } from "vitest";
import { openModel } from "../src/gguf/reader.js";
import { mixtureHParams } from "../src/plan/hparams.js";
import { planModel } from "../src/plan/planner.js";
import { resolveSchedule } from "../src/plan/schedule.js";
import { rankRows, scanEdit, type ScanReport, type ScanRow } from "../src/scan/index.js";
import { scanChart, scanMarkdown } from "../src/scan/report.js";

const BASE = "models/tinyllama-16l-f16.gguf";

const row = (layer: number, kld: number, dPpl: number): ScanRow => ({
  layer, kld, dPpl, ppl: 100 + dPpl, pplErr: 1, kldErr: 0.001, topTokenPct: 90 - layer, bytes: 1000,
});

function report(rows: ScanRow[], extra: Partial<ScanReport> = {}): ScanReport {
  return {
    base: { file: BASE, ppl: 100, pplErr: 1, layers: 4 },
    op: "delete",
    ftype: "F16",
    text: "t.txt",
    ctx: 256,
    chunks: 2,
    positions: 254,
    rows,
    ...extra,
  };
}

describe("scan edits", () => {
  it("delete i and duplicate i (after itself) plan 15 and 17 layers with the right sources", async () => {
    const model = await openModel(BASE);
    const n = mixtureHParams(model.kv).nLayer;
    const del = planModel(model, resolveSchedule({ ftype: "F16", surgery: scanEdit("delete", 3) }, n, "scan"));
    expect(del.hparams.nLayer).toBe(15);
    expect(del.surgery!.tensors.find((t) => t.name === "blk.3.attn_q.weight")!.inputs).toEqual(["blk.4.attn_q.weight"]);
    const dup = planModel(model, resolveSchedule({ ftype: "F16", surgery: scanEdit("duplicate", 3) }, n, "scan"));
    expect(dup.hparams.nLayer).toBe(17);
    expect(dup.surgery!.tensors.find((t) => t.name === "blk.4.attn_q.weight")!.inputs).toEqual(["blk.3.attn_q.weight"]);
    expect(dup.surgery!.tensors.find((t) => t.name === "blk.5.attn_q.weight")!.inputs).toEqual(["blk.4.attn_q.weight"]);
    expect(dup.surgery!.tensors.some((t) => t.computed)).toBe(false);
  });
});

describe("ranking", () => {
  const rows = [row(0, 3.2, 3000), row(1, 0.01, 2), row(2, 0.01, -1), row(3, 0.5, 20)];
  it("orders by KLD, then ΔPPL, least harmful first; --top keeps the best K", () => {
    expect(rankRows(rows).map((r) => r.layer)).toEqual([2, 1, 3, 0]);
    expect(rankRows(rows, 2).map((r) => r.layer)).toEqual([2, 1]);
    expect(rankRows(rows, 10).length).toBe(4);
  });

  it("prints one markdown row per edit, signed ΔPPL, and the reference row for a quantized scan", () => {
    const md = scanMarkdown(report(rankRows(rows), { ftype: "Q4_K_M", reference: { ...row(9, 0.02, 1.5) } })).split("\n");
    expect(md[2]).toBe("| rank | edit | PPL | ΔPPL | KLD | same top % |");
    expect(md[4]).toBe("| 1 | delete 2 | 99.0000 ± 1.0000 | −1.0000 | 0.010000 ± 0.001000 | 88.00 |");
    expect(md[7]).toBe("| 4 | delete 0 | 3100.0000 ± 1.0000 | +3000.0000 | 3.200000 ± 0.001000 | 90.00 |");
    expect(md[8]).toBe("| — | none (Q4_K_M) | 101.5000 ± 1.0000 | +1.5000 | 0.020000 ± 0.001000 | 81.00 |");
  });

  it("charts one bar per layer in layer order on a log scale, the least harmful quarter in green", () => {
    const svg = scanChart(report(rankRows(rows)));
    const bars = [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" [^>]*fill="#(\w+)"><title>delete (\d+):/g)];
    expect(bars.map((b) => Number(b[4]))).toEqual([0, 1, 2, 3]);
    expect(bars.map((b) => b[3])).toEqual(["e76f51", "e76f51", "2a9d8f", "e76f51"]);
    // taller bar (smaller y) for more harm; equal KLD, equal height
    const ys = bars.map((b) => Number(b[2]));
    expect(ys[0]).toBeLessThan(ys[3]!);
    expect(ys[3]).toBeLessThan(ys[1]!);
    expect(ys[1]).toBe(ys[2]);
    // decades 0.01 … 10
    for (const tick of ["0.01", "0.1", "1", "10"]) expect(svg).toContain(`text-anchor="end">${tick}</text>`);
  });
});
