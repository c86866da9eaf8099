// The CLI's signal handling, and the only place that has any: SIGINT (Ctrl-C), SIGTERM and SIGHUP
// (the terminal or SSH session closed) abort the running command through an AbortSignal; the
// library then removes its temp files as it unwinds and the CLI exits with 128 + the signal
// number. A second signal does not wait: the open temp files are removed and the process exits.
import { unlinkSync } from "node:fs";
import { openTempFiles } from "../gguf/writer.js";

export const HANDLED_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
export type HandledSignal = keyof typeof HANDLED_SIGNALS;

let controller = new AbortController();
let received: HandledSignal | undefined;

/** The signal the running command passes to the library. */
export function commandSignal(): AbortSignal {
  return controller.signal;
}

let interruptNote: string | undefined;

/**
 * What the interrupted line says after "hquant: interrupted" (default ", no output written"): a
 * command that keeps finished work (release) says what it kept.
 */
export function setInterruptNote(note: string | undefined): void {
  interruptNote = note;
}

export function interruptNoteOr(fallback: string): string {
  return interruptNote ?? fallback;
}

/** The signal that interrupted the command, if any. */
export function receivedSignal(): HandledSignal | undefined {
  return received;
}

export function exitCodeFor(sig: HandledSignal): number {
  return 128 + HANDLED_SIGNALS[sig];
}

function removeOpenTempFiles(): void {
  for (const p of openTempFiles()) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
}

function onSignal(sig: HandledSignal): void {
  if (received !== undefined) {
    removeOpenTempFiles();
    process.exit(exitCodeFor(received));
  }
  received = sig;
  controller.abort(new Error(`interrupted by ${sig}`));
}

const listeners = new Map<HandledSignal, () => void>();

/** Installs the handlers for one command run; returns their removal. */
export function installSignalHandlers(): () => void {
  controller = new AbortController();
  received = undefined;
  interruptNote = undefined;
  for (const sig of Object.keys(HANDLED_SIGNALS) as HandledSignal[]) {
    const listener = () => onSignal(sig);
    listeners.set(sig, listener);
    process.on(sig, listener);
  }
  return () => {
    for (const [sig, listener] of listeners) process.off(sig, listener);
    listeners.clear();
  };
}
