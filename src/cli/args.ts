// Option parsing shared by the CLI commands: numbers, thread counts, --json [FILE], output folders.
import fs from "node:fs";
import os from "node:os";
import { Option } from "commander";
import path from "node:path";
import { readFileError, UserError } from "../errors.js";
import { writeFileAtomic } from "../eval/run.js";
import { resolveOutputTarget } from "../gguf/output-path.js";

/** A positive integer option, or undefined when the option was not given. */
export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer (got ${JSON.stringify(value)})`);
  return n;
}

/** The evaluation text, or a one-line error naming the file. */
export function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    throw readFileError(file, err);
  }
}

/**
 * -t/--threads N, the same on every command; undefined when not given. 0 or less means every core,
 * as llama-quantize reads its NTHREADS (nthread <= 0: hardware_concurrency).
 */
export function parseThreads(value: string | undefined, flag = "--threads"): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value) || Number(value) > 1024) throw new UserError(`${flag}: ${JSON.stringify(value)} is not a thread count (1–1024, or 0 for every core)`);
  return Number(value) <= 0 ? Math.max(1, os.availableParallelism()) : Number(value);
}

/**
 * The default -c/--ctx of every command that evaluates (bench, scan, tune, imatrix): 512, what
 * llama-perplexity and llama-imatrix use without -c, so that figures compare with theirs as given.
 */
export const DEFAULT_CTX = "512";

/** `-f, --text FILE`: llama-perplexity's and llama-imatrix's -f is hquant's --text. */
export function textOption(description: string, required = true): Option {
  const o = new Option("-f, --text <file>", description);
  return required ? o.makeOptionMandatory() : o;
}

/**
 * `--json [FILE]`: where the JSON goes (undefined: not asked, "-": stdout). A FILE is checked
 * before any work: it must be a regular file or a new name in an existing folder.
 */
export function jsonTarget(value: string | boolean | undefined): string | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true || value === "-") return "-";
  resolveOutputTarget(value);
  return value;
}

/** Writes the JSON where jsonTarget said (temp file + rename for a file). */
export function writeJson(target: string, text: string): void {
  if (target === "-") process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  else writeFileAtomic(target, text.endsWith("\n") ? text : `${text}\n`);
}

/**
 * An output folder (--out DIR), checked before any work: an existing folder, or a new one whose
 * parent exists. Created only when something is written into it.
 */
export function checkOutputFolder(dir: string, flag: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch {
    st = undefined;
  }
  if (st && !st.isDirectory()) throw new UserError(`${flag} ${dir}: exists and is not a folder`);
  if (!st) {
    const parent = path.dirname(path.resolve(dir));
    if (!fs.existsSync(parent)) throw new UserError(`${flag} ${dir}: parent folder ${parent} does not exist`);
  }
}
