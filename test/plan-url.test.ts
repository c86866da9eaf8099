// `hquant plan URL`: a publisher plans a hybrid of a remote (split) model from its header alone,
// read with HTTP range requests. Served here from 127.0.0.1 by a tiny range server.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openModel, TensorReader } from "../src/gguf/reader.js";
import { createGGUFOutput } from "../src/gguf/split.js";

const MODEL = "models/tinyllama-16l-f16.gguf";
let dir: string;
let server: http.Server;
let base: string;
const requested: number[] = [];

function hquantAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // async spawn: the range server lives in this process, so the CLI must not block our event loop
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/hquant.js", ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "hquant-plan-url-"));
  // a 3-shard copy of the bundled model, tensor data copied byte for byte
  const src = await openModel(MODEL);
  const out = await createGGUFOutput(path.join(dir, "tiny.gguf"), src.kv, src.tensors, { splitMaxTensors: 60 });
  const reader = new TensorReader(src);
  for (const t of src.tensors) await out.writeTensor(await reader.read(t, 0, t.bytes));
  await reader.close();
  await out.finish();
  expect(out.paths.length).toBe(3);
  server = http.createServer((req, res) => {
    const file = path.join(dir, path.basename(req.url ?? ""));
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      res.writeHead(404);
      return res.end();
    }
    if (req.method === "HEAD") {
      res.writeHead(200, { "Content-Length": bytes.length, "Accept-Ranges": "bytes" });
      return res.end();
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (!m) {
      res.writeHead(200, { "Content-Length": bytes.length });
      return res.end(bytes);
    }
    const [a, b] = [Number(m[1]), Math.min(Number(m[2]), bytes.length - 1)];
    requested.push(b - a + 1);
    res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${bytes.length}`, "Content-Length": b - a + 1 });
    res.end(bytes.subarray(a, b + 1));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("hquant plan on an http(s) URL", () => {
  it("plans a remote split model exactly as the local file, reading headers only", async () => {
    const local = spawnSync(process.execPath, ["bin/hquant.js", "plan", MODEL, "--preset", "Q4_K_H", "--json"], { encoding: "utf8" });
    expect(local.status).toBe(0);
    const remote = await hquantAsync("plan", `${base}/tiny-00001-of-00003.gguf`, "--preset", "Q4_K_H", "--json");
    expect(remote.stderr).toBe("");
    expect(remote.status).toBe(0);
    const a = JSON.parse(local.stdout);
    const b = JSON.parse(remote.stdout);
    // the same tensors, types and sizes; only the model's name/path differs
    expect(b.tensors).toEqual(a.tensors);
    expect(b.fileBytes).toBe(a.fileBytes);
    expect(b.headerBytes).toBe(a.headerBytes);
    // headers only: nothing near the 29 MB of tensor data was fetched
    const fetched = requested.reduce((s, n) => s + n, 0);
    expect(fetched).toBeLessThan(3 * 1024 * 1024);
  });

  it("a URL that is not there is a one-line error", async () => {
    const r = await hquantAsync("plan", `${base}/missing.gguf`, "--ftype", "Q4_K_M");
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^hquant: .*missing\.gguf/);
  });
});
