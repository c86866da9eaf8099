// `hquant plan --imatrix FILE` sizes the output exactly: the quantize.imatrix.* keys the build
// writes are read from the imatrix file's header (both llama.cpp formats), so the promised size is
// the built file's size.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadImatrix, readImatrixInfo } from "../src/imatrix/index.js";
import { IMATRIX_DAT, IMATRIX_GGUF, MODEL } from "./build-util.js";
import { hquant } from "./cli-util.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-plan-imatrix-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));


function plannedFileBytes(...args: string[]): number {
  const r = hquant("plan", MODEL, ...args, "--json");
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { fileBytes: number }).fileBytes;
}

describe.each([
  ["legacy .dat", IMATRIX_DAT],
  ["GGUF", IMATRIX_GGUF],
])("hquant plan --imatrix (%s)", (_format, imatrix) => {
  it("reads what the build records from the header alone, as loadImatrix does", async () => {
    const full = await loadImatrix(imatrix);
    expect(await readImatrixInfo(imatrix)).toEqual({ file: imatrix, datasets: full.datasets, entries: full.vectors.size, chunks: full.chunkCount });
  });

  it("promises the size the build writes", () => {
    const withImatrix = plannedFileBytes("--ftype", "Q4_K_M", "--imatrix", imatrix);
    // the imatrix keys are counted: the header is larger than without them
    expect(withImatrix).toBeGreaterThan(plannedFileBytes("--ftype", "Q4_K_M"));
    const out = path.join(tmp, `${path.basename(imatrix)}.gguf`);
    const r = hquant("build", MODEL, out, "--ftype", "Q4_K_M", "--imatrix", imatrix, "-t", "2", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(fs.statSync(out).size).toBe(withImatrix);
  });
});

it("hquant plan --imatrix with a missing file fails in one line", () => {
  const missing = path.join(tmp, "no-such-imatrix.dat");
  const r = hquant("plan", MODEL, "--ftype", "Q4_K_M", "--imatrix", missing);
  expect(r.stderr).toBe(`hquant: ${missing}: no such file\n`);
  expect(r.code).toBe(1);
});
