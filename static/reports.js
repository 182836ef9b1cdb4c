// The reports page: a date range in the tenant's time zone (presets or custom), queue and agent filters,
// then GET /api/reports/summary drawn as cards, charts (static/charts.js), the tables "By queue" and "By
// agent", the CSV download links for the same range, and the definitions of every figure (docs/reports.md).
// The range and filters live in the address, so a reload or a shared link shows the same report.

import * as api from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { byId, clear, el, setText } from "./dom.js";
import { currentLanguage, formatDuration, t } from "./i18n.js";
import { startPage } from "./page.js";

const me = await startPage();
const zone = me.time_zone || "UTC";
const form = byId("reports-filters");
const preset = byId("reports-preset");
const fromInput = byId("reports-from");
const toInput = byId("reports-to");
const queueSelect = byId("reports-queue");
const agentSelect = byId("reports-agent");
const status = byId("reports-status");

// ---- dates: plain YYYY-MM-DD days of the tenant's calendar, computed in UTC so no clock change moves them

function todayInZone() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}

function shift(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

const monthStart = (day) => `${day.slice(0, 8)}01`;

function presetRange(name) {
  const today = todayInZone();
  if (name === "today") return [today, today];
  if (name === "yesterday") return [shift(today, -1), shift(today, -1)];
  if (name === "last7") return [shift(today, -6), today];
  if (name === "thisMonth") return [monthStart(today), today];
  if (name === "lastMonth") {
    const end = shift(monthStart(today), -1);
    return [monthStart(end), end];
  }
  return null;
}

// ---- formatting, in the person's language

const numbers = () => new Intl.NumberFormat(currentLanguage());
const percents = () => new Intl.NumberFormat(currentLanguage(), { style: "percent", maximumFractionDigits: 1 });
const DASH = "–";
const count = (value) => numbers().format(value);
const share = (value) => (value === null || value === undefined ? DASH : percents().format(value));
const seconds = (value) => (value === null || value === undefined ? DASH : formatDuration(value));

// A bucket is a local wall time ("2026-10-25T01:00" or "2026-10-25"): shown as such, whatever the zone.
function wallTime(bucket, unit, options) {
  const wall = new Date(unit === "hour" ? `${bucket}:00Z` : `${bucket}T00:00:00Z`);
  return new Intl.DateTimeFormat(currentLanguage(), { timeZone: "UTC", ...options }).format(wall);
}

function bucketLabel(bucket, unit) {
  const day = { day: "numeric", month: "short" };
  return wallTime(bucket, unit, unit === "hour" ? { ...day, hour: "2-digit", minute: "2-digit" } : day);
}

// On the axis: the hour alone, and the day where one begins.
function axisLabel(bucket, unit) {
  if (unit === "hour" && !bucket.endsWith("T00:00")) return wallTime(bucket, unit, { hour: "2-digit", minute: "2-digit" });
  return wallTime(bucket, unit, { day: "numeric", month: "short" });
}

// ---- the page's parts

function cards(totals) {
  const card = (label, value, detail) =>
    el("div", { class: "reports-card" }, el("span", { class: "reports-card-label", text: label }), el("strong", { text: value }), el("span", { class: "reports-card-detail", text: detail }));
  const p90 = (duration) => t("reports.card.p90", { value: seconds(duration.p90) });
  return [
    card(t("reports.fig.queued"), count(totals.queued), t("reports.card.reopened", { count: totals.reopened })),
    card(t("reports.fig.answered"), count(totals.answered), t("reports.card.inTarget", { count: totals.answered_in_target })),
    card(t("reports.fig.serviceLevel"), share(totals.service_level), t("reports.card.abandoned", { count: totals.abandoned, rate: share(totals.abandon_rate) })),
    card(t("reports.fig.wait"), seconds(totals.wait.average), p90(totals.wait)),
    card(t("reports.fig.firstResponse"), seconds(totals.first_response.average), p90(totals.first_response)),
    card(t("reports.fig.agentFirstResponse"), seconds(totals.agent_first_response.average), p90(totals.agent_first_response)),
    card(t("reports.fig.handle"), seconds(totals.handle.average), p90(totals.handle)),
    card(t("reports.fig.resolved"), count(totals.resolution.count), t("reports.card.closed", { count: totals.closed })),
    card(t("reports.fig.transfers"), count(totals.transfers_out), t("reports.card.reroutes", { count: totals.reroutes })),
  ];
}

const DURATION_COLUMNS = (key, name) => [
  [t("reports.col.average", { figure: name }), (f) => seconds(f[key].average)],
  [t("reports.col.p50", { figure: name }), (f) => seconds(f[key].p50)],
  [t("reports.col.p90", { figure: name }), (f) => seconds(f[key].p90)],
];

function queueColumns() {
  return [
    [t("reports.fig.queued"), (f) => count(f.queued)],
    [t("reports.fig.answered"), (f) => count(f.answered)],
    [t("reports.fig.serviceLevel"), (f) => share(f.service_level)],
    [t("reports.fig.abandoned"), (f) => count(f.abandoned)],
    [t("reports.fig.abandonRate"), (f) => share(f.abandon_rate)],
    ...DURATION_COLUMNS("wait", t("reports.fig.wait")),
    ...DURATION_COLUMNS("first_response", t("reports.fig.firstResponse")),
    ...DURATION_COLUMNS("agent_first_response", t("reports.fig.agentFirstResponse")),
    ...DURATION_COLUMNS("handle", t("reports.fig.handle")),
    [t("reports.fig.closed"), (f) => count(f.closed)],
    [t("reports.fig.resolved"), (f) => count(f.resolution.count)],
    ...DURATION_COLUMNS("resolution", t("reports.fig.resolution")),
    [t("reports.fig.transfersIn"), (f) => count(f.transfers_in)],
    [t("reports.fig.transfersOut"), (f) => count(f.transfers_out)],
    [t("reports.fig.reroutes"), (f) => count(f.reroutes)],
    [t("reports.fig.reopened"), (f) => count(f.reopened)],
  ];
}

function agentColumns() {
  return [
    [t("reports.fig.answered"), (f) => count(f.answered)],
    [t("reports.fig.serviceLevel"), (f) => share(f.service_level)],
    ...DURATION_COLUMNS("agent_first_response", t("reports.fig.agentFirstResponse")),
    [t("reports.col.average", { figure: t("reports.fig.firstResponse") }), (f) => seconds(f.first_response.average)],
    ...DURATION_COLUMNS("handle", t("reports.fig.handle")),
    [t("reports.fig.closed"), (f) => count(f.closed)],
    [t("reports.fig.resolved"), (f) => count(f.resolution.count)],
    [t("reports.fig.transfersIn"), (f) => count(f.transfers_in)],
    [t("reports.fig.transfersOut"), (f) => count(f.transfers_out)],
    [t("reports.fig.reroutes"), (f) => count(f.reroutes)],
  ];
}

function figureTable(caption, nameHeader, rows, columns, extra = []) {
  const all = [...columns, ...extra.map(([header]) => [header, null])];
  return el(
    "table",
    { class: "reports-figures" },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: nameHeader }), all.map(([header]) => el("th", { scope: "col", text: header })))),
    el(
      "tbody",
      {},
      rows.map((row) =>
        el(
          "tr",
          { class: row.total ? "reports-total" : undefined },
          el("th", { scope: "row", text: row.name }),
          columns.map(([, value]) => el("td", { text: value(row.figures) })),
          extra.map(([, value]) => el("td", { text: row.total ? "" : value(row) })),
        ),
      ),
    ),
  );
}

function charts(summary) {
  const labels = summary.series.map((point) => bucketLabel(point.bucket, summary.unit));
  const axis = new Map(summary.series.map((point, i) => [labels[i], axisLabel(point.bucket, summary.unit)]));
  const shortLabel = (label) => axis.get(label) ?? label;
  const values = (pick) => summary.series.map((point) => pick(point.figures));
  const column = summary.unit === "hour" ? t("reports.chart.hour") : t("reports.chart.day");
  return [
    lineChart({
      title: t("reports.chart.volume"),
      description: t("reports.chart.volumeDesc"),
      labels,
      labelHeader: column,
      shortLabel,
      whole: true,
      format: count,
      series: [
        { name: t("reports.fig.queued"), values: values((f) => f.queued) },
        { name: t("reports.fig.answered"), values: values((f) => f.answered) },
        { name: t("reports.fig.abandoned"), values: values((f) => f.abandoned) },
        { name: t("reports.fig.closed"), values: values((f) => f.closed) },
      ],
    }),
    lineChart({
      title: t("reports.chart.times"),
      description: t("reports.chart.timesDesc"),
      labels,
      labelHeader: column,
      shortLabel,
      format: seconds,
      series: [
        { name: t("reports.fig.wait"), values: values((f) => f.wait.average) },
        { name: t("reports.fig.firstResponse"), values: values((f) => f.first_response.average) },
        { name: t("reports.fig.agentFirstResponse"), values: values((f) => f.agent_first_response.average) },
      ],
    }),
  ];
}

function agentCharts(agents) {
  if (agents.length === 0) return [];
  const labels = agents.map((a) => a.name);
  const header = t("reports.agent");
  return [
    barChart({
      title: t("reports.chart.agents"),
      description: t("reports.chart.agentsDesc"),
      labels,
      labelHeader: header,
      whole: true,
      format: count,
      series: [
        { name: t("reports.fig.answered"), values: agents.map((a) => a.figures.answered) },
        { name: t("reports.fig.closed"), values: agents.map((a) => a.figures.closed) },
        { name: t("reports.fig.resolved"), values: agents.map((a) => a.figures.resolution.count) },
      ],
    }),
    barChart({
      title: t("reports.chart.agentTimes"),
      description: t("reports.chart.agentTimesDesc"),
      labels,
      labelHeader: header,
      format: seconds,
      series: [
        { name: t("reports.fig.agentFirstResponse"), values: agents.map((a) => a.figures.agent_first_response.average) },
        { name: t("reports.fig.handle"), values: agents.map((a) => a.figures.handle.average) },
      ],
    }),
    barChart({
      title: t("reports.chart.presence"),
      description: t("reports.chart.presenceDesc"),
      labels,
      labelHeader: header,
      format: seconds,
      series: [
        { name: t("reports.fig.online"), values: agents.map((a) => a.presence.online) },
        { name: t("reports.fig.away"), values: agents.map((a) => a.presence.away) },
      ],
    }),
  ];
}

const DEFINITIONS = [
  "queued", "answered", "wait", "serviceLevel", "abandoned", "firstResponse", "agentFirstResponse", "handle",
  "closed", "resolved", "resolution", "transfers", "reroutes", "reopened", "presence", "percentiles",
];

function definitions() {
  return DEFINITIONS.flatMap((key) => [el("dt", { text: t(`reports.def.${key}.name`) }), el("dd", { text: t(`reports.def.${key}`) })]);
}

function downloads(query) {
  const search = new URLSearchParams(query).toString();
  return ["conversations", "queues", "agents", "series"].map((table) =>
    el("li", {}, el("a", { href: `/api/reports/${table}.csv?${search}`, download: "", text: t(`reports.download.${table}`) })),
  );
}

// ---- loading

function currentQuery() {
  const query = { from: fromInput.value, to: toInput.value };
  if (queueSelect.value) query.queue_id = queueSelect.value;
  if (agentSelect.value) query.agent_id = agentSelect.value;
  return query;
}

async function show() {
  const query = currentQuery();
  const address = new URLSearchParams({ ...query, preset: preset.value });
  window.history.replaceState(null, "", `?${address}`);
  setText(status, t("reports.loading"));
  let summary;
  try {
    summary = await api.get("/api/reports/summary", query);
  } catch (error) {
    setText(status, error.message || t("error.unknown"));
    return;
  }
  setText(status, t("reports.showing", { from: query.from, to: query.to, zone: summary.time_zone }));
  clear(byId("reports-cards")).append(...cards(summary.totals));
  clear(byId("reports-charts")).append(...charts(summary));
  const queueRows = summary.queues.map((q) => ({ name: q.name, figures: q.figures }));
  queueRows.push({ name: t("reports.total"), figures: summary.totals, total: true });
  clear(byId("reports-queues")).append(figureTable(t("reports.byQueue"), t("reports.queue"), queueRows, queueColumns()));
  const agentRows = summary.agents.map((a) => ({ name: a.name, figures: a.figures, presence: a.presence }));
  clear(byId("reports-agents-chart")).append(...agentCharts(summary.agents));
  clear(byId("reports-agents")).append(
    figureTable(t("reports.byAgent"), t("reports.agent"), agentRows, agentColumns(), [
      [t("reports.fig.online"), (row) => seconds(row.presence.online)],
      [t("reports.fig.away"), (row) => seconds(row.presence.away)],
      [t("reports.fig.offline"), (row) => seconds(row.presence.offline)],
    ]),
  );
  clear(byId("reports-downloads")).append(...downloads(query));
}

async function fillFilters() {
  try {
    const [{ items: queues }, { items: agents }] = await Promise.all([api.getAll("/api/queues"), api.getAll("/api/users", { role: "agent" })]);
    queueSelect.append(...queues.map((q) => el("option", { value: q.id, text: q.name })));
    agentSelect.append(...agents.map((a) => el("option", { value: a.id, text: a.name })));
  } catch {
    // The report still works without the filters' names.
  }
}

function applyPreset() {
  const range = presetRange(preset.value);
  if (range) [fromInput.value, toInput.value] = range;
}

preset.addEventListener("change", () => {
  applyPreset();
  if (preset.value !== "custom") show();
});
for (const input of [fromInput, toInput]) input.addEventListener("input", () => (preset.value = "custom"));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  show();
});

byId("reports-definitions").append(...definitions());
await fillFilters();
const given = new URLSearchParams(window.location.search);
if (given.get("from") && given.get("to")) {
  preset.value = given.get("preset") || "custom";
  fromInput.value = given.get("from");
  toInput.value = given.get("to");
  queueSelect.value = given.get("queue_id") || "";
  agentSelect.value = given.get("agent_id") || "";
} else {
  preset.value = "last7";
  applyPreset();
}
show();
