// llama.cpp calls abort() on a failed GGML_ASSERT, which would take the whole hquant process down
// (a tune hours in, a scan). So evaluations run in one child process (isolation-child.ts, forked
// once and kept for the whole run, so its vocabulary-math threads stay warm): a call names a
// library function, its arguments are structured-cloned there and its result back; progress
// callbacks and cancellation travel as messages. When the child dies, every call in flight becomes
// a one-line UserError naming the file and what llama.cpp printed last (its GGML_ASSERT line), the
// call's temp files are removed, and the next call forks a fresh child.
// HQUANT_ISOLATION=0 has the callers (src/eval/isolated.ts) run them in this process instead.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { UserError } from "../errors.js";

/** The compiled child entry, from src/runtime (vitest) and dist/runtime alike. */
export const ISOLATION_CHILD_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/runtime/isolation-child.js");
/** dist/, where the modules the child imports are */
const DIST_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist");

export interface IsolatedCall {
  /** module path under dist/ (e.g. "eval/evaluate.js") */
  module: string;
  /** the exported function to call */
  fn: string;
  args: unknown[];
  /**
   * index of an options argument that gets the hooks in the child: `onProgress` (forwarded to
   * `onProgress` here) and `signal` (aborted when `signal` here aborts)
   */
  hooksArg?: number;
}

export interface IsolationContext {
  /** the file the error names */
  file: string;
  onProgress?: (...args: never[]) => void;
  signal?: AbortSignal;
  /** removes what the call left behind when the child died (given the child's pid) */
  cleanup?: (pid: number) => void;
}

/** Child → parent messages. */
type Reply =
  | { id: number; progress: unknown[] }
  | { id: number; ok: unknown }
  | { id: number; error: { message: string; user: boolean; abort: boolean } };

interface Pending {
  ctx: IsolationContext;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export function isolationEnabled(): boolean {
  return process.env.HQUANT_ISOLATION !== "0";
}

/** Lines of the child's stderr kept for the error message. */
const TAIL_LINES = 40;

class IsolationChild {
  readonly process: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail: string[] = [];
  private partial = "";
  exited = false;

  constructor(private readonly onExit: (child: IsolationChild) => void) {
    const env = { ...process.env, GGML_NO_BACKTRACE: "1" };
    const stdio: ("ignore" | "pipe" | "ipc")[] = ["ignore", "pipe", "pipe", "ipc"];
    // no core file for an abort (ulimit -c 0, then exec keeps the IPC channel)
    this.process =
      process.platform === "win32"
        ? spawn(process.execPath, [ISOLATION_CHILD_PATH], { stdio, env, serialization: "advanced" })
        : spawn("/bin/sh", ["-c", 'ulimit -c 0 2>/dev/null; exec "$0" "$@"', process.execPath, ISOLATION_CHILD_PATH], { stdio, env, serialization: "advanced" });
    this.process.stdout?.resume();
    this.process.stderr?.setEncoding("utf8");
    this.process.stderr?.on("data", (s: string) => this.keepStderr(s));
    this.process.on("message", (m: Reply) => this.onMessage(m));
    this.process.on("exit", (code, signal) => this.onChildExit(code, signal));
    this.process.on("error", (err) => this.failAll(`cannot start the evaluation process (${err.message})`));
    this.idle();
  }

  private keepStderr(s: string): void {
    const lines = (this.partial + s).split("\n");
    this.partial = lines.pop() ?? "";
    this.stderrTail.push(...lines.filter((l) => l.trim()));
    if (this.stderrTail.length > TAIL_LINES) this.stderrTail = this.stderrTail.slice(-TAIL_LINES);
  }

  /** What llama.cpp printed last: its GGML_ASSERT / GGML_ABORT line, else the last line. */
  private lastWords(code: number | null, signal: NodeJS.Signals | null): string {
    const lines = [...this.stderrTail, ...(this.partial.trim() ? [this.partial] : [])];
    const assert = [...lines].reverse().find((l) => /GGML_ASSERT|GGML_ABORT|error|abort/i.test(l));
    // the assert's source path as far as llama.cpp's own tree (not the machine that built it)
    const last = (assert ?? lines[lines.length - 1])?.replace(/^\S*?\/(ggml\/src\/|src\/llama)/, "$1");
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    return last ? `${last.trim()} (${how})` : how;
  }

  private idle(): void {
    if (this.pending.size > 0) return;
    // nothing in flight: the child, its channel and its pipes do not keep this process alive
    this.process.unref();
    (this.process.channel as unknown as { unref?: () => void } | undefined)?.unref?.();
    (this.process.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    (this.process.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  }

  private busy(): void {
    this.process.ref();
    (this.process.channel as unknown as { ref?: () => void } | undefined)?.ref?.();
    (this.process.stdout as unknown as { ref?: () => void } | null)?.ref?.();
    (this.process.stderr as unknown as { ref?: () => void } | null)?.ref?.();
  }

  /** Calls in flight. */
  busyCalls(): number {
    return this.pending.size;
  }

  /** Has the child import these modules now (a failed import is reported by the call that needs it). */
  preload(modules: readonly string[]): void {
    for (const m of modules) if (this.process.connected) this.process.send({ id: 0, preload: pathToFileURL(path.join(DIST_ROOT, m)).href }, () => {});
  }

  call(call: IsolatedCall, ctx: IsolationContext): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { ctx, resolve, reject });
      this.busy();
      const onAbort = () => this.process.connected && this.process.send({ id, abort: true });
      ctx.signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => ctx.signal?.removeEventListener("abort", onAbort);
      const p = this.pending.get(id)!;
      p.resolve = (v) => (settle(), resolve(v));
      p.reject = (e) => (settle(), reject(e));
      this.process.send({ id, module: pathToFileURL(path.join(DIST_ROOT, call.module)).href, fn: call.fn, args: call.args, hooksArg: call.hooksArg, progress: ctx.onProgress !== undefined }, (err) => {
        if (err && this.pending.delete(id)) p.reject(new UserError(`${ctx.file}: cannot pass the evaluation to its process (${err.message.split("\n")[0]})`));
      });
    });
  }

  private onMessage(m: Reply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if ("progress" in m) {
      (p.ctx.onProgress as ((...a: unknown[]) => void) | undefined)?.(...m.progress);
      return;
    }
    this.pending.delete(m.id);
    this.idle();
    if ("ok" in m) p.resolve(m.ok);
    else if (m.error.abort && p.ctx.signal?.aborted) p.reject(p.ctx.signal.reason);
    else if (m.error.user) p.reject(new UserError(m.error.message));
    else p.reject(new Error(m.error.message));
  }

  private failAll(reason: string): void {
    const pid = this.process.pid;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (pid !== undefined) p.ctx.cleanup?.(pid);
      if (p.ctx.signal?.aborted) p.reject(p.ctx.signal.reason);
      else p.reject(new UserError(`${p.ctx.file}: llama.cpp aborted: ${reason}`));
    }
  }

  private onChildExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exited = true;
    this.failAll(this.lastWords(code, signal));
    this.onExit(this);
  }
}

let child: IsolationChild | undefined;

/** Runs `call` in the evaluation process and returns its result; a one-line UserError when llama.cpp aborts there. */
export async function runIsolated<T>(call: IsolatedCall, ctx: IsolationContext): Promise<T> {
  ctx.signal?.throwIfAborted();
  if (!child || child.exited) {
    child = new IsolationChild((c) => {
      if (child === c) child = undefined;
    });
  }
  return (await child.call(call, ctx)) as T;
}

/** Ends the evaluation process (it also ends by itself when this process exits). */
export function stopIsolation(): void {
  // SIGKILL: the child ignores SIGTERM (Ctrl-C and the like are the parent's business)
  child?.process.kill("SIGKILL");
  child = undefined;
}

/**
 * Forks the evaluation process now, before it is needed, and has it import `modules` (paths under
 * dist/), so its Node start and module loading run while this process still loads and checks its
 * own: a CLI command that evaluates starts it first thing. Nothing when isolation is off.
 */
export function startIsolation(modules: readonly string[] = []): void {
  if (!isolationEnabled()) return;
  if (!child || child.exited) {
    child = new IsolationChild((c) => {
      if (child === c) child = undefined;
    });
  }
  child.preload(modules);
}

/**
 * Ends the evaluation process and waits for it to exit, so that it is reaped by this process: the
 * CPU time it used then counts in this process's (and a shell's `time`), and no child outlives the
 * command. An idle child is killed (it holds no temp file between calls); one with calls in flight
 * is disconnected, which cancels them and lets them remove their temp files.
 */
export async function endIsolation(): Promise<void> {
  const c = child;
  child = undefined;
  if (!c || c.exited) return;
  const exited = new Promise<void>((resolve) => c.process.once("exit", () => resolve()));
  c.process.ref(); // this process waits for it
  if (c.busyCalls() === 0) c.process.kill("SIGKILL");
  else if (c.process.connected) c.process.disconnect();
  await exited;
}

/** `opts` without what cannot cross to the child (functions, the AbortSignal). */
export function cloneableOptions<T extends object>(opts: T): Partial<T> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => typeof v !== "function" && !(v instanceof AbortSignal))) as Partial<T>;
}
