import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // a temp folder of the suite's own, checked for leftovers at the end (test/global-temp.ts)
    globalSetup: ["test/global-temp.ts"],
    setupFiles: ["test/setup-temp.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2-core CI: the heavy tests (llama.cpp oracle, builds) must not all run at once.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
