// The model card (DIR/README.md) and its chart: Hub front matter (so the Hub files the repository
// under the base model's quantizations), the table of files with their measured quality, the
// KLD-vs-size chart beside it, how each file was made, and how to run them. The front matter is
// written by hand: a handful of keys whose values are JSON strings, which YAML reads as they are.
import path from "node:path";
import { renderChart } from "../eval/chart.js";
import { markPareto, type BenchRow } from "../eval/report.js";
import { writeFileAtomic } from "../eval/run.js";
import type { Manifest, ManifestFile } from "./resume.js";
import { shellLine } from "./plan.js";

export const CHART_NAME = "kld-vs-size.svg";

export interface CardOptions {
  /** the Hub id (or name) of the base model */
  baseModel: string;
  quantizedBy: string;
  /** the Hub repository the files are meant for (usage lines) */
  repo: string;
  /** the release command as typed */
  command: string;
  /** how the imatrix and the tuned schedules were made (command lines) */
  imatrixCommand?: string;
  tuneCommand?: string;
  /** files in the card's order (the request's) */
  order: readonly string[];
}

const mib = (n: number) => (n / 1048576).toFixed(2);
const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "—");
const fmtSmall = (v: number) => (!Number.isFinite(v) ? "—" : v === 0 ? "0" : v < 0.001 ? v.toExponential(2) : v.toFixed(5));

/** The front matter: JSON strings are YAML double-quoted scalars. */
export function frontMatter(o: CardOptions): string {
  const q = JSON.stringify;
  return ["---", `base_model: ${q(o.baseModel)}`, "base_model_relation: quantized", `quantized_by: ${q(o.quantizedBy)}`, "tags:", "- gguf", "- llama.cpp", "- hquant", "---", ""].join("\n");
}

const fileName = (f: ManifestFile) => f.files[0]!.name;
const fileBytes = (f: ManifestFile) => f.files.reduce((a, x) => a + x.bytes, 0);

function table(m: Manifest, files: ManifestFile[]): string {
  const evaluated = m.base !== undefined;
  const head = evaluated
    ? ["| file | type | imatrix | size MiB | bpw | PPL | mean KLD | KLD p99 | same top % | description |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    : ["| file | type | imatrix | size MiB | bpw | description |", "|---|---|---|---:|---:|---|"];
  const lines = [...head];
  if (evaluated) {
    const b = m.base!;
    lines.push(`| ${path.basename(b.file)} (base) | | | ${mib(b.bytes)} | ${fmt(b.bpw, 2)} | ${fmt(b.ppl, 4)} ± ${fmt(b.pplErr, 4)} | 0 | 0 | 100 | the unquantized model |`);
  }
  const rows = [...files].sort((a, b) => fileBytes(a) - fileBytes(b));
  for (const f of rows) {
    const r = f.eval?.row;
    const name = f.files.length > 1 ? `${fileName(f)} (+${f.files.length - 1} shards)` : fileName(f);
    const desc = f.description.replace(/\|/g, "\\|");
    const bpw = r ? fmt(r.bpw, 2) : "";
    if (evaluated && r) {
      lines.push(`| ${name} | ${f.key} | ${f.imatrix ? "yes" : "no"} | ${mib(fileBytes(f))} | ${bpw} | ${fmt(r.ppl, 4)} | ${fmtSmall(r.kld)} | ${fmtSmall(r.kld99)} | ${fmt(r.topTokenPct, 2)} | ${desc} |`);
    } else if (evaluated) {
      lines.push(`| ${name} | ${f.key} | ${f.imatrix ? "yes" : "no"} | ${mib(fileBytes(f))} | | | | | | ${desc} |`);
    } else {
      lines.push(`| ${name} | ${f.key} | ${f.imatrix ? "yes" : "no"} | ${mib(fileBytes(f))} | | ${desc} |`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The card's markdown. */
export function renderCard(m: Manifest, o: CardOptions): string {
  const files = o.order.map((k) => m.files[k]).filter((f): f is ManifestFile => f !== undefined);
  const out: string[] = [frontMatter(o), `# ${m.name} GGUF`, ""];
  out.push(`GGUF quantizations of **${o.baseModel}**, made with hquant ${m.hquant} in one pass over \`${path.basename(m.input)}\`. Every file was loaded in llama.cpp before it was called done: its tensor count, types and metadata checked against the plan, a short prompt decoded, every logit finite.`, "");
  out.push("## Files", "");
  if (m.evaluation) {
    out.push(`Measured against the base model on \`${m.evaluation.text}\` (context ${m.evaluation.ctx}, ${m.evaluation.chunks} chunks, ${m.evaluation.positions} scored tokens) with hquant's llama-perplexity-compatible evaluator. KLD: KL-divergence of the file's next-token distribution from the base model's (lower is closer); same top: how often both predict the same token.`, "");
  }
  out.push(table(m, files));
  if (m.evaluation) out.push(`![KL-divergence against size](${CHART_NAME})`, "");
  out.push("Names: `<Name>-<TYPE>.gguf`; `-imat` is added when the file was quantized with the importance matrix shipped here (`imatrix.gguf`). Files larger than the Hub's per-file limit are split in llama.cpp's `gguf-split` layout, `-00001-of-0000N.gguf`; llama.cpp loads the first shard.", "");
  out.push("## How they were made", "", "The whole release:", "", "```sh", o.command, "```", "");
  if (o.imatrixCommand) out.push("The importance matrix (`imatrix.gguf`):", "", "```sh", o.imatrixCommand, "```", "");
  if (o.tuneCommand) out.push("The tuned schedules (`schedules/`):", "", "```sh", o.tuneCommand, "```", "");
  out.push("Each file alone, byte for byte the same:", "", "```sh");
  for (const f of files) out.push(shellLine(["hquant", ...f.build]));
  out.push("```", "");
  const scheduled = files.filter((f) => f.schedule);
  if (scheduled.length > 0) {
    out.push("Schedules (which type each tensor gets):", "");
    for (const f of scheduled) out.push(`- ${f.key}: [${f.schedule}](${f.schedule})`);
    out.push("");
  }
  const example = files.find((f) => f.key === "Q4_K_M") ?? files[0];
  if (example) {
    const name = fileName(example);
    out.push("## Use", "", "llama.cpp:", "", "```sh", `llama-cli -m ./${name} -p "Once upon a time"`, `llama-cli --hf-repo ${o.repo} --hf-file ${name} -p "Once upon a time"`, "```", "");
    out.push("Ollama (a `Modelfile` beside the file):", "", "```", `FROM ./${name}`, "```", "", "```sh", `ollama create ${m.name.toLowerCase()} -f Modelfile`, `ollama run ${m.name.toLowerCase()}`, "```", "");
  }
  return out.join("\n");
}

/** Writes README.md and, when the files were evaluated, the chart beside it. */
export function writeCard(dir: string, m: Manifest, o: CardOptions): string[] {
  const written = [path.join(dir, "README.md")];
  writeFileAtomic(written[0]!, renderCard(m, o));
  const rows = o.order.map((k) => m.files[k]?.eval?.row).filter((r): r is BenchRow => r !== undefined);
  if (m.evaluation && rows.length > 0) {
    const chart = path.join(dir, CHART_NAME);
    writeFileAtomic(chart, renderChart(markPareto(rows), { metric: "kld", title: `${m.name} · ${m.evaluation.text} · ctx ${m.evaluation.ctx}` }));
    written.push(chart);
  }
  return written;
}
