// `hquant cache [list|size|clean]`: the measurement cache bench, scan and tune keep (src/cache).
import type { Command } from "commander";
import { UserError } from "../../errors.js";
import { cleanCache, defaultCacheDir, listCache, type CacheEntry, type CacheKind } from "../../cache/index.js";

interface CacheCliOptions {
  cacheDir?: string;
  olderThan?: string;
  kind?: string;
  dryRun?: boolean;
}

const KINDS: readonly CacheKind[] = ["base", "tune", "scan"];
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const total = (es: readonly CacheEntry[]) => es.reduce((a, e) => a + e.bytes, 0);

function table(entries: readonly CacheEntry[]): string {
  return entries.map((e) => `${e.kind.padEnd(4)}  ${mib(e.bytes).padStart(11)}  ${new Date(e.mtimeMs).toISOString().slice(0, 16).replace("T", " ")}  ${e.name}\n`).join("");
}

function cleanOptions(opts: CacheCliOptions): { olderThanDays?: number; kind?: CacheKind } {
  let olderThanDays: number | undefined;
  if (opts.olderThan !== undefined) {
    olderThanDays = Number(opts.olderThan);
    if (!/^\d+(\.\d+)?$/.test(opts.olderThan)) throw new UserError(`--older-than: ${JSON.stringify(opts.olderThan)} is not a number of days`);
  }
  if (opts.kind !== undefined && !KINDS.includes(opts.kind as CacheKind)) {
    throw new UserError(`--kind: ${JSON.stringify(opts.kind)} is not one of ${KINDS.join(", ")}`);
  }
  return { olderThanDays, kind: opts.kind as CacheKind | undefined };
}

export function registerCache(program: Command): void {
  program
    .command("cache")
    .description(`list, size or clean the measurement cache of bench, scan and tune (default ${defaultCacheDir()})`)
    .argument("[action]", "list (default), size or clean")
    .option("--cache-dir <dir>", "the cache folder (as bench/scan/tune --cache-dir)")
    .option("--older-than <days>", "clean: only entries unused for this many days")
    .option("--kind <kind>", `clean: only ${KINDS.join(", ")} entries`)
    .option("--dry-run", "clean: list what would be removed, remove nothing")
    .action((action: string | undefined, opts: CacheCliOptions) => {
      const dir = opts.cacheDir ?? defaultCacheDir();
      const filter = cleanOptions(opts);
      switch (action ?? "list") {
        case "list": {
          const entries = listCache(dir);
          process.stdout.write(`${dir}: ${entries.length} entries, ${mib(total(entries))}\n${table(entries)}`);
          return;
        }
        case "size":
          process.stdout.write(`${total(listCache(dir))}\t${dir}\n`);
          return;
        case "clean": {
          const removed = cleanCache(dir, { ...filter, dryRun: opts.dryRun });
          process.stdout.write(`${table(removed)}${opts.dryRun ? "would remove" : "removed"} ${removed.length} entries, ${mib(total(removed))}, from ${dir}\n`);
          return;
        }
        default:
          throw new UserError(`cache: unknown action ${JSON.stringify(action)}; give list, size or clean`);
      }
    });
}
