// What a release makes: one item per requested file (standard type, preset, schedule, tuned
// budget), each with its file name, schedule options, one-line description and the `hquant build`
// command that makes the same bytes alone. Names follow the Hub's convention, <Name>-<TYPE>.gguf;
// a file built with an importance matrix is <Name>-<TYPE>-imat.gguf (as hquant bench names them),
// so one repository can hold both kinds and a name says how the file was made.
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../errors.js";
import { fileTypeByName, refusedFileType } from "../plan/ftypes.js";
import { listPresets, loadPreset, loadScheduleFile, PRESETS_DIR, type ScheduleCliOptions } from "../plan/options.js";

export type ReleaseItemKind = "type" | "preset" | "schedule" | "tuned";

export interface ReleaseItem {
  kind: ReleaseItemKind;
  /** the <TYPE> part of the name: Q4_K_M, Q4_K_H, a schedule's name, tune-4.5bpw */
  key: string;
  /** final path of the file (the first shard's prefix when split) */
  file: string;
  schedule: ScheduleCliOptions;
  description: string;
  /** the schedule file shipped beside the files (schedules/<key>.json), for presets, schedules and tuned budgets */
  scheduleCopy?: string;
  imatrix?: string;
}

/** The Hub refuses files over 50 GB; outputs larger than this are split (gguf-split layout). */
export const HUB_FILE_LIMIT = 50e9;
export const DEFAULT_SPLIT_MAX_SIZE = 48e9;

/** <Name> from the input file name: its base name without .gguf and a trailing -f16/-f32/-bf16. */
export function defaultReleaseName(input: string): string {
  return path.basename(input).replace(/\.gguf$/i, "").replace(/-(\d{5})-of-(\d{5})$/, "").replace(/[-_.](f16|f32|bf16)$/i, "");
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function releaseFileName(name: string, key: string, imatrix: boolean): string {
  return `${name}-${key}${imatrix ? "-imat" : ""}.gguf`;
}

/** One line for a standard type: its preset's description (presets/<TYPE>.json). */
function typeDescription(ftype: string): string {
  try {
    return loadPreset(ftype).description ?? `llama.cpp ${ftype}`;
  } catch {
    return `llama.cpp ${ftype}`;
  }
}

export interface ReleaseItemsRequest {
  outDir: string;
  name: string;
  types: readonly string[];
  presets: readonly string[];
  schedules: readonly string[];
  /** the tuned budgets' schedule files (made by tune) with their labels */
  tuned: readonly { label: string; scheduleFile: string; description: string }[];
  imatrix?: string;
  /** tuned budgets still to be tuned (the early check, before tune runs): not "nothing to release" */
  tunePending?: boolean;
}

/** Every file the release makes, checked (names, presets, schedules, duplicates) before any work. */
export function releaseItems(req: ReleaseItemsRequest): ReleaseItem[] {
  if (!SAFE_NAME.test(req.name)) throw new UserError(`--name: ${JSON.stringify(req.name)} is not a file name (letters, digits, ".", "_", "-")`);
  const im = req.imatrix;
  const items: ReleaseItem[] = [];
  for (const t of req.types) {
    const ft = fileTypeByName(t);
    if (!ft) throw new UserError(`--types: ${refusedFileType(t) ?? `${JSON.stringify(t)} is not a llama.cpp file type`}`);
    items.push({ kind: "type", key: ft.name, file: "", schedule: { ftype: ft.name, imatrix: im }, description: typeDescription(ft.name), imatrix: im });
  }
  for (const p of req.presets) {
    const preset = loadPreset(p);
    const key = listPresets().find((x) => x.toUpperCase() === p.toUpperCase())!;
    items.push({ kind: "preset", key, file: "", schedule: { preset: key, imatrix: im }, description: preset.description ?? `hquant preset ${key}`, imatrix: im });
  }
  for (const s of req.schedules) {
    const sched = loadScheduleFile(s);
    const key = (sched.name ?? path.basename(s, ".json")).replace(/[^A-Za-z0-9._-]+/g, "_");
    items.push({ kind: "schedule", key, file: "", schedule: { schedule: s, imatrix: im }, description: sched.description ?? `schedule ${path.basename(s)}`, imatrix: im ?? sched.imatrix });
  }
  for (const t of req.tuned) {
    const sched = loadScheduleFile(t.scheduleFile);
    // the tuned schedule records the imatrix it was tuned with: built from the schedule alone
    items.push({ kind: "tuned", key: t.label, file: "", schedule: { schedule: t.scheduleFile }, description: t.description, imatrix: sched.imatrix, scheduleCopy: t.scheduleFile });
  }
  const seen = new Map<string, ReleaseItem>();
  for (const it of items) {
    it.file = path.join(req.outDir, releaseFileName(req.name, it.key, it.imatrix !== undefined));
    if (it.kind === "preset" || it.kind === "schedule") it.scheduleCopy = path.join(req.outDir, "schedules", `${it.key}.json`);
    const other = seen.get(it.file);
    if (other) throw new UserError(`${path.basename(it.file)} is asked for twice (${other.kind} ${other.key} and ${it.kind} ${it.key})`);
    seen.set(it.file, it);
  }
  if (items.length === 0 && !req.tunePending) throw new UserError("nothing to release: give --types, --presets, --schedules or --tune");
  return items;
}

/** The `hquant build` argument list that makes the item's file alone (byte for byte the same). */
export function buildArgs(input: string, item: ReleaseItem, splitMaxSize?: number): string[] {
  const s = item.schedule;
  const args = ["build", input, item.file];
  if (s.ftype !== undefined) args.push("--ftype", s.ftype);
  if (s.preset !== undefined) args.push("--preset", s.preset);
  if (s.schedule !== undefined) args.push("--schedule", s.schedule);
  if (s.imatrix !== undefined) args.push("--imatrix", s.imatrix);
  if (splitMaxSize !== undefined) args.push("--split-max-size", String(splitMaxSize));
  return args;
}

/** A command line for the card: arguments quoted where a shell needs it. */
export function shellLine(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9._/:=,+@-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

/** Copies the schedules of presets and given schedules beside the files. */
export function copySchedules(items: readonly ReleaseItem[]): void {
  for (const it of items) {
    if (!it.scheduleCopy || it.kind === "tuned") continue;
    fs.mkdirSync(path.dirname(it.scheduleCopy), { recursive: true });
    fs.copyFileSync(it.kind === "preset" ? path.join(PRESETS_DIR, `${it.key}.json`) : it.schedule.schedule!, it.scheduleCopy);
  }
}
