// The package as users get it: `npm pack`, installed into an empty folder, imported from an ESM
// script and type-checked from a TypeScript file (the README's library example, verbatim), and
// its CLI run. Opt-in (HQUANT_PACK=1 npx vitest run test/package.test.ts): it needs npm's registry
// (or its cache) for the dependencies, and takes 45 s on an idle 2-core machine (75 s loaded),
// more than the suite should spend on it.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "..");
const MODEL = path.join(ROOT, "models/tinyllama-16l-f16.gguf");
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string; devDependencies: Record<string, string> };
// made only when the test runs: a skipped file leaves no empty folder behind
let tmp = "";

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 240_000 });
  expect(r.status, `${cmd} ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** The README's ```ts block under "## Library". */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Library\n"));
  return /```ts\n([\s\S]*?)```/.exec(section)![1]!;
}

describe.runIf(process.env.HQUANT_PACK === "1")("the packed tarball", () => {
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hquant-pack-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  it("installs into an empty folder; ESM import, TypeScript types and the CLI work", { timeout: 300_000 }, () => {
    run("npm", ["pack", "--ignore-scripts", "--pack-destination", tmp], ROOT);
    const tarball = path.join(tmp, `hquant-${PKG.version}.tgz`);
    expect(fs.existsSync(tarball)).toBe(true);
    const app = path.join(tmp, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    run(
      "npm",
      ["install", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", tarball, `typescript@${PKG.devDependencies.typescript}`, `@types/node@${PKG.devDependencies["@types/node"]}`],
      app,
    );
    const installed = fs.readdirSync(path.join(app, "node_modules/hquant")).sort();
    expect(installed).toEqual(["LICENSE", "README.md", "bin", "build", "dist", "package.json", "presets", "schemas"]);

    // plain Node, ESM
    fs.writeFileSync(
      path.join(app, "main.mjs"),
      `import { inspect, plan, build, bench, scan, version } from "hquant";
const report = await inspect(process.argv[2]);
const planned = await plan({ input: process.argv[2], schedule: { ftype: "Q4_K" } });
console.log(JSON.stringify({ version, fns: [build, bench, scan].map((f) => typeof f), tensors: report.tensorCount, fileType: report.fileType, bytes: planned.sizes.fileBytes }));\n`,
    );
    const out = JSON.parse(run(process.execPath, ["main.mjs", MODEL], app)) as Record<string, unknown>;
    expect(out).toEqual({ version: PKG.version, fns: ["function", "function", "function"], tensors: 147, fileType: { id: 1, name: "F16" }, bytes: expect.any(Number) });

    // TypeScript: the README's example type-checks against the shipped declarations
    fs.writeFileSync(path.join(app, "example.ts"), readmeExample());
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"] }, files: ["example.ts"] }),
    );
    run(path.join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app);

    // the CLI, as installed
    const bin = path.join(app, "node_modules/.bin/hquant");
    expect(run(bin, ["--version"], app)).toBe(`${PKG.version}\n`);
    run(bin, ["build", MODEL, path.join(app, "q8.gguf"), "Q8_0", "--quiet"], app);
    expect(fs.readFileSync(path.join(app, "q8.gguf")).subarray(0, 4).toString()).toBe("GGUF");
  });
});
