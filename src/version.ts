// hquant's version: package.json's, read once (../package.json from both src/ and dist/).
import fs from "node:fs";

export const HQUANT_VERSION: string = (JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
