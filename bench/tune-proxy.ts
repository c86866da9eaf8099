// Proxy mode's strength on the bundled model, quickly: one proxy-mode tune (the imatrix, the
// calibration text, ctx 256) at a budget, its file evaluated on eval-test.txt, against the standard
// file types' curve recorded by bench/tune.ts (docs/tune/standard.json: those files are byte-equal
// to llama-quantize's, so their KLD is a fixed yardstick; bench/tune.ts --method proxy rebuilds and
// re-evaluates them all). Prints the KLD below the curve and the time.
//
//   npx tsx bench/tune-proxy.ts [--budget IQ4_XS] [--chunks 12] [--proxy-rows N] [--max-evals N]
//                               [--standard docs/tune/standard.json] [--out DIR] [--cache-dir DIR] [--threads 2]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { BenchRow } from "../src/eval/report.js";
import { parseBudgets } from "../src/tune/budget.js";
import { tune } from "../src/tune/index.js";
import { acceptance } from "../src/tune/report.js";

const PRESETS = ["IQ2_H", "Q3_K_H", "Q4_K_H", "Q5_K_H", "Q6_K_H", "Q4_K_QKV16"];
const { values } = parseArgs({
  options: {
    budget: { type: "string", default: "IQ4_XS" },
    chunks: { type: "string", default: "12" },
    "proxy-rows": { type: "string" },
    "max-evals": { type: "string" },
    standard: { type: "string", default: "docs/tune/standard.json" },
    out: { type: "string", default: path.join(os.tmpdir(), "hquant-bench-tune-proxy") },
    "cache-dir": { type: "string", default: path.join(os.tmpdir(), "hquant-bench-cache") },
    threads: { type: "string", default: "2" },
  },
});
const started = Date.now();
const log = (s: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${s}\n`);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");
log(`load: ${load()} on ${os.availableParallelism()} cores`);
// presets are not file types: the curve is the file types' (the recorded rows carry no preset field)
const standard = (JSON.parse(fs.readFileSync(values.standard!, "utf8")) as { rows: BenchRow[] }).rows.map((r) => ({
  ...r,
  preset: PRESETS.includes(r.label.replace(/-imat$/, "")) ? r.label.replace(/-imat$/, "") : undefined,
}));
const r = await tune({
  base: "models/tinyllama-16l-f16.gguf",
  text: fs.readFileSync("test/fixtures/calib.txt", "utf8"),
  textName: "calib.txt",
  evalText: fs.readFileSync("test/fixtures/eval-test.txt", "utf8"),
  evalTextName: "eval-test.txt",
  budgets: parseBudgets(values.budget!),
  imatrix: "test/fixtures/imatrix/imatrix.gguf",
  method: "proxy",
  outDir: values.out!,
  ctx: 256,
  chunks: Number(values.chunks),
  threads: Number(values.threads),
  cacheDir: values["cache-dir"]!,
  proxyRows: values["proxy-rows"] ? Number(values["proxy-rows"]) : undefined,
  maxEvals: values["max-evals"] ? Number(values["max-evals"]) : undefined,
  onProgress: (p) => {
    if (p.stage !== "proxy" && p.stage !== "measure") log(`${p.stage} ${p.done}/${p.total} ${p.detail}`);
  },
  onInfo: log,
});
const a = acceptance(r, standard);
const s = r.seconds;
for (const c of a.checks) {
  process.stdout.write(
    `proxy mode at ${c.budget} (${c.bytes} bytes): eval-test KLD ${c.kld.toFixed(6)}, standard curve ${c.curveKld.toFixed(6)}: ${(100 * c.belowCurve).toFixed(1)} % below ` +
      `(goal ≥ 20 %: ${c.belowCurve >= 0.2 ? "met" : "not met"}); beaten by ${c.beatenBy.join(", ") || "none"}\n`,
  );
}
process.stdout.write(
  `${r.measurements.length} measurements (${r.measuredNow} made now), chosen ${r.budgets.map((b) => b.chosen.variant).join(", ")} of ${r.budgets.map((b) => b.candidates.map((c) => c.variant).join(" / ")).join(", ")}\n` +
    `seconds: proxy ${s.proxy.toFixed(1)}, measure ${s.measure.toFixed(1)}, allocate ${s.allocate.toFixed(1)}, verify ${s.verify.toFixed(1)}, evaluate ${s.evaluate.toFixed(1)}, total ${s.total.toFixed(1)}; load ${load()}\n`,
);
