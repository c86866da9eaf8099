// Option parsing shared by the CLI commands that evaluate models (bench, scan).
import fs from "node:fs";
import { UserError } from "../errors.js";

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
    throw new UserError(`${file}: cannot read the text (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
