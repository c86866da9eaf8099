// Layer surgery: the `surgery` list's schema errors and the recipe of every final layer after each
// op and after compositions (expected lists written out by hand from the op definitions).
import { describe, expect, it } from "vitest";
import { UserError } from "../src/errors.js";
import { applySurgery, formatRecipe, type LayerRecipe, type SurgeryOp } from "../src/surgery/ops.js";
import { validateSurgery } from "../src/surgery/schema.js";

const c = (src: number): LayerRecipe => ({ kind: "copy", src });
const copies = (...srcs: number[]) => srcs.map(c);

describe("applySurgery: one op", () => {
  it("delete removes the listed layers (indices of the list before the op)", () => {
    expect(applySurgery(8, [{ op: "delete", layers: [7, 3] }])).toEqual(copies(0, 1, 2, 4, 5, 6));
  });

  it("swap exchanges two layers", () => {
    expect(applySurgery(5, [{ op: "swap", a: 1, b: 3 }])).toEqual(copies(0, 3, 2, 1, 4));
  });

  it("duplicate inserts a copy after `after` (-1: at the front)", () => {
    expect(applySurgery(4, [{ op: "duplicate", layer: 1, after: 2 }])).toEqual(copies(0, 1, 2, 1, 3));
    expect(applySurgery(3, [{ op: "duplicate", layer: 2, after: -1 }])).toEqual(copies(2, 0, 1, 2));
    expect(applySurgery(3, [{ op: "duplicate", layer: 0, after: 2 }])).toEqual(copies(0, 1, 2, 0));
  });

  it("interpolate inserts (1−α)·a + α·b after `after`", () => {
    expect(applySurgery(4, [{ op: "interpolate", a: 1, b: 2, alpha: 0.25, after: 1 }])).toEqual([
      c(0),
      c(1),
      { kind: "interpolate", a: c(1), b: c(2), alpha: 0.25 },
      c(2),
      c(3),
    ]);
  });

  it("interpolate with α = 0 / α = 1 is an exact copy of a / b", () => {
    expect(applySurgery(3, [{ op: "interpolate", a: 0, b: 2, alpha: 0, after: 0 }])).toEqual(copies(0, 0, 1, 2));
    expect(applySurgery(3, [{ op: "interpolate", a: 0, b: 2, alpha: 1, after: 0 }])).toEqual(copies(0, 2, 1, 2));
  });

  it("merge collapses from..from+count-1 into one LaCo layer", () => {
    expect(applySurgery(6, [{ op: "merge", from: 2, count: 3 }])).toEqual([
      c(0),
      c(1),
      { kind: "merge", base: c(2), others: [c(3), c(4)] },
      c(5),
    ]);
  });
});

describe("applySurgery: ops compose in order", () => {
  it("each op's indices refer to the list after the previous ops", () => {
    // 0 1 2 3 4 5 6 7  → delete 0 → 1 2 3 4 5 6 7 → swap 0,1 → 2 1 3 4 5 6 7
    // → duplicate layer 0 (= src 2) after 6 → 2 1 3 4 5 6 7 2 → merge 1..2 (srcs 1, 3) → 2 m(1,3) 4 5 6 7 2
    const ops: SurgeryOp[] = [
      { op: "delete", layers: [0] },
      { op: "swap", a: 0, b: 1 },
      { op: "duplicate", layer: 0, after: 6 },
      { op: "merge", from: 1, count: 2 },
    ];
    expect(applySurgery(8, ops)).toEqual([c(2), { kind: "merge", base: c(1), others: [c(3)] }, c(4), c(5), c(6), c(7), c(2)]);
  });

  it("ops on computed layers nest their recipes (no flattening)", () => {
    const ops: SurgeryOp[] = [
      { op: "merge", from: 0, count: 2 }, // m(0,1) 2 3
      { op: "interpolate", a: 0, b: 2, alpha: 0.5, after: 0 }, // m(0,1) lerp(m(0,1),3) 2 3
      { op: "duplicate", layer: 1, after: 3 }, // … 3 lerp(…)
      { op: "merge", from: 1, count: 2 }, // m(0,1) merge(lerp(m,3), 2) 3 lerp
    ];
    const r = applySurgery(4, ops);
    expect(r.map(formatRecipe)).toEqual([
      "merge(0, 1)",
      "merge(lerp(merge(0, 1), 3, 0.5), 2)",
      "3",
      "lerp(merge(0, 1), 3, 0.5)",
    ]);
  });

  it("no ops is the identity", () => {
    expect(applySurgery(3, [])).toEqual(copies(0, 1, 2));
  });
});

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message;
  }
  throw new Error("expected a UserError");
}

describe("applySurgery: range errors name the op index and field", () => {
  const cases: [string, number, SurgeryOp[], string][] = [
    ["after past the end", 32, [{ op: "duplicate", layer: 5, after: 40 }], "s.json: surgery[0].after: layer 40 does not exist (the layer list has 32 layers at that point)"],
    [
      "index checked against the list at that point",
      32,
      [{ op: "delete", layers: [0, 1] }, { op: "merge", from: 0, count: 2 }, { op: "duplicate", layer: 30, after: 0 }],
      "s.json: surgery[2].layer: layer 30 does not exist (the layer list has 29 layers at that point)",
    ],
    ["delete twice", 8, [{ op: "delete", layers: [3, 7, 3] }], "s.json: surgery[0].layers[2]: layer 3 is listed twice"],
    ["delete out of range", 8, [{ op: "delete", layers: [3, 8] }], "s.json: surgery[0].layers[1]: layer 8 does not exist (the layer list has 8 layers at that point)"],
    ["delete all", 2, [{ op: "delete", layers: [0, 1] }], "s.json: surgery[0].layers: would delete every layer (the layer list has 2 layers at that point)"],
    ["swap with itself", 4, [{ op: "swap", a: 2, b: 2 }], "s.json: surgery[0].b: swaps layer 2 with itself"],
    ["swap b out of range", 4, [{ op: "swap", a: 2, b: 4 }], "s.json: surgery[0].b: layer 4 does not exist (the layer list has 4 layers at that point)"],
    ["interpolate a == b", 4, [{ op: "interpolate", a: 1, b: 1, alpha: 0.5, after: 1 }], "s.json: surgery[0].b: interpolates layer 1 with itself (use duplicate)"],
    ["merge past the end", 32, [{ op: "merge", from: 30, count: 3 }], "s.json: surgery[0].count: layers 30-32 do not all exist (the layer list has 32 layers at that point)"],
    ["merge from out of range", 4, [{ op: "merge", from: 4, count: 2 }], "s.json: surgery[0].from: layer 4 does not exist (the layer list has 4 layers at that point)"],
  ];
  for (const [what, n, ops, message] of cases) {
    it(what, () => expect(errorOf(() => applySurgery(n, ops, "s.json"))).toBe(message));
  }

  it("more than llama.cpp's 512 layers", () => {
    const ops: SurgeryOp[] = [{ op: "duplicate", layer: 0, after: 0 }];
    expect(errorOf(() => applySurgery(512, ops))).toBe("surgery[0]: the layer list would have 513 layers; llama.cpp loads at most 512");
  });
});

describe("validateSurgery (schemas/surgery.schema.json)", () => {
  it("accepts the five ops of the issue", () => {
    const ops = [
      { op: "delete", layers: [3, 7] },
      { op: "swap", a: 11, b: 12 },
      { op: "duplicate", layer: 5, after: 20 },
      { op: "interpolate", a: 20, b: 22, alpha: 0.5, after: 21 },
      { op: "merge", from: 10, count: 3 },
    ];
    expect(validateSurgery(ops, "s.json")).toEqual(ops);
  });

  const cases: [string, unknown, string][] = [
    ["unknown op", [{ op: "prune" }], 's.json: surgery[0].op: unknown op "prune"; valid: delete, swap, duplicate, interpolate, merge'],
    ["missing op", [{ layers: [1] }], "s.json: surgery[0].op: required"],
    ["missing field", [{ op: "delete", layers: [1] }, { op: "swap", a: 1 }], "s.json: surgery[1].b: required"],
    ["unknown field", [{ op: "merge", from: 1, count: 2, to: 3 }], 's.json: surgery[0].to: unknown field for op "merge"; allowed: op, from, count'],
    ["alpha above 1", [{ op: "interpolate", a: 1, b: 2, alpha: 1.5, after: 1 }], "s.json: surgery[0].alpha: must be ≤ 1, got 1.5"],
    ["negative alpha", [{ op: "interpolate", a: 1, b: 2, alpha: -0.1, after: 1 }], "s.json: surgery[0].alpha: must be ≥ 0, got -0.1"],
    ["fractional index", [{ op: "delete", layers: [1.5] }], "s.json: surgery[0].layers[0]: must be a layer index (an integer), got 1.5"],
    ["string index", [{ op: "swap", a: "1", b: 2 }], 's.json: surgery[0].a: must be a layer index (an integer), got "1"'],
    ["negative index", [{ op: "duplicate", layer: -1, after: 2 }], "s.json: surgery[0].layer: must be ≥ 0, got -1"],
    ["after below -1", [{ op: "duplicate", layer: 1, after: -2 }], "s.json: surgery[0].after: must be ≥ -1, got -2"],
    ["merge of one layer", [{ op: "merge", from: 1, count: 1 }], "s.json: surgery[0].count: must be ≥ 2, got 1"],
    ["empty delete", [{ op: "delete", layers: [] }], "s.json: surgery[0].layers: must list at least 1 layer"],
    ["not a list", { op: "delete", layers: [1] }, 's.json: surgery: must be an array, got {"op":"delete","layers":[1]}'],
    ["not an object", [3], "s.json: surgery[0]: must be an object, got 3"],
  ];
  for (const [what, data, message] of cases) {
    it(what, () => expect(errorOf(() => validateSurgery(data, "s.json"))).toBe(message));
  }
});
