// A small SVG line chart of values over time: the line, the zero line when in range, and the ends labelled.

export interface Point {
  at: number; // epoch milliseconds
  value: number;
}

export interface ChartText {
  /** Formats a value for the labels. */
  value: (v: number) => string;
  /** Formats a time for the labels. */
  time: (ms: number) => string;
}

const HEIGHT = 200;
const PAD = { left: 8, right: 8, top: 24, bottom: 24 };
const SVG = "http://www.w3.org/2000/svg";

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Drawn at `width` user units to the pixel, so labels keep their size; the y range follows the data. */
export function lineChart(points: Point[], text: ChartText, width: number, testid: string): SVGSVGElement {
  const svg = el("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, class: "line-chart", role: "img", "data-testid": testid });
  if (points.length === 0) {
    svg.append(
      el("text", { x: width / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "note" }, "No PnL samples yet"),
    );
    return svg;
  }
  const first = points[0];
  const last = points[points.length - 1];
  const values = points.map((p) => p.value);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const margin = (hi - lo || Math.abs(hi) || 1) * 0.1;
  const [bottom, top] = [lo - margin, hi + margin];
  const t1 = Math.max(last.at, first.at + 1000);
  const x = (t: number): number => PAD.left + ((t - first.at) / (t1 - first.at)) * (width - PAD.left - PAD.right);
  const y = (v: number): number => PAD.top + (1 - (v - bottom) / (top - bottom)) * (HEIGHT - PAD.top - PAD.bottom);
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
  const floor = (HEIGHT - PAD.bottom).toFixed(1);
  const tone = last.value < 0 ? "neg" : "pos";
  svg.setAttribute(
    "aria-label",
    `PnL from ${text.time(first.at)} to ${text.time(last.at)}: now ${text.value(last.value)}`,
  );
  if (bottom < 0 && top > 0)
    svg.append(el("line", { x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0), class: "zero" }));
  svg.append(
    el("path", { d: `${line}L${x(last.at).toFixed(1)},${floor}L${x(first.at).toFixed(1)},${floor}Z`, class: "area" }),
    el("path", { d: line, class: `line ${tone}` }),
    el("circle", { cx: x(last.at), cy: y(last.value), r: 3.5, class: `dot ${tone}` }),
    el("text", { x: PAD.left, y: 15, class: "label" }, `high ${text.value(hi)}`),
    el(
      "text",
      { x: width - PAD.right, y: 15, "text-anchor": "end", class: "label now" },
      `now ${text.value(last.value)}`,
    ),
    el("text", { x: PAD.left, y: HEIGHT - 7, class: "label" }, `${text.time(first.at)} · low ${text.value(lo)}`),
    el("text", { x: width - PAD.right, y: HEIGHT - 7, "text-anchor": "end", class: "label" }, text.time(last.at)),
  );
  return svg;
}
