// Where an output file may go, checked before any work: only a regular file (new or existing) is
// ever replaced. A symlink is written through: the file it points to is replaced (in its own
// folder, keeping its mode) and the link stays. Devices, FIFOs, sockets and folders are refused,
// since renaming a temp file over them would destroy them. Also: stale temp files of earlier runs
// (killed by SIGKILL, a power cut) are found by name and removed once their owner is gone.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";

export interface OutputTarget {
  /** the path as given (for messages) */
  given: string;
  /** the file actually replaced: `given`, or where its symlink points */
  file: string;
  /** the existing file's permission bits, kept on the new file */
  mode?: number;
  /** the existing file's device and inode (to compare with the inputs) */
  id?: { dev: number; ino: number };
}

function kindOf(st: fs.Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

function folderOf(given: string, file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UserError(`${given}: output folder ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new UserError(`${given}: ${dir} is not a folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UserError(`${given}: output folder ${dir} is not writable`);
  }
}

/** Checks `given` as an output path and says which file the rename will replace. */
export function resolveOutputTarget(given: string): OutputTarget {
  let lst: fs.Stats;
  try {
    lst = fs.lstatSync(given);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new UserError(`${given}: cannot check the output path (${(err as NodeJS.ErrnoException).code})`);
    folderOf(given, given);
    return { given, file: given };
  }
  let file = given;
  let st = lst;
  if (lst.isSymbolicLink()) {
    try {
      file = fs.realpathSync(given);
      st = fs.statSync(file);
    } catch {
      throw new UserError(`${given}: is a symbolic link to a missing file; give the real path`);
    }
  }
  const kind = kindOf(st);
  if (kind !== undefined) throw new UserError(`${given}: output is ${kind}; hquant writes only regular files`);
  folderOf(given, file);
  return { given, file, mode: st.mode & 0o7777, id: { dev: st.dev, ino: st.ino } };
}

/** A path's device and inode, or undefined when it does not exist (or is a URL). */
export function fileId(p: string): { dev: number; ino: number } | undefined {
  try {
    const st = fs.statSync(p);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * Every output file against every input file (all shards), by device and inode: a split output
 * whose shard names equal the input's would otherwise replace the input shard by shard.
 */
export function checkOutputsAgainstInputs(outputs: readonly string[], inputs: readonly string[]): void {
  const inputIds = inputs.map((p) => ({ p, id: fileId(p) }));
  for (const out of outputs) {
    const id = fileId(out);
    if (!id) continue;
    const same = inputIds.find((i) => i.id && i.id.dev === id.dev && i.id.ino === id.ino);
    if (same) {
      throw new UserError(
        inputs.length > 1 || outputs.length > 1
          ? `${out}: would overwrite input file ${same.p}; choose another output name`
          : `${out}: input and output are the same file`,
      );
    }
  }
}

const TEMP_MARK = ".hquant-tmp-";

/** The temp file a writer streams into: hidden, next to the target, named after it and this process. */
export function tempNameFor(file: string, pid: number, tag: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}${TEMP_MARK}${pid}-${tag}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Temp files of `file` left by other runs: removed when the process that made them is gone,
 * reported when it still runs (another hquant writing the same output). Returns the messages.
 */
export function sweepStaleTempFiles(file: string, livePaths: ReadonlySet<string> = new Set()): string[] {
  const dir = path.dirname(path.resolve(file));
  const prefix = `.${path.basename(file)}${TEMP_MARK}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const messages: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const full = path.join(dir, name);
    if (livePaths.has(full) || livePaths.has(path.join(path.dirname(file), name))) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && processAlive(pid)) {
      messages.push(`${full}: another process (pid ${pid}) is writing ${file}`);
      continue;
    }
    try {
      fs.rmSync(full, { force: true });
      messages.push(`removed ${full}, a temp file left by an interrupted run (pid ${pid})`);
    } catch (err) {
      messages.push(`${full}: a stale temp file (pid ${pid}) that cannot be removed (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return messages;
}
