import { describe, expect, it } from "vitest";
import { GGML_TYPES, rowSize, typeByName, typeInfo, typeName } from "../src/gguf/ggml-types.js";
import { oracleBlockSize, oracleRowSize, oracleTypeName, oracleTypeSize } from "./oracle/ggml.js";

describe("ggml type table", () => {
  it("matches llama.cpp's libggml-base for every id it knows", () => {
    for (let id = 0; id < 43; id++) {
      const name = oracleTypeName(id);
      const mine = typeInfo(id);
      if (oracleBlockSize(id) === 0) {
        // removed / deprecated ids: no GGUF may carry them
        expect(mine, `id ${id} (${name})`).toBeUndefined();
        continue;
      }
      expect(mine, `id ${id}`).toBeDefined();
      expect(mine!.name).toBe(name);
      expect(mine!.blockSize).toBe(oracleBlockSize(id));
      expect(mine!.typeSize).toBe(oracleTypeSize(id));
      const ncols = mine!.blockSize * 7;
      expect(rowSize(id, ncols)).toBe(oracleRowSize(id, ncols));
    }
    expect(GGML_TYPES.length).toBe(35);
  });

  it("looks names up case-insensitively and names unknown ids", () => {
    expect(typeByName("Q4_K")?.id).toBe(12);
    expect(typeByName("iq4_xs")?.id).toBe(23);
    expect(typeByName("q4_2")).toBeUndefined();
    expect(typeName(31)).toBe("type31");
  });
});
