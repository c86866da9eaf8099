// One progress bar for every long command (build, bench, scan; tune and imatrix too): a single line
// redrawn in place, cut to the terminal's width from the left so the counts and the ETA always
// show. Nothing at all is drawn when the stream is not a terminal (logs, pipes, CI).
//
//   const bar = progressBar({ label: "quantizing", unit: "bytes" });
//   bar.update(done, total, "blk.3.ffn_up.weight");
//   bar.log("a line that stays");   // printed above the bar
//   bar.done();                     // clears the bar

export interface ProgressBar {
  /** `done` of `total` units; `detail` names the current item (cut first when space is short) */
  update(done: number, total: number, detail?: string): void;
  /** a line printed above the bar (always printed, TTY or not, unless quiet) */
  log(line: string): void;
  /** clears the bar; later updates start a new one */
  done(): void;
}

export interface ProgressOptions {
  /** what is being done ("quantizing", "[2/5] Q4_K_M.gguf") */
  label?: string;
  /** how the counts print: bytes as MiB, or plain counts ("chunk 12/40") */
  unit?: "bytes" | "count";
  /** default: process.stderr */
  stream?: NodeJS.WriteStream;
  /** false: no bar and no log lines (--quiet) */
  enabled?: boolean;
  /** redraws at most this often (ms) */
  intervalMs?: number;
}

/** 0:07, 12:05, 1:02:03 */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * The bar's text for a terminal `width` columns wide: label, bar, percentage, counts, rate, ETA.
 * The tail (percentage … ETA) is kept whole; the detail, then the bar, then the label give way.
 */
export function renderProgress(o: { label: string; detail: string; done: number; total: number; seconds: number; unit: "bytes" | "count"; width: number }): string {
  const fraction = o.total > 0 ? Math.min(1, o.done / o.total) : 0;
  const rate = o.seconds > 0 ? o.done / o.seconds : 0;
  const eta = rate > 0 ? (o.total - o.done) / rate : undefined;
  const counts = o.unit === "bytes" ? `${(o.done / 1048576).toFixed(1)}/${(o.total / 1048576).toFixed(1)} MiB` : `${o.done}/${o.total}`;
  const speed = o.unit === "bytes" && rate > 0 ? ` ${(rate / 1048576).toFixed(1)} MiB/s` : "";
  const pct = ` ${(fraction * 100).toFixed(0).padStart(3)}%`;
  const etaText = ` ETA ${eta === undefined ? "-:--" : formatDuration(eta)}`;
  // on a narrow terminal the rate goes first, then the counts, then the percentage: never the ETA
  const tails = [`${pct} ${counts}${speed}${etaText}`, `${pct} ${counts}${etaText}`, `${pct}${etaText}`, etaText];
  const tail = tails.find((t) => t.length <= o.width) ?? etaText;
  let room = o.width - tail.length;
  if (room <= 0 || tail !== tails[0]) return tail.trimStart().slice(0, Math.max(0, o.width));
  const label = o.label.slice(0, Math.max(0, room - 1));
  room -= label.length > 0 ? label.length + 1 : 0;
  const barWidth = Math.min(30, room - 2);
  let bar = "";
  if (barWidth >= 5) {
    const filled = Math.round(fraction * barWidth);
    bar = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`;
    room -= bar.length;
  }
  const detail = o.detail && room > 2 ? ` ${o.detail.slice(0, room - 1)}` : "";
  return `${label}${label ? " " : ""}${bar}${tail}${detail}`.slice(0, o.width);
}

export function progressBar(opts: ProgressOptions = {}): ProgressBar {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? true;
  const tty = enabled && stream.isTTY === true;
  const interval = opts.intervalMs ?? 100;
  let start = performance.now();
  let last = -Infinity;
  let shown = false;
  let lastLine = "";
  const clear = () => {
    if (shown) stream.write("\r\x1b[K");
    shown = false;
  };
  return {
    update(done, total, detail = "") {
      if (!tty) return;
      const now = performance.now();
      if (!shown && lastLine === "") start = now;
      if (now - last < interval && done < total) return;
      last = now;
      const width = Math.max(20, (stream.columns ?? 80) - 1);
      lastLine = renderProgress({ label: opts.label ?? "", detail, done, total, seconds: (now - start) / 1000, unit: opts.unit ?? "count", width });
      stream.write(`\r${lastLine}\x1b[K`);
      shown = true;
    },
    log(line) {
      if (!enabled) return;
      const wasShown = shown;
      clear();
      stream.write(`${line}\n`);
      if (wasShown && tty) {
        stream.write(`\r${lastLine}\x1b[K`);
        shown = true;
      }
    },
    done() {
      clear();
      lastLine = "";
      last = -Infinity;
    },
  };
}
