// The `surgery` list of a schedule: validated against schemas/surgery.schema.json with ajv, each
// error turned into one line naming the op index and field (`surgery[2].alpha: must be ≤ 1`).
// Index ranges depend on the layer list at each step and are checked by applySurgery (ops.ts).
import type { ErrorObject } from "ajv";
import fs from "node:fs";
import { UserError } from "../errors.js";
import type { SurgeryOp } from "./ops.js";
import { lazyValidator } from "../plan/validators.js";

/** schemas/surgery.schema.json (a package asset, two levels up from src/surgery and dist/surgery). */
export const SURGERY_SCHEMA_URL = new URL("../../schemas/surgery.schema.json", import.meta.url);

export const SURGERY_OPS: readonly SurgeryOp["op"][] = ["delete", "swap", "duplicate", "interpolate", "merge"];

/** The schema object (e.g. for a schedule schema that wants to `$ref` it). */
export function surgerySchema(): object {
  return JSON.parse(fs.readFileSync(SURGERY_SCHEMA_URL, "utf8")) as object;
}

// loaded at first use (generated code from dist/validators/ when it is current)
const schemaErrors = lazyValidator("surgery", SURGERY_SCHEMA_URL);

/** `/2/layers/0` → `surgery[2].layers[0]` */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split("/").slice(1);
  if (extra !== undefined) parts.push(extra);
  let out = "surgery";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : `.${p}`;
  return out;
}

function valueAt(data: unknown, instancePath: string): unknown {
  let v: unknown = data;
  for (const p of instancePath.split("/").slice(1)) v = (v as Record<string, unknown>)?.[p];
  return v;
}

const COMPARISONS: Record<string, string> = { minimum: "≥", maximum: "≤", exclusiveMinimum: ">", exclusiveMaximum: "<" };

/** One readable line for ajv's first error. */
function describe(err: ErrorObject, data: unknown): string {
  const field = fieldPath(err.instancePath);
  const value = valueAt(data, err.instancePath);
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case "enum":
      return `${field}: unknown op ${JSON.stringify(value)}; valid: ${SURGERY_OPS.join(", ")}`;
    case "required":
      return `${fieldPath(err.instancePath, params.missingProperty as string)}: required`;
    case "additionalProperties": {
      const op = (valueAt(data, err.instancePath) as { op?: unknown }).op;
      const allowed = Object.keys((err.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return `${fieldPath(err.instancePath, params.additionalProperty as string)}: unknown field for op ${JSON.stringify(op)}; allowed: ${allowed.join(", ")}`;
    }
    case "type": {
      const what = params.type === "integer" ? "a layer index (an integer)" : `${params.type === "array" || params.type === "object" ? "an" : "a"} ${params.type}`;
      return `${field}: must be ${what}, got ${JSON.stringify(value)}`;
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return `${field}: must be ${COMPARISONS[err.keyword]} ${String(params.limit)}, got ${JSON.stringify(value)}`;
    case "minItems":
      return `${field}: must list at least ${String(params.limit)} layer`;
    default:
      return `${field}: ${err.message ?? "invalid"}`;
  }
}

/** Validates a schedule's `surgery` value; `source` (the schedule file) prefixes errors. */
export function validateSurgery(data: unknown, source?: string): SurgeryOp[] {
  const errors = schemaErrors(data);
  if (errors.length > 0) {
    throw new UserError(`${source === undefined ? "" : `${source}: `}${describe(errors[0]!, data)}`);
  }
  return data as SurgeryOp[];
}
