import { describe, expect, it } from "vitest";
import { renderChart, escapeXml } from "../src/eval/chart.js";
import { markPareto, markdownTable, type BenchRow } from "../src/eval/report.js";

function row(label: string, bytes: number, kld: number, ppl = 90): BenchRow {
  return { label, file: `${label}.gguf`, bytes, bpw: (bytes * 8) / 14_688_512, ppl, pplErr: 1, kld, kld99: kld * 8, kldMax: kld * 50, topTokenPct: 95, ftype: label, imatrix: false };
}

/**
 * A strict XML 1.0 well-formedness check of the subset an SVG uses: elements, attributes (quoted,
 * unique), character data, comments, predefined/numeric entities. Returns the element names in
 * document order; throws on the first error.
 */
function parseXml(src: string): { name: string; attrs: Record<string, string> }[] {
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at offset ${i}: ${JSON.stringify(src.slice(i, i + 30))}`);
  };
  const readName = () => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) fail("expected a name");
    i += m![0].length;
    return m![0];
  };
  const skipWs = () => {
    while (i < src.length && " \t\r\n".includes(src[i])) i++;
  };
  const checkText = (t: string) => {
    if (t.includes("<")) fail("'<' in text");
    for (const m of t.matchAll(/&([^;]*);?/g)) {
      if (!m[0].endsWith(";") || !/^(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+)$/.test(m[1])) fail(`bad entity ${m[0]}`);
    }
  };
  if (src.startsWith("<?xml")) i = src.indexOf("?>") + 2;
  while (i < src.length) {
    if (src[i] !== "<") {
      const end = src.indexOf("<", i);
      const text = src.slice(i, end < 0 ? src.length : end);
      if (stack.length === 0 && text.trim() !== "") fail("text outside the root element");
      checkText(text);
      i += text.length;
      continue;
    }
    if (src.startsWith("<!--", i)) {
      const end = src.indexOf("-->", i);
      if (end < 0) fail("unterminated comment");
      i = end + 3;
      continue;
    }
    if (src.startsWith("</", i)) {
      i += 2;
      const name = readName();
      skipWs();
      if (src[i] !== ">") fail("expected '>'");
      i++;
      if (stack.pop() !== name) fail(`mismatched </${name}>`);
      continue;
    }
    i++;
    const name = readName();
    const attrs: Record<string, string> = {};
    for (;;) {
      const before = i;
      skipWs();
      if (src.startsWith("/>", i) || src[i] === ">") break;
      if (i === before) fail("expected whitespace before an attribute");
      const attr = readName();
      skipWs();
      if (src[i] !== "=") fail("expected '='");
      i++;
      skipWs();
      const q = src[i];
      if (q !== '"' && q !== "'") fail("unquoted attribute");
      const end = src.indexOf(q, i + 1);
      if (end < 0) fail("unterminated attribute");
      const value = src.slice(i + 1, end);
      checkText(value);
      if (attr in attrs) fail(`duplicate attribute ${attr}`);
      attrs[attr] = value;
      i = end + 1;
    }
    if (stack.length === 0 && ++roots > 1) fail("second root element");
    elements.push({ name, attrs });
    if (src.startsWith("/>", i)) i += 2;
    else {
      i++;
      stack.push(name);
    }
  }
  if (stack.length) throw new Error(`unclosed <${stack.join("><")}>`);
  if (roots !== 1) throw new Error("no root element");
  return elements;
}

describe("xml checker (self-test)", () => {
  it("rejects malformed documents", () => {
    expect(() => parseXml("<a><b></a></b>")).toThrow(/mismatched/);
    expect(() => parseXml('<a x="1" x="2"/>')).toThrow(/duplicate/);
    expect(() => parseXml("<a x=1/>")).toThrow(/unquoted/);
    expect(() => parseXml("<a>R&D</a>")).toThrow(/entity/);
    expect(() => parseXml("<a/><b/>")).toThrow(/second root/);
    expect(() => parseXml("<a>")).toThrow(/unclosed/);
    expect(parseXml('<a x="&lt;1"><b/>t &amp; u</a>').map((e) => e.name)).toEqual(["a", "b"]);
  });
});

describe("markPareto", () => {
  it("marks exactly the rows no other row beats on both size and KLD, sorted by size", () => {
    const rows = [row("C", 300, 0.01), row("A", 100, 0.1), row("B", 200, 0.2), row("D", 300, 0.02), row("E", 400, 0.001), row("F", 200, 0.05)];
    const marked = markPareto(rows);
    expect(marked.map((r) => r.label)).toEqual(["A", "F", "B", "C", "D", "E"]);
    expect(Object.fromEntries(marked.map((r) => [r.label, r.pareto]))).toEqual({ A: true, F: true, B: false, C: true, D: false, E: true });
  });

  it("keeps equal rows both optimal and can rank by PPL instead", () => {
    const rows = [row("X", 100, 0.1, 95), row("Y", 100, 0.1, 95), row("Z", 200, 0.05, 99)];
    expect(markPareto(rows).map((r) => r.pareto)).toEqual([true, true, true]);
    expect(markPareto(rows, "ppl").map((r) => [r.label, r.pareto])).toEqual([
      ["X", true],
      ["Y", true],
      ["Z", false],
    ]);
  });
});

describe("markdownTable", () => {
  it("has one line per row plus the base line, with the Pareto mark", () => {
    const rows = markPareto([row("Q4_K_M", 9_137_440, 0.002006), row("Q2_K", 5_948_704, 0.033806), row("Q4_0", 9_664_352, 0.00345)]);
    const md = markdownTable(rows, { file: "f16.gguf", bytes: 29_496_608, bpw: 16.01, ppl: 86.9, pplErr: 1.4 });
    const lines = md.split("\n").filter((l) => l.startsWith("|"));
    expect(lines).toHaveLength(2 + 1 + 3);
    expect(lines[3]).toMatch(/^\| ★ \| Q2_K \|/);
    expect(lines[5]).toMatch(/^\|  \| Q4_0 \|/);
  });

  it("names a preset's file type only when it differs from the preset's name", () => {
    const rows = [
      { ...row("Q4_K_M", 9_137_440, 0.002), preset: "Q4_K_M", ftype: "Q4_K_M" },
      { ...row("Q4_K_H", 8_137_440, 0.003), preset: "Q4_K_H", ftype: "Q3_K_L" },
    ];
    const lines = markdownTable(rows).split("\n").filter((l) => l.startsWith("|  |"));
    expect(lines[0]!.split(" | ")[2]).toBe("Q4_K_M");
    expect(lines[1]!.split(" | ")[2]).toBe("Q4_K_H (Q3_K_L)");
  });
});

describe("renderChart", () => {
  const rows = markPareto([
    row("Q2_K", 5_948_704, 0.0338),
    row("Q3_K_S", 6_853_920, 0.0101),
    row("Q3_K_M", 7_513_376, 0.00786),
    row("Q3_K_L", 8_070_432, 0.00779),
    row("IQ4_XS", 8_299_808, 0.00246),
    row("Q4_0 <&> 'x'", 8_664_352, 0.00345),
    row("Q4_K_S", 8_729_888, 0.00214),
    row("Q4_K_M", 9_137_440, 0.00201),
    row("Q8_0", 15_734_048, 0.000073),
  ]);

  it("is well-formed XML with exactly one point and one label per row", () => {
    const svg = renderChart(rows, { title: "tinyllama & friends" });
    const els = parseXml(svg);
    expect(els[0].name).toBe("svg");
    const points = els.filter((e) => e.name === "circle" && e.attrs.class === "point");
    expect(points).toHaveLength(rows.length);
    expect(els.filter((e) => e.name === "text" && e.attrs.class === "label")).toHaveLength(rows.length);
    expect(svg).toContain("Q4_0 &lt;&amp;&gt; &apos;x&apos;");
  });

  it("draws the Pareto front through the Pareto points in bpw order, KLD falling upward-left on a log axis", () => {
    const svg = renderChart(rows);
    const els = parseXml(svg);
    const front = els.filter((e) => e.name === "polyline" && e.attrs.class === "pareto-front");
    expect(front).toHaveLength(1);
    const pts = front[0].attrs.points.split(" ").map((p) => p.split(",").map(Number));
    expect(pts).toHaveLength(rows.filter((r) => r.pareto).length);
    for (let k = 1; k < pts.length; k++) {
      expect(pts[k][0]).toBeGreaterThan(pts[k - 1][0]);
      expect(pts[k][1]).toBeGreaterThan(pts[k - 1][1]); // lower KLD is lower on the chart: larger SVG y
    }
    // log scale: a 10× KLD ratio is the same vertical distance anywhere
    const y = (label: string) => Number(els.filter((e) => e.name === "circle")[rows.findIndex((r) => r.label === label)].attrs.cy);
    const decade = y("Q8_0") - y("Q4_K_M");
    expect(decade / Math.log10(0.00201 / 0.000073)).toBeCloseTo((y("Q4_K_M") - y("Q2_K")) / Math.log10(0.0338 / 0.00201), 0);
  });

  it("places labels without overlapping each other or any point when there is room", () => {
    const svg = renderChart(rows);
    const unescape = (t: string) => t.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&apos;/g, "'").replace(/&amp;/g, "&");
    const labels = [...svg.matchAll(/<text class="label" x="([^"]+)" y="([^"]+)"[^>]*>([^<]*)<\/text>/g)].map((m) => {
      const text = unescape(m[3]);
      return { x: Number(m[1]) - 1, y: Number(m[2]) - 10, w: text.length * 7, h: 12 };
    });
    const points = [...svg.matchAll(/<circle class="point" cx="([^"]+)" cy="([^"]+)"/g)].map((m) => ({ x: Number(m[1]) - 4, y: Number(m[2]) - 4, w: 8, h: 8 }));
    expect(labels).toHaveLength(rows.length);
    const hit = (a: typeof labels[0], b: typeof labels[0]) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    for (let a = 0; a < labels.length; a++) {
      for (let b = a + 1; b < labels.length; b++) expect(hit(labels[a], labels[b]), `labels ${a} and ${b}`).toBe(false);
      for (const p of points) expect(hit(labels[a], p), `label ${a} over a point`).toBe(false);
    }
  });

  it("tells hybrid presets from llama.cpp types by colour and imatrix files by a hollow point, with a legend that labels avoid", () => {
    const mixed = markPareto([
      ...rows.slice(0, 4),
      { ...row("Q4_K_H", 8_600_000, 0.0022), preset: "Q4_K_H", ftype: "Q4_K_M" },
      { ...row("Q4_K_H-imat", 8_600_224, 0.0021), preset: "Q4_K_H", ftype: "Q4_K_M", imatrix: true },
      { ...row("Q4_K_M-imat", 9_137_664, 0.00199), imatrix: true },
      { ...row("Q4_K_M", 9_137_440, 0.00201), preset: "Q4_K_M", ftype: "Q4_K_M" }, // a standard type built from its preset
    ]);
    const els = parseXml(renderChart(mixed));
    const point = (label: string) => els.filter((e) => e.name === "circle")[mixed.findIndex((r) => r.label === label)].attrs;
    const colour = (a: Record<string, string>) => a.stroke;
    expect(colour(point("Q4_K_H"))).not.toBe(colour(point("Q4_K_M")));
    expect(colour(point("Q4_K_H"))).toBe(colour(point("Q4_K_H-imat")));
    expect(colour(point("Q4_K_M"))).toBe(colour(point("Q2_K")));
    expect([point("Q4_K_M").fill, point("Q4_K_M-imat").fill, point("Q4_K_H-imat").fill]).toEqual([colour(point("Q4_K_M")), "#ffffff", "#ffffff"]);
    const legendAt = els.findIndex((e) => e.name === "g" && e.attrs.class === "legend");
    expect(legendAt).toBeGreaterThan(0);
    const legendTexts = els.slice(legendAt).filter((e) => e.name === "text" && !e.attrs.class).slice(0, 4);
    expect(legendTexts).toHaveLength(4);
    const box = els[legendAt + 1].attrs;
    expect(els[legendAt + 1].name).toBe("rect");
    const lb = { x: Number(box.x), y: Number(box.y), w: Number(box.width), h: Number(box.height) };
    for (const t of els.filter((e) => e.name === "text" && e.attrs.class === "label")) {
      const x = Number(t.attrs.x);
      const y = Number(t.attrs.y);
      expect(x > lb.x + lb.w || x + 60 < lb.x || y - 10 > lb.y + lb.h || y < lb.y, `label at ${x},${y} inside the legend`).toBe(true);
    }
    // without imatrix rows or presets, the legend has only what the chart shows
    const plain = parseXml(renderChart(rows));
    const plainLegend = plain.findIndex((e) => e.name === "g" && e.attrs.class === "legend");
    expect(plain.slice(plainLegend).filter((e) => e.name === "text" && !e.attrs.class).length).toBe(2); // file type, Pareto front
  });

  it("plots PPL on a linear axis when asked", () => {
    const svg = renderChart(markPareto(rows, "ppl"), { metric: "ppl" });
    expect(svg).toContain(">perplexity<");
    expect(parseXml(svg).filter((e) => e.name === "circle")).toHaveLength(rows.length);
  });

  it("escapes text", () => {
    expect(escapeXml(`a<b>&"'`)).toBe("a&lt;b&gt;&amp;&quot;&apos;");
  });
});
