// --budget: bits per weight (`4.5`, `4.5bpw`), a size (`8.2MiB`, `4.1GB`, `8549920` bytes), or a file
// type name (`IQ4_XS`: the exact size llama-quantize's file of that type has for this model, from
// the planner). A size budget bounds the whole file as `hquant plan` counts it (header included);
// a bpw budget bounds bits per weight as `hquant plan` prints it (tensor data × 8 / weights).
import { UserError } from "../errors.js";
import { fileTypeByName, type FileTypeName } from "../plan/ftypes.js";

export type BudgetSpec =
  | { kind: "bpw"; bpw: number; text: string }
  | { kind: "bytes"; bytes: number; text: string }
  | { kind: "ftype"; ftype: FileTypeName; text: string };

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};

/** Largest bare number read as bits per weight (a bare integer above it is bytes). */
const MAX_BARE_BPW = 32;

export const BUDGET_FORMS = "bits per weight (4.5, 4.5bpw), a size (8.2MiB, 4.1GB, bytes) or a file type name (IQ4_XS)";

export function parseBudget(text: string, where = "--budget"): BudgetSpec {
  const s = text.trim();
  const bad = (): never => {
    throw new UserError(`${where} ${JSON.stringify(text)}: not a budget; give ${BUDGET_FORMS}`);
  };
  // a bare number is bits per weight or bytes here, never a numeric llama_ftype (15 = Q4_K_M)
  const ftype = /^[\d.]/.test(s) ? undefined : fileTypeByName(s);
  if (ftype) return { kind: "ftype", ftype: ftype.name, text: s };
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)$/.exec(s);
  if (!m) return bad();
  const value = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  if (!(value > 0)) return bad();
  if (unit === "bpw" || (unit === "" && (!Number.isInteger(value) || value <= MAX_BARE_BPW))) return { kind: "bpw", bpw: value, text: s };
  const scale = unit === "" ? 1 : UNITS[unit];
  if (scale === undefined) return bad();
  // 4.1 × 1e9 is 4099999999.9999995 in binary floating point: a product that close to an integer is that integer
  return { kind: "bytes", bytes: Math.floor(value * scale + 1e-6), text: s };
}

/** A comma-separated --budgets list. */
export function parseBudgets(list: string, where = "--budgets"): BudgetSpec[] {
  const parts = list.split(",").map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) throw new UserError(`${where}: no budget given; give ${BUDGET_FORMS}`);
  return parts.map((p) => parseBudget(p, where));
}

/** What the allocation must respect, once the budget is known against the model. */
export type BudgetLimit =
  | { kind: "file"; maxFileBytes: number; label: string }
  | { kind: "bpw"; maxTensorBytes: number; bpw: number; label: string };

export const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
