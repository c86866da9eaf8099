// The evaluation process dies with hquant. A parent killed without a word (SIGKILL, the OOM killer)
// only closes the IPC channel, and an evaluation process in the middle of a long decode would not
// see that until the decode returns; on Linux the kernel kills it with its parent (PR_SET_PDEATHSIG).
// The child is stopped (SIGSTOP) before the parent is killed, so that only the kernel can end it:
// without the death signal it would stay, stopped, for ever.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** pids of the processes whose parent is `ppid` and whose command line names the evaluation process */
function evaluationChildren(ppid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== ppid) continue;
      if (fs.readFileSync(`/proc/${d}/cmdline`, "utf8").includes("isolation-child")) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

async function waitFor<T>(f: () => T | undefined, ms: number): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.runIf(process.platform === "linux")("the evaluation process and its parent", () => {
  it("is killed by the kernel when hquant is SIGKILLed, even when it cannot run", async () => {
    const parent = spawn(process.execPath, ["--input-type=module", "-e", `import("${path.join(ROOT, "dist/runtime/isolation.js")}").then((m) => { m.startIsolation([]); setInterval(() => {}, 1000); });`], {
      stdio: "ignore",
    });
    let childPid: number | undefined;
    try {
      // the child has set its death signal once it is running its module body: give it a moment
      childPid = await waitFor(() => evaluationChildren(parent.pid!)[0], 20_000);
      expect(childPid, "the evaluation process was forked").toBeDefined();
      await new Promise((r) => setTimeout(r, 1500));
      process.kill(childPid!, "SIGSTOP");
      parent.kill("SIGKILL");
      const gone = await waitFor(() => (alive(childPid!) ? undefined : true), 10_000);
      expect(gone, `evaluation process ${childPid} outlived its SIGKILLed parent`).toBe(true);
    } finally {
      parent.kill("SIGKILL");
      if (childPid !== undefined && alive(childPid)) process.kill(childPid, "SIGKILL");
    }
  }, 40_000);
});
