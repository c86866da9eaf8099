// Loads a GGUF in llama.cpp itself (node-llama-cpp, the npm package's prebuilt CPU build) and
// generates greedily: the "it works in llama.cpp" check of the build and surgery tests.
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";

export interface Generated {
  /** tensors llama.cpp read from the file */
  tensorCount: number | undefined;
  tokens: Token[];
  text: string;
}

/** Greedy generation of `count` tokens after `prompt`, with a 256-token context on 2 threads. */
export async function generateInLlamaCpp(modelPath: string, count: number, prompt = "The whale"): Promise<Generated> {
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    const context = await model.createContext({ contextSize: 256, threads: 2, batchSize: 256 });
    const tokens: Token[] = [];
    for await (const token of context.getSequence().evaluate(model.tokenize(prompt), { temperature: 0 })) {
      tokens.push(token);
      if (tokens.length === count) break;
    }
    const result = { tensorCount: model.fileInfo.tensorInfo?.length, tokens, text: model.detokenize(tokens) };
    await context.dispose();
    await model.dispose();
    return result;
  } finally {
    await llama.dispose();
  }
}
