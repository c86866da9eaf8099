// The README's option table and the CLI's --help list the same options for every command, and the
// short forms agree: the documentation cannot drift from the program.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { hquant } from "./cli-util.js";

const README = fs.readFileSync(path.resolve(__dirname, "../README.md"), "utf8");
const COMMANDS = ["inspect", "plan", "build", "bench", "scan", "imatrix", "tune", "runtime", "cache"];

/** README's "### Options" table: long flag → { short flag, commands }. */
function readmeOptions(): Map<string, { short?: string; commands: string[] }> {
  const start = README.indexOf("\n### Options\n");
  expect(start, "README has an ### Options section").toBeGreaterThan(0);
  const section = README.slice(start + 1, README.indexOf("\n### ", start + 1));
  const rows = section.split("\n").filter((l) => l.startsWith("| `"));
  const options = new Map<string, { short?: string; commands: string[] }>();
  for (const row of rows) {
    const cells = row.replace(/\\\|/g, "¦").split("|").map((c) => c.trim());
    const flag = cells[1]!.replace(/`/g, "");
    const long = /--[a-z][a-z-]*/.exec(flag)![0];
    const short = /^(-[a-zA-Z]),/.exec(flag)?.[1];
    expect(options.has(long), `${long} listed twice`).toBe(false);
    options.set(long, { short, commands: cells[2]!.split(",").map((c) => c.trim()) });
  }
  return options;
}

/** `hquant CMD --help`'s options: long flag → short flag. */
function helpOptions(command: string): Map<string, string | undefined> {
  const r = hquant(command, "--help");
  expect(r.code).toBe(0);
  const lines = r.stdout.slice(r.stdout.indexOf("Options:")).split("\n").slice(1);
  const options = new Map<string, string | undefined>();
  for (const line of lines) {
    const m = /^ {2}(?:(-[a-zA-Z]), )?(--[a-z][a-z-]*)/.exec(line);
    if (m && m[2] !== "--help") options.set(m[2]!, m[1]);
  }
  return options;
}

describe("README option table == --help", () => {
  const documented = readmeOptions();
  it.each(COMMANDS)("hquant %s", (command) => {
    const help = helpOptions(command);
    const inReadme = [...documented].filter(([, o]) => o.commands.includes(command)).map(([flag]) => flag).sort();
    expect(inReadme).toEqual([...help.keys()].sort());
    for (const [flag, short] of help) expect(documented.get(flag)!.short, `${command} ${flag}`).toBe(short);
  });

  it("names only commands that exist", () => {
    for (const [flag, o] of documented) for (const c of o.commands) expect(COMMANDS, `${flag}: ${c}`).toContain(c);
  });
});
