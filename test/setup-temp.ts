// vitest setupFiles: after each test file, the synthetic models the factory wrote for it go
// (hquant-factory-<pid>: one folder per test process, each file runs in its own process).
import fs from "node:fs";
import { afterAll } from "vitest";
import { defaultFactoryDir } from "./factory.js";

afterAll(() => fs.rmSync(defaultFactoryDir(), { recursive: true, force: true }));
