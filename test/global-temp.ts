// vitest globalSetup: the suite runs with its own temp folder (TMPDIR, inherited by the test
// processes and every CLI they start), and fails if anything named hquant-* is left in it at the
// end — a test or library temp folder that was not removed. The folder itself always goes, so a
// failed run leaves nothing in the machine's /tmp either.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** hquant-* entries of a folder (the names tests, the factory and the library give temp files). */
export function hquantTempEntries(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith("hquant-")).sort() : [];
}

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const suiteTmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-suite-"));
  process.env.TMPDIR = suiteTmp;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    const left = hquantTempEntries(suiteTmp);
    fs.rmSync(suiteTmp, { recursive: true, force: true });
    if (left.length > 0) throw new Error(`the test suite left ${left.length} temp entr${left.length === 1 ? "y" : "ies"}: ${left.join(", ")}`);
  };
}
