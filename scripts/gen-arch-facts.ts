// Generates src/plan/arch-facts.ts from a llama.cpp source tree: every architecture name llama.cpp
// knows (LLM_ARCH_NAMES), whether it has a model class (llama_model_mapping), and the
// hyper-parameters its load_arch_hparams reads unconditionally as required (ml.get_key /
// get_key_or_arr / get_arr / get_arr_n without `false`, at the top level of the function body or
// of a parent class's it calls). Conditional reads (inside if/switch) are left out on purpose: the
// table says only what is missing for certain.
//
// usage: npx tsx scripts/gen-arch-facts.ts LLAMA_CPP_SOURCE_DIR > src/plan/arch-facts.ts
import fs from "node:fs";
import path from "node:path";

const root = process.argv[2];
if (!root) {
  process.stderr.write("usage: gen-arch-facts.ts LLAMA_CPP_SOURCE_DIR\n");
  process.exit(2);
}
const read = (p: string) => fs.readFileSync(path.join(root, p), "utf8");

const archCpp = read("src/llama-arch.cpp");
function mapBlock(name: string): Map<string, string> {
  const start = archCpp.indexOf(`${name} = {`);
  const end = archCpp.indexOf("};", start);
  const out = new Map<string, string>();
  for (const m of archCpp.slice(start, end).matchAll(/\{\s*(LLM_\w+),\s*"([^"]*)"\s*\}/g)) out.set(m[1]!, m[2]!);
  return out;
}
const archNames = mapBlock("LLM_ARCH_NAMES");
const kvNames = mapBlock("LLM_KV_NAMES");

const modelCpp = read("src/llama-model.cpp");
const classOfArch = new Map<string, string>();
for (const m of modelCpp.matchAll(/case (LLM_ARCH_\w+):\s*return new (llama_model_\w+)\(params\);/g)) classOfArch.set(m[1]!, m[2]!);

const modelsH = read("src/models/models.h");
const parentOf = new Map<string, string>();
for (const m of modelsH.matchAll(/^struct (llama_model_\w+)\s*:\s*public (llama_model_\w+)/gm)) parentOf.set(m[1]!, m[2]!);

/** load_arch_hparams bodies by class. */
const bodies = new Map<string, string>();
for (const file of fs.readdirSync(path.join(root, "src/models"))) {
  if (!file.endsWith(".cpp")) continue;
  const text = read(`src/models/${file}`);
  for (const m of text.matchAll(/void (llama_model_\w+)::load_arch_hparams\([^)]*\)\s*\{/g)) {
    let depth = 1;
    let i = m.index! + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
    }
    bodies.set(m[1]!, text.slice(start, i - 1));
  }
}

/** The body with everything inside nested braces, comments and strings removed. */
function topLevel(body: string): string {
  const noComments = body.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "").replace(/"(?:[^"\\]|\\.)*"/g, '""');
  let out = "";
  let depth = 0;
  for (const ch of noComments) {
    if (ch === "{") depth++;
    if (depth === 0) out += ch;
    if (ch === "}" && --depth === 0) out += ";"; // a block ends the statement that owns it
  }
  // statements guarded by a brace-less if/else/for are conditional too
  return out
    .split(";")
    .filter((s) => !/^\s*(if|else|for|while|case|default)\b/.test(s.trim()) && !/\)\s*$/.test(s.trim().replace(/ml\.get_\w+\([^;]*\)$/, "")))
    .join(";");
}

function argsOf(call: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of call) {
    if (ch === "(" || ch === "{" || ch === "[") depth++;
    if (ch === ")" || ch === "}" || ch === "]") depth--;
    if (ch === "," && depth === 0) {
      args.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  if (cur.trim() !== "") args.push(cur.trim());
  return args;
}

/** Required keys read unconditionally by a class's load_arch_hparams (and the parents it calls). */
function requiredKeys(cls: string, seen = new Set<string>()): string[] {
  if (seen.has(cls)) return [];
  seen.add(cls);
  const body = bodies.get(cls);
  if (body === undefined) {
    const parent = parentOf.get(cls);
    return parent && parent !== "llama_model_base" ? requiredKeys(parent, seen) : [];
  }
  const top = topLevel(body);
  const keys: string[] = [];
  for (const stmt of top.split(";")) {
    const s = stmt.trim();
    // a || chain or a ternary: only its first call runs for certain
    const calls = [...s.matchAll(/(?:ml\.(get_key_or_arr|get_key|get_arr_n|get_arr)|(llama_model_\w+)::load_arch_hparams)\s*\(/g)];
    if (calls.length === 0) continue;
    const first = calls[0]!;
    if (first.index! > 0 && !/^(\w+\s*=\s*)?$/.test(s.slice(0, first.index!).trim())) continue;
    if (first[2]) {
      keys.push(...requiredKeys(first[2], seen));
      continue;
    }
    let depth = 0;
    let i = first.index! + first[0].length;
    const start = i;
    for (depth = 1; i < s.length && depth > 0; i++) {
      if (s[i] === "(") depth++;
      else if (s[i] === ")") depth--;
    }
    const args = argsOf(s.slice(start, i - 1));
    // the `required` flag is the last argument when given (after result, or after result and n)
    const required = args.length <= 2 || args[args.length - 1] !== "false";
    const kv = args[0]!;
    if (!required || !kv.startsWith("LLM_KV_")) continue;
    const name = kvNames.get(kv);
    if (name === undefined) throw new Error(`${cls}: unknown key ${kv}`);
    keys.push(name);
  }
  return [...new Set(keys)];
}

const lines: string[] = [];
lines.push("// Generated by scripts/gen-arch-facts.ts from llama.cpp's source (llama-arch.cpp, llama-model.cpp,");
lines.push("// src/models/*.cpp) — do not edit. Every architecture llama.cpp knows by name; `model: false` when");
lines.push("// llama_model_create has no class for it (\"unsupported model architecture\"); `required`: the");
lines.push("// hyper-parameters its load_arch_hparams reads unconditionally without a default (\"%s\" is the");
lines.push("// architecture name), beyond the context_length / embedding_length / block_count every one reads.");
lines.push("");
lines.push("export interface ArchFacts {");
lines.push("  readonly model: boolean;");
lines.push("  readonly required: readonly string[];");
lines.push("}");
lines.push("");
lines.push("export const LLAMA_CPP_ARCHITECTURES: Readonly<Record<string, ArchFacts>> = {");
for (const [id, name] of archNames) {
  if (id === "LLM_ARCH_UNKNOWN") continue;
  const cls = classOfArch.get(id);
  const required = cls ? requiredKeys(cls) : [];
  lines.push(`  ${JSON.stringify(name)}: { model: ${cls !== undefined}, required: ${JSON.stringify(required)} },`);
}
lines.push("};");
process.stdout.write(lines.join("\n") + "\n");
