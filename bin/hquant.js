#!/usr/bin/env node
// the evaluation process is forked before the CLI's modules load (src/cli/evaluation-start.ts)
import { startEvaluationProcess } from "../dist/cli/evaluation-start.js";

startEvaluationProcess(process.argv);
const { main } = await import("../dist/cli/main.js");
process.exitCode = await main(process.argv);
