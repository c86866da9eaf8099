// JSON-schema validators for schemas/*.json without paying for ajv on every CLI run: `npm run build`
// writes ajv "standalone" code for each schema into dist/validators/ (gen-validators.ts), and this
// loads it with a plain require. The generated module carries a hash of its schema text and of the
// ajv options; when it is missing or stale (a schema edited after the build, a bare `tsc`), the
// schema is compiled with ajv at first use, as before. Either way the validator and its errors are
// the same.
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { ErrorObject, Options } from "ajv";

/** ajv options every hquant schema is compiled with (build time and run time alike). */
export const AJV_OPTIONS: Options = { allErrors: false, strict: true, strictRequired: false, verbose: true };

/** dist/validators/ (two levels up from src/plan and dist/plan, like the pool's worker path). */
export const GENERATED_VALIDATORS_DIR = new URL("../../dist/validators/", import.meta.url);

export interface SchemaValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

interface GeneratedValidatorModule {
  schemaHash: string;
  validate: SchemaValidator;
}

const require = createRequire(import.meta.url);

/** Identifies what a generated validator was made from: the schema text and the ajv options. */
export function schemaHash(schemaText: string): string {
  return createHash("sha256").update(JSON.stringify(AJV_OPTIONS)).update("\0").update(schemaText).digest("hex");
}

export function generatedValidatorFile(name: string): URL {
  return new URL(`${name}.validate.cjs`, GENERATED_VALIDATORS_DIR);
}

function loadGenerated(name: string, hash: string): SchemaValidator | undefined {
  const file = generatedValidatorFile(name);
  if (!fs.existsSync(file)) return undefined;
  const mod = require(fileURLToPath(file)) as GeneratedValidatorModule;
  return mod.schemaHash === hash ? mod.validate : undefined;
}

function compileNow(schemaText: string): SchemaValidator {
  const { Ajv } = require("ajv") as typeof import("ajv");
  return new Ajv(AJV_OPTIONS).compile(JSON.parse(schemaText) as object);
}

/** The validator of schema file `schemaUrl`, generated name `name` (e.g. "schedule"). */
export function loadValidator(name: string, schemaUrl: URL): SchemaValidator {
  const text = fs.readFileSync(schemaUrl, "utf8");
  return loadGenerated(name, schemaHash(text)) ?? compileNow(text);
}

/** Runs a lazily loaded validator; [] when `data` is valid, else ajv's errors (the first one first). */
export function lazyValidator(name: string, schemaUrl: URL): (data: unknown) => ErrorObject[] {
  let validate: SchemaValidator | undefined;
  return (data) => {
    validate ??= loadValidator(name, schemaUrl);
    return validate(data) ? [] : (validate.errors ?? []);
  };
}
