// Small inline-SVG charts of our own (no library, no CDN): a line chart over labelled points and a grouped
// bar chart. Each is a <figure> whose SVG has role="img" with <title> and <desc>, every point or bar its own
// <title> (the value on hover), and the same numbers as a table in a <details> below for anyone who
// would rather read them, or cannot see the drawing. Colours are the Okabe–Ito palette, distinguishable
// with the common colour-vision deficiencies; series are also told apart by their legend's order and marks.

import { el } from "./dom.js";
import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
export const COLOURS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00"];
const WIDTH = 640;
const HEIGHT = 240;
const MARGIN = { top: 12, right: 16, bottom: 44, left: 64 };
const MAX_X_LABELS = 8;
let made = 0;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Four gridlines at round steps (1, 2 or 5 × 10^k, at least 1 for counts): the axis reads in round numbers.
function niceMax(values, whole) {
  const largest = Math.max(0, ...values.filter((v) => v !== null && Number.isFinite(v)));
  if (largest === 0) return 4;
  const rough = largest / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
  return 4 * (whole ? Math.max(1, Math.ceil(step)) : step);
}

function frame(title, description, yMax, format) {
  const id = `chart-${++made}`;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (value) => MARGIN.top + plotHeight - (value / yMax) * plotHeight;
  const root = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title ${id}-desc`, class: "chart" },
    svg("title", { id: `${id}-title` }, title),
    svg("desc", { id: `${id}-desc` }, description),
  );
  for (let i = 0; i <= 4; i++) {
    const value = (yMax * i) / 4;
    root.append(
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value), class: "chart-grid" }),
      svg("text", { x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end", class: "chart-tick" }, format(value)),
    );
  }
  return { root, y };
}

function xLabels(root, labels, x, shortLabel) {
  const every = Math.max(1, Math.ceil(labels.length / MAX_X_LABELS));
  labels.forEach((label, i) => {
    if (i % every !== 0) return;
    root.append(
      svg("text", { x: x(i), y: HEIGHT - MARGIN.bottom + 18, "text-anchor": "middle", class: "chart-tick" }, shortLabel(label)),
    );
  });
}

function legend(series) {
  return el(
    "ul",
    { class: "chart-legend" },
    series.map((s, i) => el("li", {}, el("span", { class: `chart-swatch chart-swatch-${i}`, "aria-hidden": "true" }), s.name)),
  );
}

function table(title, labels, series, format, labelHeader) {
  return el(
    "details",
    { class: "chart-table" },
    el("summary", { text: t("reports.chart.asTable") }),
    el(
      "table",
      {},
      el("caption", { text: title }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: labelHeader }), series.map((s) => el("th", { scope: "col", text: s.name })))),
      el(
        "tbody",
        {},
        labels.map((label, i) =>
          el("tr", {}, el("th", { scope: "row", text: label }), series.map((s) => el("td", { text: s.values[i] === null ? "–" : format(s.values[i]) }))),
        ),
      ),
    ),
  );
}

// labels: the x values' text (shortLabel: as the axis shows it); series: [{ name, values }] (null: no value
// there); format: a value as text; whole: counts, so the axis steps by whole numbers.
export function lineChart({ title, description, labels, series, format, shortLabel = (l) => l, labelHeader = "", whole = false }) {
  const yMax = niceMax(series.flatMap((s) => s.values), whole);
  const { root, y } = frame(title, description, yMax, format);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const x = (i) => MARGIN.left + (labels.length > 1 ? (i / (labels.length - 1)) * plotWidth : plotWidth / 2);
  xLabels(root, labels, x, shortLabel);
  series.forEach((s, n) => {
    let path = "";
    let pen = "M";
    s.values.forEach((value, i) => {
      if (value === null) {
        pen = "M";
        return;
      }
      path += `${pen}${x(i).toFixed(1)},${y(value).toFixed(1)} `;
      pen = "L";
    });
    const group = svg("g", { class: `chart-series chart-series-${n}` });
    if (path) group.append(svg("path", { d: path.trim(), fill: "none", stroke: COLOURS[n % COLOURS.length], "stroke-width": 2 }));
    s.values.forEach((value, i) => {
      if (value === null) return;
      group.append(
        svg("circle", { cx: x(i), cy: y(value), r: 3, fill: COLOURS[n % COLOURS.length] }, svg("title", {}, `${s.name}, ${labels[i]}: ${format(value)}`)),
      );
    });
    root.append(group);
  });
  return el("figure", { class: "chart-figure" }, el("figcaption", { text: title }), root, legend(series), table(title, labels, series, format, labelHeader));
}

// Groups of bars side by side, one group per label (e.g. one per agent), one bar per series.
export function barChart({ title, description, labels, series, format, labelHeader = "", whole = false }) {
  const yMax = niceMax(series.flatMap((s) => s.values), whole);
  const { root, y } = frame(title, description, yMax, format);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const group = plotWidth / Math.max(1, labels.length);
  const bar = Math.min(28, (group * 0.8) / Math.max(1, series.length));
  const x = (i) => MARGIN.left + group * i + group / 2;
  xLabels(root, labels, x, (label) => (label.length > 14 ? `${label.slice(0, 13)}…` : label));
  labels.forEach((label, i) => {
    series.forEach((s, n) => {
      const value = s.values[i] ?? 0;
      const left = x(i) - (bar * series.length) / 2 + bar * n;
      root.append(
        svg(
          "rect",
          { x: left, y: y(value), width: Math.max(1, bar - 2), height: Math.max(0, y(0) - y(value)), fill: COLOURS[n % COLOURS.length], class: `chart-series-${n}` },
          svg("title", {}, `${s.name}, ${label}: ${format(value)}`),
        ),
      );
    });
  });
  return el("figure", { class: "chart-figure" }, el("figcaption", { text: title }), root, legend(series), table(title, labels, series, format, labelHeader));
}
