// The suite's temp folder (test/global-temp.ts): every test process, and every CLI it starts,
// writes its temp files there, so the check for hquant-* leftovers at the end sees them all.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { hquantTempEntries } from "./global-temp.js";
import { defaultFactoryDir, makeModel, SMALL_LLAMA } from "./factory.js";

describe("the suite's temp folder", () => {
  it("is the test processes' and their children's os.tmpdir()", () => {
    expect(path.basename(os.tmpdir())).toMatch(/^hquant-suite-/);
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(require('node:os').tmpdir())"], { encoding: "utf8" });
    expect(child.stdout).toBe(os.tmpdir());
  });

  it("counts hquant-* entries, and the factory's folder is one of them until the file ends", async () => {
    const before = hquantTempEntries(os.tmpdir());
    const file = await makeModel({ ...SMALL_LLAMA, seed: 77 });
    expect(path.dirname(file)).toBe(defaultFactoryDir());
    expect(hquantTempEntries(os.tmpdir())).toEqual([...new Set([...before, path.basename(defaultFactoryDir())])].sort());
    const own = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-cleanup-"));
    expect(hquantTempEntries(os.tmpdir())).toContain(path.basename(own));
    fs.rmSync(own, { recursive: true });
  });
});
