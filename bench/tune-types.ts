// Which candidate types can win (the decision behind tune's DEFAULT_CANDIDATE_TYPES): the proxy error of every
// tensor of the bundled model (with its imatrix) for every type hquant writes; per type, on how many
// tensors no smaller-or-equal type has less error, and error ratios of the excluded types.
//   npx tsx bench/tune-types.ts [TENSOR_REGEX]
import { openModel } from "../src/gguf/reader.js";
import { loadImatrix } from "../src/imatrix/index.js";
import { tuneSpace, ALL_CANDIDATE_TYPES, typeBits } from "../src/tune/candidates.js";
import { proxyErrors } from "../src/tune/proxy.js";
import { typeName, GGMLType } from "../src/gguf/ggml-types.js";
const model = await openModel("models/tinyllama-16l-f16.gguf");
const im = await loadImatrix("test/fixtures/imatrix/imatrix.gguf");
const types = ALL_CANDIDATE_TYPES.filter((t) => t !== GGMLType.F16);
const space = tuneSpace(model, types, im);
const only = process.argv[2] ? space.tensors.filter((t) => new RegExp(process.argv[2]!).test(t.name)) : space.tensors;
const t0 = performance.now();
const errs = await proxyErrors(model, { ...space, tensors: only }, im);
console.log(`proxy on ${only.length} tensors × ${types.length} types: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
// per tensor: is each type on the lower convex-ish front (no type at <= bits with lower error)?
const wins = new Map<string, number>();
const ratio = new Map<string, number[]>();
for (const t of only) {
  const e = errs.get(t.name)!;
  for (const o of t.options) {
    const dominated = t.options.some((p) => p.type !== o.type && p.bytes <= o.bytes && e.get(p.type)! <= e.get(o.type)!);
    if (!dominated) wins.set(typeName(o.type), (wins.get(typeName(o.type)) ?? 0) + 1);
  }
  const r = (a: GGMLType, b: GGMLType) => { const x = e.get(a), y = e.get(b); if (x && y) ratio.set(`${typeName(a)}/${typeName(b)}`, [...(ratio.get(`${typeName(a)}/${typeName(b)}`) ?? []), x / y]); };
  r(GGMLType.TQ1_0, GGMLType.IQ1_M); r(GGMLType.TQ2_0, GGMLType.IQ2_XXS); r(GGMLType.Q1_0, GGMLType.IQ1_S); r(GGMLType.Q2_0, GGMLType.IQ2_XXS);
  r(GGMLType.MXFP4, GGMLType.IQ4_XS); r(GGMLType.NVFP4, GGMLType.IQ4_XS); r(GGMLType.Q2_K, GGMLType.IQ2_S); r(GGMLType.IQ3_S, GGMLType.Q3_K);
}
console.log("undominated (tensors of", only.length, "):");
for (const t of types) console.log(`  ${typeName(t).padEnd(8)} ${typeBits(t).toFixed(4)} bpw  ${wins.get(typeName(t)) ?? 0}`);
const gm = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
for (const [k, v] of ratio) console.log(`  error ratio ${k}: geomean ${gm(v).toFixed(2)}, min ${Math.min(...v).toFixed(2)}, max ${Math.max(...v).toFixed(2)}`);
