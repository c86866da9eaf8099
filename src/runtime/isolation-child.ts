// The evaluation process (isolation.ts): runs the library functions the parent names, one message
// per call, and answers with the result, progress messages on the way. Its own signals are the
// parent's business: Ctrl-C reaches the whole process group, and the parent cancels through a
// message so that temp files are removed as the call unwinds.
import { createRequire } from "node:module";
import { UserError } from "../errors.js";

interface CallMessage {
  id: number;
  module?: string;
  fn?: string;
  args?: unknown[];
  hooksArg?: number;
  progress?: boolean;
  abort?: boolean;
  /** a module to import before any call needs it (isolation.ts startIsolation) */
  preload?: string;
}

const running = new Map<number, AbortController>();

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => {});

function send(m: unknown): void {
  if (process.connected) process.send!(m);
}

async function run(m: CallMessage): Promise<void> {
  const controller = new AbortController();
  running.set(m.id, controller);
  try {
    const mod = (await import(m.module!)) as Record<string, (...a: unknown[]) => unknown>;
    const args = [...(m.args ?? [])];
    if (m.hooksArg !== undefined) {
      const onProgress = m.progress ? (...progress: unknown[]) => send({ id: m.id, progress }) : undefined;
      args[m.hooksArg] = { ...(args[m.hooksArg] as object), onProgress, signal: controller.signal };
    }
    const ok = await mod[m.fn!](...args);
    send({ id: m.id, ok });
  } catch (err) {
    const e = err as Error;
    send({ id: m.id, error: { message: String(e?.message ?? err), user: err instanceof UserError, abort: controller.signal.aborted } });
  } finally {
    running.delete(m.id);
  }
}

process.on("message", (m: CallMessage) => {
  if (m.preload) import(m.preload).catch(() => {});
  else if (m.abort) running.get(m.id)?.abort();
  else void run(m);
});

// A parent killed without a word (SIGKILL, the OOM killer) only disconnects: the handler below
// then waits for the decode running now, which on a large model can be minutes of CPU. On Linux
// the kernel kills this process with its parent instead (prctl PR_SET_PDEATHSIG, through koffi,
// which the evaluation loads anyway); elsewhere the disconnect handler is what ends it.
function dieWithParent(): void {
  if (process.platform !== "linux") return;
  const parent = process.ppid;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const prctl = koffi.load("libc.so.6").func("int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)");
    const PR_SET_PDEATHSIG = 1;
    const SIGKILL = 9;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  } catch {
    return; // no glibc: the disconnect handler still ends this process
  }
  // the parent died before the kernel was told: nobody will kill this process
  if (process.ppid !== parent) process.exit(0);
}
dieWithParent();

// the parent is gone: cancel what runs (its temp files go as it unwinds), then leave
process.on("disconnect", () => {
  if (running.size === 0) process.exit(0);
  for (const c of running.values()) c.abort();
  const check = setInterval(() => {
    if (running.size === 0) process.exit(0);
  }, 50);
  setTimeout(() => process.exit(0), 5000).unref();
  check.unref();
});
