// Generates src/plan/arch-facts.ts from a llama.cpp source tree: every architecture name llama.cpp
// knows (LLM_ARCH_NAMES), whether it has a model class (llama_model_mapping), and every hyper-
// parameter read of llama_model_base::load_hparams and of the architecture's load_arch_hparams (and
// of the parent classes it calls): the key, whether a missing key is an error, the GGUF type the
// target variable makes llama.cpp insist on, and the condition under which the read happens.
// A condition is translated into a predicate over the file's keys when it only involves what the
// loader knows at that point (block and expert counts, keys read earlier, whether a key is there,
// the vocabulary size, the architecture itself, literals); other conditions (the model size class,
// switch cases, loops) are left out, and so are the reads under them — the table says only what
// is certain.
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

/** String literals of the stripped sources, by the index their placeholder `"S<n>"` holds. */
const literals: string[] = [];
/** Comments removed, string literals replaced by placeholders (no brackets or quotes inside). */
function stripped(text: string): string {
  return text
    .replace(/"(?:[^"\\]|\\.)*"|\/\/.*$|\/\*[\s\S]*?\*\//gm, (m) => {
      if (!m.startsWith('"')) return "";
      literals.push(JSON.parse(m) as string);
      return `"S${literals.length - 1}"`;
    });
}

/** The body of `void CLASS::FN(...) {` in text, or undefined. */
function functionBody(text: string, signature: RegExp): { cls: string; body: string }[] {
  const out: { cls: string; body: string }[] = [];
  for (const m of text.matchAll(signature)) {
    let depth = 1;
    let i = m.index! + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
    }
    out.push({ cls: m[1]!, body: text.slice(start, i - 1) });
  }
  return out;
}

const bodies = new Map<string, string>();
for (const file of fs.readdirSync(path.join(root, "src/models"))) {
  if (!file.endsWith(".cpp")) continue;
  for (const { cls, body } of functionBody(stripped(read(`src/models/${file}`)), /void (llama_model_\w+)::load_arch_hparams\([^)]*\)\s*\{/g)) bodies.set(cls, body);
}
const baseBody = functionBody(stripped(modelCpp), /void (llama_model_base)::load_hparams\([^)]*\)\s*\{/g)[0]!.body;

/** struct llama_hparams: field → [C++ type, initializer or undefined]. */
const hparamFields = new Map<string, { type: string; init?: string }>();
{
  const h = stripped(read("src/llama-hparams.h"));
  const start = h.indexOf("struct llama_hparams {");
  let depth = 0;
  let i = h.indexOf("{", start);
  let cur = "";
  for (; i < h.length; i++) {
    const ch = h[i]!;
    if (ch === "{") depth++;
    if (ch === "}" && --depth === 0) break;
    if (depth === 1 && ch !== "{") {
      if (ch === ";") {
        const m = /^\s*((?:enum\s+)?[\w:]+(?:\s*<[^>]*>)?)\s+(\w+)\s*(?:=\s*([^;]+))?$/.exec(cur.replace(/\s+/g, " "));
        if (m && !cur.includes("(")) hparamFields.set(m[2]!, { type: m[1]!.trim(), init: m[3]?.trim() });
        cur = "";
      } else cur += ch;
    } else if (depth > 1) cur = "";
  }
}

/** The GGUF type a C++ target makes get_key insist on (GKV<T>::gt). */
function ggufScalarOf(cpp: string): string | undefined {
  const t = cpp.replace(/^const\s+/, "").trim();
  if (t === "uint32_t" || t === "enum llama_pooling_type" || t === "llama_pooling_type") return "u32";
  if (t === "int32_t" || t === "int") return "i32";
  if (t === "float") return "f32";
  if (t === "bool") return "bool";
  if (t === "std::string") return "str";
  if (t === "uint16_t") return "u16";
  if (t === "uint64_t") return "u64";
  return undefined;
}
/** Element type of std::array<T, N> / std::vector<T>. */
function elementOf(cpp: string): string | undefined {
  const m = /std::(?:array|vector)\s*<\s*([\w:]+)/.exec(cpp);
  return m ? m[1] : undefined;
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

/** Index just past the bracket matching the one at `open`. */
function matching(s: string, open: number): number {
  const o = s[open]!;
  const c = o === "(" ? ")" : o === "{" ? "}" : "]";
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === o) depth++;
    else if (s[i] === c && --depth === 0) return i + 1;
  }
  return s.length;
}

type Method = "get_key" | "get_key_or_arr" | "get_arr" | "get_arr_n";
interface Read {
  key: string;
  method: Method;
  required: boolean;
  /** GGUF type of a scalar target (get_key), or of the elements (get_key_or_arr / get_arr) */
  type?: string;
  /** get_key_or_arr into an array: the array length llama.cpp expects (an expression over h) */
  length?: string;
  /** get_key_or_arr into a scalar: an array is not this read's (it returns false, or fails when required) */
  scalarOnly?: boolean;
  /** a predicate over h, or undefined when unconditional */
  when?: string;
}

/** What a class's loader knows while it runs: locals and the hparams fields read so far. */
interface Scope {
  arch: string;
  locals: Map<string, { type: string; expr?: string }>;
  /** hparams field → the key it was read from (undefined: assigned otherwise, not translatable) */
  fields: Map<string, string | undefined>;
  /** fields read by a required read */
  requiredFields: Set<string>;
  /** what the loader throws or asserts under a translatable condition */
  refusals: Refusal[];
}

interface Refusal {
  /** a predicate over h */
  when: string;
  message: string;
  /** GGML_ASSERT: the process aborts */
  aborts: boolean;
}

const UNKNOWN = Symbol("unknown");

/** A C++ condition as a TypeScript expression over `h`, or UNKNOWN. */
function translate(cond: string, scope: Scope): string | typeof UNKNOWN {
  let out = "";
  let i = 0;
  const s = cond.trim();
  while (i < s.length) {
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^\s+/.exec(rest))) {
      out += " ";
      i += m[0].length;
    } else if ((m = /^ml\.(get_key_or_arr|get_key|get_arr_n|get_arr)\s*\(/.exec(rest))) {
      const end = matching(s, i + m[0].length - 1);
      const args = argsOf(s.slice(i + m[0].length, end - 1));
      const key = kvNames.get(args[0]!);
      if (!key) return UNKNOWN;
      out += `h.has(${JSON.stringify(key)})`;
      i = end;
    } else if ((m = /^(arch)\s*(==|!=)\s*(LLM_ARCH_\w+)/.exec(rest))) {
      const same = archNames.get(m[3]!) === scope.arch;
      out += String(m[2] === "==" ? same : !same);
      i += m[0].length;
    } else if ((m = /^hparams\.n_layer\(\)/.exec(rest))) {
      out += "h.nLayer";
      i += m[0].length;
    } else if ((m = /^hparams\.(\w+)/.exec(rest))) {
      const f = m[1]!;
      if (f === "n_layer_all") out += "h.nLayerAll";
      else if (f === "n_expert") out += "h.nExpert";
      else if (scope.fields.has(f)) {
        const key = scope.fields.get(f);
        const init = hparamFields.get(f)?.init;
        // an absent optional key leaves the initializer; a required one is there by now
        const absent = init === undefined ? (scope.requiredFields.has(f) ? "0" : undefined) : /^-?\d+(\.\d+)?f?$/.test(init) ? String(Number.parseFloat(init)) : init === "false" ? "0" : init === "true" ? "1" : undefined;
        if (key === undefined || absent === undefined) return UNKNOWN;
        out += `h.num(${JSON.stringify(key)}, ${absent})`;
      } else return UNKNOWN;
      i += m[0].length;
    } else if ((m = /^(\d+(?:\.\d+)?)[uUfF]?\b/.exec(rest))) {
      out += m[1];
      i += m[0].length;
    } else if ((m = /^"S\d+"/.exec(rest))) {
      // a message in an assert (`cond && "why"`): always true
      out += "true";
      i += m[0].length;
    } else if ((m = /^(true|false)\b/.exec(rest))) {
      out += m[1];
      i += m[0].length;
    } else if ((m = /^(&&|\|\||==|!=|<=|>=|<|>|!|\(|\))/.exec(rest))) {
      out += m[1] === "==" ? "===" : m[1] === "!=" ? "!==" : m[1];
      i += m[0].length;
    } else if ((m = /^[A-Za-z_]\w*/.exec(rest))) {
      const local = scope.locals.get(m[0]);
      if (m[0] === "n_vocab" && local) out += "h.nVocab";
      else if (local?.expr !== undefined) {
        const t = translate(local.expr, scope);
        if (t === UNKNOWN) return UNKNOWN;
        out += `(${t})`;
      } else return UNKNOWN;
      i += m[0].length;
    } else return UNKNOWN;
  }
  return out.replace(/\s+/g, " ").trim();
}

/** The reads of one statement (no braces): the first call of a || chain or ternary runs for certain. */
function statementReads(stmt: string, scope: Scope, when: string | undefined, out: Read[], seen: Set<string>): void {
  const s = stmt.trim();
  // a local declaration: remember it (a bool from a read becomes "the key is there")
  const decl = /^(?:const\s+)?((?:std::)?[\w:]+(?:\s*<[^>]*>)?)\s+(\w+)\s*(?:=\s*([\s\S]+)|\(([\s\S]*)\)|\{[\s\S]*\})?$/.exec(s);
  if (decl && !/^(return|delete|throw|else)$/.test(decl[1]!) && !s.startsWith("ml.") && !s.startsWith("hparams.")) {
    const [, type, name, init] = decl;
    const read = init && /^ml\.(get_key_or_arr|get_key|get_arr_n|get_arr)\s*\(/.test(init.trim()) ? init.trim() : undefined;
    scope.locals.set(name!, { type: type!, expr: read ?? (type === "bool" && init ? init : undefined) });
  }
  const assigned = /^hparams\.(\w+)\s*=[^=]/.exec(s);
  if (assigned) scope.fields.set(assigned[1]!, undefined);

  const calls = [...s.matchAll(/(?:ml\.(get_key_or_arr|get_key|get_arr_n|get_arr)|(llama_model_\w+)::load_arch_hparams)\s*\(/g)];
  if (calls.length === 0) return;
  const first = calls[0]!;
  const before = s.slice(0, first.index!).trim();
  if (before !== "" && !/^((const\s+)?(auto|bool|uint32_t)\s+\w+\s*=|\w+\s*=)$/.test(before)) return;
  if (first[2]) {
    classReads(first[2], scope, when, out, seen);
    return;
  }
  const end = matching(s, first.index! + first[0].length - 1);
  const args = argsOf(s.slice(first.index! + first[0].length, end - 1));
  const method = first[1] as Method;
  const kvId = args[0]!;
  if (!kvId.startsWith("LLM_KV_")) return;
  const key = kvNames.get(kvId);
  if (key === undefined) throw new Error(`unknown key ${kvId}`);
  // the `required` flag is the last argument when given (after result, or after result and n)
  const flagAt = method === "get_key_or_arr" && args.length >= 3 && !/^(true|false|0|1)$/.test(args[2]!) ? 3 : 2;
  const flag = args[flagAt];
  const required = flag === undefined || !/^(false|0|0\.0f?)$/.test(flag);
  const target = args[1] ?? "";
  const fieldMatch = /^hparams\.(\w+)$/.exec(target);
  const cppType = fieldMatch ? hparamFields.get(fieldMatch[1]!)?.type : scope.locals.get(target)?.type;
  const r: Read = { key, method, required, ...(when !== undefined && { when }) };
  if (cppType !== undefined) {
    if (method === "get_key") r.type = ggufScalarOf(cppType);
    else if (method === "get_key_or_arr") {
      const elem = elementOf(cppType);
      if (elem === undefined) {
        r.type = ggufScalarOf(cppType);
        r.scalarOnly = true;
      } else {
        r.type = ggufScalarOf(elem);
        const n = args[2]!;
        r.length = n === "hparams.n_layer_all" ? "h.nLayerAll" : n === "hparams.n_layer()" ? "h.nLayer" : /^\d+$/.test(n) ? n : undefined;
      }
    } else if (method === "get_arr") {
      const elem = elementOf(cppType);
      r.type = elem ? ggufScalarOf(elem) : undefined;
    }
  }
  if (r.type === undefined) delete r.type;
  if (r.length === undefined) delete r.length;
  const id = `${key}|${when ?? ""}|${method}`;
  if (!seen.has(id)) {
    seen.add(id);
    out.push(r);
  }
  if (fieldMatch) {
    scope.fields.set(fieldMatch[1]!, key);
    if (required) scope.requiredFields.add(fieldMatch[1]!);
  }
}

const and = (a: string | undefined, b: string) => (a === undefined ? b : `(${a}) && (${b})`);

/** Walks a function body: statements, if/else (with their conditions), blocks; switch and loops are unknown. */
function walk(body: string, scope: Scope, when: string | undefined | typeof UNKNOWN, out: Read[], seen: Set<string>): void {
  let i = 0;
  const s = body;
  const skipWs = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  /** past one statement (a block, an if with its else, or up to its `;`) at i */
  const skipStatement = () => {
    skipWs();
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if (s[i] === "{") i = matching(s, i);
    else if ((m = /^(if|switch|for|while)\s*(constexpr\s*)?\(/.exec(rest))) {
      i = matching(s, i + m[0].length - 1);
      skipStatement();
      skipWs();
      if (m[1] === "if" && /^else\b/.test(s.slice(i))) {
        i += 4;
        skipStatement();
      }
    } else {
      let depth = 0;
      for (; i < s.length; i++) {
        const ch = s[i]!;
        if (ch === "(" || ch === "{" || ch === "[") depth++;
        else if (ch === ")" || ch === "}" || ch === "]") depth--;
        else if (ch === ";" && depth === 0) break;
      }
      i++;
    }
  };
  /** one statement (a block or up to its `;`) at i, walked under `w` */
  const statement = (w: string | undefined | typeof UNKNOWN) => {
    skipWs();
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if (s[i] === "{") {
      const end = matching(s, i);
      walk(s.slice(i + 1, end - 1), scope, w, out, seen);
      i = end;
    } else if ((m = /^if\s*(constexpr\s*)?\(/.exec(rest))) {
      const open = i + m[0].length - 1;
      const close = matching(s, open);
      const cond = s.slice(open + 1, close - 1);
      // a read inside the condition itself runs whenever the if is reached
      if (w !== UNKNOWN) statementReads(cond.replace(/^!\s*/, ""), scope, w, out, seen);
      const t = w === UNKNOWN ? UNKNOWN : translate(cond, scope);
      i = close;
      // a branch that cannot run for this architecture (`arch == …`) is skipped, locals and all
      const branch = (taken: string | typeof UNKNOWN) => {
        if (taken === "false") skipStatement();
        else statement(taken === UNKNOWN || w === UNKNOWN ? UNKNOWN : taken === "true" ? w : and(w, taken));
      };
      branch(t);
      skipWs();
      if (/^else\b/.test(s.slice(i))) {
        i += 4;
        branch(t === UNKNOWN ? UNKNOWN : t === "true" ? "false" : t === "false" ? "true" : `!(${t})`);
      }
    } else if ((m = /^(switch|for|while)\s*\(/.exec(rest))) {
      i = matching(s, i + m[0].length - 1);
      statement(UNKNOWN);
    } else if ((m = /^(case\b[^:]*|default\s*):/.exec(rest))) {
      i += m[0].length;
    } else if ((m = /^(throw\s+std::runtime_error\s*\(|GGML_ASSERT\s*\()/.exec(rest))) {
      const open = i + m[0].length - 1;
      const close = matching(s, open);
      const arg = s.slice(open + 1, close - 1).trim();
      if (w !== UNKNOWN) {
        if (m[1]!.startsWith("throw")) {
          const literal = /^"S(\d+)"$/.exec(arg);
          const fmt = /^format\s*\(\s*"S(\d+)"/.exec(arg);
          // a formatted message: its format string, the values left out
          const message = literal ? literals[Number(literal[1])]! : fmt ? literals[Number(fmt[1])]!.replace(/%[-\d.]*(z|l|ll)?[a-zA-Z]/g, "…") : undefined;
          if (message !== undefined) scope.refusals.push({ when: w ?? "true", message, aborts: false });
        } else {
          const t = translate(arg, scope);
          const text = arg.replace(/"S(\d+)"/g, (_, n: string) => JSON.stringify(literals[Number(n)]));
          if (t !== UNKNOWN) scope.refusals.push({ when: and(w, `!(${t})`), message: `GGML_ASSERT(${text.replace(/\s+/g, " ")}) failed`, aborts: true });
        }
      }
      i = s.indexOf(";", close) + 1;
    } else {
      // up to the `;` outside brackets
      let j = i;
      let depth = 0;
      for (; j < s.length; j++) {
        const ch = s[j]!;
        if (ch === "(" || ch === "{" || ch === "[") depth++;
        else if (ch === ")" || ch === "}" || ch === "]") depth--;
        else if (ch === ";" && depth === 0) break;
      }
      const stmt = s.slice(i, j);
      if (w !== UNKNOWN) statementReads(stmt, scope, w, out, seen);
      else {
        // still learn locals and assignments
        statementReads(stmt, scope, "false", [], new Set());
      }
      i = j + 1;
    }
  };
  while (i < s.length) {
    skipWs();
    if (i >= s.length) break;
    statement(when);
  }
}

/** Reads of a class's load_arch_hparams (or its nearest parent's, when it has none). */
function classReads(cls: string, scope: Scope, when: string | undefined | typeof UNKNOWN, out: Read[], seen: Set<string>): void {
  const body = bodies.get(cls);
  if (body === undefined) {
    const parent = parentOf.get(cls);
    if (parent && parent !== "llama_model_base") classReads(parent, scope, when, out, seen);
    return;
  }
  walk(body, scope, when, out, seen);
}

/** The class whose load_arch_hparams an architecture runs (itself, or the parent it inherits it from). */
function loaderClass(cls: string): string {
  let c: string | undefined = cls;
  while (c && !bodies.has(c)) c = parentOf.get(c);
  return c ?? cls;
}

const lines: string[] = [];
lines.push("// Generated by scripts/gen-arch-facts.ts from llama.cpp's source (llama-arch.cpp, llama-model.cpp,");
lines.push("// llama-hparams.h, src/models/*.cpp) — do not edit. Every architecture llama.cpp knows by name;");
lines.push("// `model: false` when llama_model_create has no class for it (\"unsupported model architecture\");");
lines.push("// `loader`: the class whose load_arch_hparams it runs (`seventyBLayers`: where that says 70B);");
lines.push("// `reads`: the hyper-parameters llama.cpp reads while loading it for quantization beyond BASE_READS");
lines.push("// (llama_model_base::load_hparams, then load_arch_hparams) in that order: the key (\"%s\" is the");
lines.push("// architecture name), whether a missing key is an error, the GGUF type llama.cpp insists on, and");
lines.push("// `when` it is read (a predicate over the file's keys; reads under a condition the generator cannot");
lines.push("// translate are not listed).");
lines.push("");
lines.push("/** What a read's condition may look at (see src/plan/arch.ts). */");
lines.push("export interface LoaderView {");
lines.push("  /** n_layer(): block_count − nextn_predict_layers */");
lines.push("  readonly nLayer: number;");
lines.push("  readonly nLayerAll: number;");
lines.push("  readonly nExpert: number;");
lines.push("  /** <arch>.vocab_size, else the length of tokenizer.ggml.tokens, else 0 */");
lines.push("  readonly nVocab: number;");
lines.push("  has(key: string): boolean;");
lines.push("  /** a scalar key's value, or `absent` */");
lines.push("  num(key: string, absent: number): number;");
lines.push("}");
lines.push("");
lines.push("export interface KeyRead {");
lines.push("  readonly key: string;");
lines.push("  readonly method: \"get_key\" | \"get_key_or_arr\" | \"get_arr\" | \"get_arr_n\";");
lines.push("  readonly required: boolean;");
lines.push("  /** GGUF type of the value (get_key), or of a scalar or the elements (get_key_or_arr, get_arr) */");
lines.push("  readonly type?: string;");
lines.push("  /** get_key_or_arr into per-layer values: the array length llama.cpp expects */");
lines.push("  readonly length?: (h: LoaderView) => number;");
lines.push("  /** get_key_or_arr into a single value: an array does not count as the key */");
lines.push("  readonly scalarOnly?: boolean;");
lines.push("  readonly when?: (h: LoaderView) => boolean;");
lines.push("}");
lines.push("");
lines.push("export interface ArchFacts {");
lines.push("  readonly model: boolean;");
lines.push("  readonly loader?: string;");
lines.push("  /** n_layer() at which the loader says LLM_TYPE_70B (attn_v gets q5_K instead of q3_K/q4_K) */");
lines.push("  readonly seventyBLayers?: number;");
lines.push("  readonly reads: readonly KeyRead[];");
lines.push("  /** what its loader throws (or asserts: `aborts`) when the predicate holds, after the reads */");
lines.push("  readonly refusals?: readonly { readonly when: (h: LoaderView) => boolean; readonly message: string; readonly aborts?: boolean }[];");
lines.push("}");
lines.push("");

function readSource(r: Read): string {
  const parts = [`key: ${JSON.stringify(r.key)}`, `method: ${JSON.stringify(r.method)}`, `required: ${r.required}`];
  if (r.type) parts.push(`type: ${JSON.stringify(r.type)}`);
  if (r.length) parts.push(`length: (h) => ${r.length}`);
  if (r.scalarOnly) parts.push("scalarOnly: true");
  if (r.when) parts.push(`when: (h) => ${r.when}`);
  return `{ ${parts.join(", ")} }`;
}

/** Base reads every architecture (but clip) shares: listed once. */
const baseScope: Scope = { arch: "", locals: new Map(), fields: new Map(), requiredFields: new Set(), refusals: [] };
const baseReads: Read[] = [];
walk(baseBody, baseScope, undefined, baseReads, new Set());
// the base reads with per-architecture conditions (wavtokenizer-dec's) are resolved per architecture below
lines.push("/** llama_model_base::load_hparams: read for every architecture but clip, before load_arch_hparams. */");
const sharedBase = baseReads.filter((r) => !(r.when && /(^|\()false\)? &&|^\(?false\)?$/.test(r.when)));
lines.push(`export const BASE_READS: readonly KeyRead[] = [\n${sharedBase.map((r) => `  ${readSource(r)},`).join("\n")}\n];`);
lines.push("");
lines.push("export const LLAMA_CPP_ARCHITECTURES: Readonly<Record<string, ArchFacts>> = {");
for (const [id, name] of archNames) {
  if (id === "LLM_ARCH_UNKNOWN") continue;
  const cls = classOfArch.get(id);
  const reads: Read[] = [];
  const refusals: Refusal[] = [];
  if (cls && name !== "clip") {
    // conditional base reads, with `arch == …` resolved for this architecture
    const scope: Scope = { arch: name, locals: new Map(), fields: new Map(), requiredFields: new Set(), refusals };
    const all: Read[] = [];
    walk(baseBody, scope, undefined, all, new Set());
    // the base loader's own checks are src/plan/arch.ts's (they need more than a key's value)
    refusals.length = 0;
    // those that differ from BASE_READS (wavtokenizer-dec's) are dropped as shared below
    reads.push(...all);
    classReads(cls, scope, undefined, reads, new Set());
  }
  const shared = new Set(sharedBase.map(readSource));
  const cleaned = reads
    .map((r) => (r.when && /^\(?true\)?$/.test(r.when) ? { ...r, when: undefined } : r))
    .filter((r) => !(r.when && /(^|\()false\)? &&|^\(?false\)?$/.test(r.when)))
    .filter((r) => !shared.has(readSource(r)));
  const loaderCls = cls ? loaderClass(cls) : undefined;
  const loader = loaderCls?.replace(/^llama_model_/, "");
  // the layer count at which the loader sets LLM_TYPE_70B (the only model type llama-quantize looks at)
  const seventyB = loaderCls && /case (\d+):[^;]*LLM_TYPE_70B/.exec(bodies.get(loaderCls) ?? "")?.[1];
  const checks = refusals
    .map((r) => ({ ...r, when: r.when.replace(/^\(true\) && /, "") }))
    .filter((r) => !/(^|\()false\)? &&|^\(?false\)?$/.test(r.when))
    .map((r) => `{ when: (h) => ${r.when}, message: ${JSON.stringify(r.message)}${r.aborts ? ", aborts: true" : ""} }`);
  const body = cleaned.map((r) => `    ${readSource(r)},`).join("\n");
  lines.push(
    `  ${JSON.stringify(name)}: { model: ${cls !== undefined}${loader ? `, loader: ${JSON.stringify(loader)}` : ""}${seventyB ? `, seventyBLayers: ${seventyB}` : ""}, reads: [${body ? `\n${body}\n  ` : ""}]${checks.length ? `, refusals: [\n${checks.map((c) => `    ${c},`).join("\n")}\n  ]` : ""} },`,
  );
}
lines.push("};");
process.stdout.write(lines.join("\n") + "\n");
