// Child process of ggml-isolated.ts: quantizes the rows of a job file one by one with the live
// oracle, one line per row on stdout (its bytes, base64), so a row that aborts the process is known.
import fs from "node:fs";
import { oracleQuantize } from "./ggml.js";

const job = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as { type: number; ncols: number; rows: string[]; imatrix: string | null };
const f32 = (b64: string) => {
  const b = Buffer.from(b64, "base64");
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const imatrix = job.imatrix === null ? null : f32(job.imatrix);
for (const row of job.rows) {
  const q = oracleQuantize(job.type, f32(row), 1, job.ncols, imatrix);
  fs.writeSync(1, Buffer.from(q).toString("base64") + "\n");
}
