// Remote models over HTTP: a server without Range support is given up on at its first whole-file
// answer (not downloaded), a server that never answers times out (--timeout), a missing file says
// "HTTP 404 Not Found", and a build from a URL writes the same bytes as from the local file.
// Loopback servers only, every wait bounded.
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODEL } from "./build-util.js";

const ROOT = path.resolve(__dirname, "..");
const BIN = path.join(ROOT, "bin/hquant.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-http-"));
const model = fs.readFileSync(MODEL);

/** The CLI in a child process without blocking this process's event loop (the servers live here). */
function hquantAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // a bound on every wait: a hung CLI fails the test instead of hanging it
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

async function listen(server: net.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

// ignores Range: every GET gets the whole file, streamed with back-pressure so the bytes sent show
let noRangeSent = 0;
let noRangeGets = 0;
const noRange = http.createServer((req, res) => {
  if (req.method === "HEAD") {
    res.writeHead(200, { "Content-Length": model.length });
    return res.end();
  }
  noRangeGets++;
  res.writeHead(200, { "Content-Length": model.length });
  let at = 0;
  const pump = () => {
    while (at < model.length) {
      const piece = model.subarray(at, at + 65536);
      at += piece.length;
      noRangeSent += piece.length;
      if (!res.write(piece)) return void res.once("drain", pump);
    }
    res.end();
  };
  res.on("close", () => (at = model.length));
  pump();
});

// accepts connections and never answers
const sockets: net.Socket[] = [];
const silent = net.createServer((s) => sockets.push(s));

// a plain range server for the build
const ranged = http.createServer((req, res) => {
  if (!req.url?.endsWith("/model.gguf")) {
    res.writeHead(404, "Not Found");
    return res.end();
  }
  if (req.method === "HEAD") {
    res.writeHead(200, { "Content-Length": model.length, "Accept-Ranges": "bytes" });
    return res.end();
  }
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
  const [a, b] = [Number(m[1]), Math.min(Number(m[2]), model.length - 1)];
  res.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${model.length}`, "Content-Length": b - a + 1 });
  res.end(model.subarray(a, b + 1));
});

let urls: { noRange: string; silent: string; ranged: string };
beforeAll(async () => {
  urls = { noRange: await listen(noRange), silent: await listen(silent), ranged: await listen(ranged) };
});
afterAll(() => {
  for (const s of sockets) s.destroy();
  noRange.close();
  silent.close();
  ranged.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("hquant over HTTP", () => {
  it("a server without Range support: one request, stopped at once, a one-line error", async () => {
    const url = `${urls.noRange}/model.gguf`;
    const r = await hquantAsync("plan", url, "Q4_K_M");
    expect(r.stderr).toBe(`hquant: ${url}: server does not support range requests (HTTP 200 OK to a range request)\n`);
    expect(r.code).toBe(1);
    expect(noRangeGets).toBe(1);
    // what was in the socket buffers when the answer was dropped, not the 29 MB file
    expect(noRangeSent).toBeLessThan(model.length / 4);
  });

  it("a server that never answers: --timeout seconds, then a one-line error", async () => {
    const url = `${urls.silent}/model.gguf`;
    const r = await hquantAsync("inspect", url, "--timeout", "1");
    expect(r.stderr).toBe(`hquant: ${url}: no answer within 1 s (--timeout)\n`);
    expect(r.code).toBe(1);
    const p = await hquantAsync("plan", url, "Q4_K_M", "--timeout", "0.5");
    expect(p.stderr).toBe(`hquant: ${url}: no answer within 0.5 s (--timeout)\n`);
  });

  it("a missing file is HTTP 404 Not Found", async () => {
    const url = `${urls.ranged}/missing.gguf`;
    const r = await hquantAsync("inspect", url);
    expect(r.stderr).toBe(`hquant: ${url}: HTTP 404 Not Found\n`);
    expect(r.code).toBe(1);
  });

  it("build from a URL writes the same bytes as from the local file", async () => {
    const local = path.join(tmp, "local.gguf");
    const remote = path.join(tmp, "remote.gguf");
    const a = await hquantAsync("build", MODEL, local, "Q4_K_M", "--quiet");
    const b = await hquantAsync("build", `${urls.ranged}/model.gguf`, remote, "Q4_K_M", "--quiet");
    expect([a.code, a.stderr, b.code, b.stderr]).toEqual([0, "", 0, ""]);
    // general.name etc. come from the header, so even the metadata is the same
    expect(fs.readFileSync(remote).equals(fs.readFileSync(local))).toBe(true);
  });
});
