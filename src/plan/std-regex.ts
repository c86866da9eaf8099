// --tensor-type patterns the way llama.cpp reads them: std::regex with the ECMAScript grammar of
// libstdc++, searched anywhere in the tensor name. The pattern is parsed here by that grammar and
// re-emitted as an equivalent JavaScript RegExp (no flags), so a pattern selects the same tensors
// in hquant as in llama-quantize, and what libstdc++ refuses is refused with one line.
//
// Where the dialects differ: POSIX classes inside brackets ([[:digit:]], [[:alpha:]], …, also
// [[:d:]]/[[:w:]]/[[:s:]], names case-insensitive) are std::regex only; lookbehind, named groups
// and inline flags are JavaScript only (refused); `{` always starts a repetition in std::regex (so
// `a{`, `a{,2}` and `{` are errors, not literals); \xHH and \uHHHH need all their digits;
// a quantifier needs something to repeat
// (an assertion or lookahead is not); a range may not start or end at a class; stacked
// quantifiers (`a**`) repeat the repetition.
//
// The subset: hquant refuses a few forms std::regex accepts but whose meaning depends on the C++
// locale or differs in ways a translation cannot express — collating elements and equivalence
// classes ([[.a.]], [[=a=]]), backreferences (std::regex fails one to a group that did not take
// part, JavaScript matches it empty), \c (libstdc++ reads \cA as a plain A), \b inside brackets,
// \0 followed by a digit, and non-ASCII patterns (std::regex sees UTF-8 bytes, JavaScript UTF-16).
import { UserError } from "../errors.js";

/** POSIX class names libstdc++'s regex_traits::lookup_classname accepts, as ASCII sets ("C" locale). */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  blank: "\\t ",
  cntrl: "\\x00-\\x1f\\x7f",
  digit: "0-9",
  d: "0-9",
  graph: "\\x21-\\x7e",
  lower: "a-z",
  print: "\\x20-\\x7e",
  punct: "\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e",
  space: "\\t\\n\\v\\f\\r ",
  s: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  w: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

const CLASS_ESCAPES = "dDwWsS";
const CONTROL_ESCAPES: Readonly<Record<string, number>> = { f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09, v: 0x0b };

/** One character as JavaScript regex source that means exactly that character (inside or outside brackets). */
function literal(code: number): string {
  const c = String.fromCharCode(code);
  return /[0-9A-Za-z_]/.test(c) ? c : `\\x${code.toString(16).padStart(2, "0")}`;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly src: string,
    private readonly where: string,
  ) {}

  fail(what: string): never {
    throw new UserError(`${this.where}: bad regular expression ${JSON.stringify(this.src)} (${what})`);
  }

  private peek(offset = 0): string | undefined {
    return this.src[this.pos + offset];
  }

  parse(): string {
    const out = this.disjunction();
    if (this.pos < this.src.length) this.fail(`unmatched ')' at position ${this.pos}`);
    return out;
  }

  private disjunction(): string {
    const alternatives = [this.alternative()];
    while (this.peek() === "|") {
      this.pos++;
      alternatives.push(this.alternative());
    }
    return alternatives.join("|");
  }

  private alternative(): string {
    let out = "";
    while (this.pos < this.src.length && this.peek() !== "|" && this.peek() !== ")") out += this.term();
    return out;
  }

  private term(): string {
    const assertion = this.assertion();
    if (assertion !== undefined) {
      if (this.atQuantifier()) this.fail(`nothing to repeat before '${this.peek()}' at position ${this.pos}`);
      return assertion;
    }
    let atom = this.atom();
    let quantified = false;
    while (this.atQuantifier()) {
      // std::regex repeats a repetition (a** = (a*)*); JavaScript needs the group spelled out
      if (quantified) atom = `(?:${atom})`;
      atom += this.quantifier();
      quantified = true;
    }
    return atom;
  }

  private atQuantifier(): boolean {
    const c = this.peek();
    return c === "*" || c === "+" || c === "?" || c === "{";
  }

  private assertion(): string | undefined {
    const c = this.peek();
    if (c === "^" || c === "$") {
      this.pos++;
      return c;
    }
    if (c === "\\" && (this.peek(1) === "b" || this.peek(1) === "B")) {
      this.pos += 2;
      return `\\${this.src[this.pos - 1]}`;
    }
    if (c === "(" && this.peek(1) === "?" && (this.peek(2) === "=" || this.peek(2) === "!")) {
      const kind = this.peek(2)!;
      this.pos += 3;
      const inner = this.disjunction();
      this.expect(")");
      return `(?${kind}${inner})`;
    }
    return undefined;
  }

  private expect(c: string): void {
    if (this.peek() !== c) this.fail(`missing '${c}' at position ${this.pos}`);
    this.pos++;
  }

  private quantifier(): string {
    const c = this.src[this.pos++]!;
    let q: string;
    if (c !== "{") q = c;
    else {
      const m = /^(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos));
      if (!m) this.fail(`'{' at position ${this.pos - 1} does not start a repetition {n}, {n,} or {n,m}`);
      const min = Number(m[1]);
      if (m[3] !== undefined && m[3] !== "" && Number(m[3]) < min) this.fail(`repetition {${m[1]},${m[3]}} has max < min`);
      this.pos += m[0].length;
      q = `{${m[0]}`;
    }
    if (this.peek() === "?") {
      this.pos++;
      q += "?";
    }
    return q;
  }

  private atom(): string {
    const at = this.pos;
    const c = this.src[this.pos++]!;
    switch (c) {
      case ".":
        return ".";
      case "*":
      case "+":
      case "?":
      case "{":
        return this.fail(`nothing to repeat before '${c}' at position ${at}`);
      case "(":
        return this.group(at);
      case "[":
        return this.bracket(at);
      case "\\":
        return this.atomEscape(at);
      default:
        return literal(c.charCodeAt(0));
    }
  }

  private group(at: number): string {
    if (this.peek() === "?") {
      if (this.peek(1) === ":") {
        this.pos += 2;
        const inner = this.disjunction();
        this.expect(")");
        return `(?:${inner})`;
      }
      const rest = this.src.slice(this.pos, this.pos + 3);
      if (rest.startsWith("?<=") || rest.startsWith("?<!")) this.fail(`lookbehind '(${rest}' at position ${at} (std::regex has none)`);
      if (rest.startsWith("?<")) this.fail(`named group at position ${at} (std::regex has none)`);
      this.fail(`'(?' at position ${at}: std::regex knows only (?:, (?= and (?!`);
    }
    const inner = this.disjunction();
    this.expect(")");
    return `(${inner})`;
  }

  /** A character escape shared by atoms and brackets: its code, or undefined when not one. */
  private characterEscape(c: string, at: number): number | undefined {
    if (CONTROL_ESCAPES[c] !== undefined) return CONTROL_ESCAPES[c];
    if (c === "x" || c === "u") {
      const n = c === "x" ? 2 : 4;
      const hex = this.src.slice(this.pos, this.pos + n);
      if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(hex)) this.fail(`\\${c} at position ${at} needs ${n} hex digits`);
      this.pos += n;
      return Number.parseInt(hex, 16);
    }
    if (c === "c") this.fail(`\\c at position ${at} is not supported`);
    if (c === "0") {
      if (/[0-9]/.test(this.peek() ?? "")) this.fail(`\\0 followed by a digit at position ${at}`);
      return 0;
    }
    return undefined;
  }

  private atomEscape(at: number): string {
    const c = this.src[this.pos++];
    if (c === undefined) this.fail("escape '\\' at the end of the pattern");
    if (CLASS_ESCAPES.includes(c)) return `\\${c}`;
    if (/[1-9]/.test(c)) {
      // std::regex fails a backreference to a group that took no part in the match, JavaScript
      // matches it empty: not expressible, so not supported
      this.fail(`backreference \\${c} at position ${at} is not supported`);
    }
    const code = this.characterEscape(c, at);
    return literal(code ?? c.charCodeAt(0));
  }

  /** One bracket item: a single character (its code) or a class (its JavaScript class body). */
  private bracketItem(at: number): { code: number } | { set: string } {
    const c = this.src[this.pos++];
    if (c === undefined) this.fail(`unterminated '[' at position ${at}`);
    if (c === "[" && (this.peek() === ":" || this.peek() === "." || this.peek() === "=")) {
      const kind = this.src[this.pos]!;
      if (kind !== ":") this.fail(`'[${kind}' at position ${this.pos - 1}: collating elements and equivalence classes are not supported`);
      const end = this.src.indexOf(":]", this.pos + 1);
      if (end < 0) this.fail(`'[:' at position ${this.pos - 1} is not closed by ':]'`);
      const name = this.src.slice(this.pos + 1, end);
      const set = POSIX_CLASSES[name.toLowerCase()];
      if (set === undefined) this.fail(`unknown character class [:${name}:]`);
      this.pos = end + 2;
      return { set };
    }
    if (c !== "\\") return { code: c.charCodeAt(0) };
    const e = this.src[this.pos++];
    if (e === undefined) this.fail(`unterminated '[' at position ${at}`);
    if (CLASS_ESCAPES.includes(e)) return { set: `\\${e}` };
    if (e === "b") this.fail(`\\b inside brackets at position ${this.pos - 2} is not supported`);
    if (/[1-9]/.test(e)) this.fail(`backreference inside brackets at position ${this.pos - 2}`);
    const code = this.characterEscape(e, this.pos - 2);
    return { code: code ?? e.charCodeAt(0) };
  }

  private bracket(at: number): string {
    let out = "[";
    if (this.peek() === "^") {
      this.pos++;
      out += "^";
    }
    // ECMAScript: a ']' right away closes the (empty) bracket
    while (this.peek() !== "]") {
      if (this.peek() === undefined) this.fail(`unterminated '[' at position ${at}`);
      const first = this.bracketItem(at);
      if (this.peek() === "-" && this.peek(1) !== "]" && this.peek(1) !== undefined) {
        this.pos++;
        const last = this.bracketItem(at);
        if (!("code" in first)) this.fail(`range at position ${at} starts at a class`);
        if (!("code" in last)) this.fail(`range at position ${at} ends at a class`);
        if (last.code < first.code) this.fail(`range ${String.fromCharCode(first.code)}-${String.fromCharCode(last.code)} is out of order`);
        out += `${literal(first.code)}-${literal(last.code)}`;
      } else {
        out += "code" in first ? literal(first.code) : first.set;
      }
    }
    this.pos++;
    return out + "]";
  }
}

/** A --tensor-type pattern (std::regex ECMAScript) as the equivalent JavaScript regex source. */
export function translateStdRegex(pattern: string, where: string): string {
  if (/[^\x00-\x7f]/.test(pattern)) throw new UserError(`${where}: bad regular expression ${JSON.stringify(pattern)} (only ASCII patterns are supported)`);
  return new Parser(pattern, where).parse();
}

/** The pattern compiled for searching tensor names, as std::regex_search does. */
export function compileStdRegex(pattern: string, where: string): RegExp {
  const source = translateStdRegex(pattern, where);
  try {
    return new RegExp(source);
  } catch (err) {
    // the translation only emits what JavaScript accepts; this would be a bug in it
    throw new Error(`${where}: translated pattern /${source}/ is invalid: ${(err as Error).message}`);
  }
}
