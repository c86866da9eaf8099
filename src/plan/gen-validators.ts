// Build step (`npm run build:schemas`, after tsc): ajv standalone code for every schema hquant
// validates, written to dist/validators/<name>.validate.cjs with the hash validators.ts checks.
// Run as `node dist/plan/gen-validators.js`; the CLI never imports this file.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import standalone from "ajv/dist/standalone/index.js";
import { AJV_OPTIONS, GENERATED_VALIDATORS_DIR, generatedValidatorFile, schemaHash } from "./validators.js";
import { SCHEDULE_SCHEMA_URL } from "./schedule.js";
import { SURGERY_SCHEMA_URL } from "../surgery/schema.js";

export const GENERATED_SCHEMAS: readonly { name: string; schemaUrl: URL }[] = [
  { name: "schedule", schemaUrl: SCHEDULE_SCHEMA_URL },
  { name: "surgery", schemaUrl: SURGERY_SCHEMA_URL },
];

/** The CommonJS module text of one generated validator. */
export function validatorModuleSource(schemaText: string): string {
  const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true } });
  const validate = ajv.compile(JSON.parse(schemaText) as object);
  const code = standalone.default(ajv, validate);
  return `${code}\nmodule.exports.schemaHash = ${JSON.stringify(schemaHash(schemaText))};\nmodule.exports.validate = module.exports;\n`;
}

function main(): void {
  fs.mkdirSync(GENERATED_VALIDATORS_DIR, { recursive: true });
  for (const { name, schemaUrl } of GENERATED_SCHEMAS) {
    const source = validatorModuleSource(fs.readFileSync(schemaUrl, "utf8"));
    fs.writeFileSync(generatedValidatorFile(name), source);
    process.stdout.write(`wrote ${fileURLToPath(generatedValidatorFile(name))}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) main();
