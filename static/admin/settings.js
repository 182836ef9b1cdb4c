// The tenant's settings (admins): the workspace's name and time zone, and every setting the assignment
// engine reads, each with what it does. Durations are typed in minutes and saved in seconds exactly; an
// optional one can be turned off. Only what changed is sent (`PATCH /api/tenant/settings`), and the
// engine uses it from its next round.

import * as api from "../api.js";
import { clear, el } from "../dom.js";
import { formatDuration, t } from "../i18n.js";
import { Fields, field, header, minutesToSeconds, secondsToMinutes } from "./kit.js";

// Limits in seconds, as the server's model has them (shown to people in minutes).
const DURATIONS = {
  requeue_after_seconds: { min: 0, max: 86_400, optional: false },
  unanswered_reroute_seconds: { min: 30, max: 86_400, optional: true },
  priority_rise_seconds: { min: 10, max: 86_400, optional: true },
  inactivity_close_seconds: { min: 300, max: 30 * 86_400, optional: true },
};
const FLAGS = ["agents_can_take_waiting", "prefer_last_agent"];
const TEXTS = ["queue_position_reply", "inactivity_close_message"];

function rangeText(name) {
  const { min, max } = DURATIONS[name];
  return t("admin.settings.range", { min: formatDuration(min), max: formatDuration(max) });
}

// Minutes, with "Off" beside the optional ones.
function duration(name, seconds) {
  const { optional } = DURATIONS[name];
  const hint = `${t(`admin.settings.${name}.hint`)} ${rangeText(name)}`;
  const made = field({ name, label: t(`admin.settings.${name}`), kind: "number", value: secondsToMinutes(seconds), hint, attrs: { step: "any", min: 0, "aria-label": t("admin.settings.inMinutes", { name: t(`admin.settings.${name}`) }) } });
  made.input.removeAttribute("required");
  const unit = el("span", { class: "unit", text: t("admin.settings.minutes") });
  let off = null;
  if (optional) {
    off = el("input", { type: "checkbox", id: `${name}-off`, checked: seconds === null, "aria-label": t("admin.settings.offNamed", { name: t(`admin.settings.${name}`) }) });
    made.input.disabled = seconds === null;
    off.addEventListener("change", () => {
      made.input.disabled = off.checked;
      if (!off.checked) made.input.focus();
    });
  }
  const line = el("div", { class: "duration" }, made.input, unit, off ? el("label", { class: "off" }, off, ` ${t("admin.settings.off")}`) : null);
  made.error.before(line);
  made.value = () => {
    if (off?.checked) return null;
    return minutesToSeconds(made.input.value);
  };
  return made;
}

// Whole days, with "Off": how long closed conversations are kept.
function days(name, value) {
  const hint = `${t(`admin.settings.${name}.hint`)} ${t("admin.settings.daysRange", { min: 1, max: 3650 })}`;
  const made = field({ name, label: t(`admin.settings.${name}`), kind: "number", value: value ?? "", hint, attrs: { step: 1, min: 1, max: 3650 } });
  made.input.removeAttribute("required");
  const off = el("input", { type: "checkbox", id: `${name}-off`, checked: value === null, "aria-label": t("admin.settings.offNamed", { name: t(`admin.settings.${name}`) }) });
  made.input.disabled = value === null;
  off.addEventListener("change", () => {
    made.input.disabled = off.checked;
    if (!off.checked) made.input.focus();
  });
  made.error.before(el("div", { class: "duration" }, made.input, el("span", { class: "unit", text: t("admin.settings.days") }), el("label", { class: "off" }, off, ` ${t("admin.settings.off")}`)));
  made.value = () => {
    if (off.checked) return null;
    const typed = Number(made.input.value);
    return made.input.value.trim() && Number.isInteger(typed) ? typed : Number.NaN;
  };
  return made;
}

function flag(name, value) {
  const made = field({ name, label: t(`admin.settings.${name}`), kind: "checkbox", value, hint: t(`admin.settings.${name}.hint`) });
  made.value = () => made.input.checked;
  return made;
}

function text(name, value) {
  const made = field({ name, label: t(`admin.settings.${name}`), kind: "textarea", value, hint: t(`admin.settings.${name}.hint`) });
  made.input.removeAttribute("required");
  made.value = () => made.input.value.trim() || null;
  return made;
}

function zones(current) {
  const known = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const all = [...new Set([current, "UTC", ...known])].sort();
  return all.map((zone) => [zone, zone]);
}

export async function render(root) {
  const [tenant, settings] = await Promise.all([api.get("/api/tenant"), api.get("/api/tenant/settings")]);
  draw(root, tenant, settings);
}

function draw(root, tenant, settings) {
  const name = field({ name: "name", label: t("admin.settings.tenantName"), value: tenant.name, required: true });
  const zone = field({ name: "time_zone", label: t("admin.settings.timeZone"), kind: "select", value: tenant.time_zone, options: zones(tenant.time_zone), hint: t("admin.settings.timeZoneHint") });
  const offline = field({
    name: "offline_conversations",
    label: t("admin.settings.offline_conversations"),
    kind: "select",
    value: settings.offline_conversations,
    options: [
      ["requeue", t("admin.settings.offline.requeue")],
      ["keep", t("admin.settings.offline.keep")],
    ],
    hint: t("admin.settings.offline_conversations.hint"),
  });
  offline.value = () => offline.input.value;
  const made = {
    agents_can_take_waiting: flag("agents_can_take_waiting", settings.agents_can_take_waiting),
    prefer_last_agent: flag("prefer_last_agent", settings.prefer_last_agent),
    priority_rise_seconds: duration("priority_rise_seconds", settings.priority_rise_seconds),
    offline_conversations: offline,
    requeue_after_seconds: duration("requeue_after_seconds", settings.requeue_after_seconds),
    unanswered_reroute_seconds: duration("unanswered_reroute_seconds", settings.unanswered_reroute_seconds),
    queue_position_reply: text("queue_position_reply", settings.queue_position_reply),
    inactivity_close_seconds: duration("inactivity_close_seconds", settings.inactivity_close_seconds),
    inactivity_close_message: text("inactivity_close_message", settings.inactivity_close_message),
    retention_days: days("retention_days", settings.retention_days),
  };
  const fields = new Fields([name, zone, ...Object.values(made)]);
  const status = el("p", { class: "form-status", role: "status" });
  const problem = el("p", { class: "form-message", role: "alert" });
  const save = el("button", { type: "submit", text: t("admin.settings.save") });
  const group = (legend, intro, ...rows) => el("fieldset", { class: "settings-group" }, el("legend", { text: legend }), intro ? el("p", { class: "muted", text: intro }) : null, ...rows);
  const form = el(
    "form",
    { class: "settings card", novalidate: true, "aria-label": t("admin.nav.settings") },
    group(t("admin.settings.workspace"), t("admin.settings.workspaceIntro", { workspace: tenant.slug }), name.row, zone.row),
    group(t("admin.settings.assignment"), null, made.agents_can_take_waiting.row, made.prefer_last_agent.row, made.priority_rise_seconds.row),
    group(t("admin.settings.absent"), null, made.offline_conversations.row, made.requeue_after_seconds.row, made.unanswered_reroute_seconds.row),
    group(
      t("admin.settings.messages"),
      null,
      made.queue_position_reply.row,
      made.inactivity_close_seconds.row,
      made.inactivity_close_message.row,
      el("p", { class: "muted" }, `${t("admin.settings.outOfHours")} `, el("a", { href: "/admin/queues", text: t("admin.nav.queues") })),
    ),
    group(t("admin.settings.retention"), null, made.retention_days.row),
    problem,
    el("div", { class: "form-buttons" }, save, status),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    problem.textContent = "";
    fields.clearErrors();
    const change = {};
    const wrong = [];
    for (const [key, entry] of Object.entries(made)) {
      const value = entry.value();
      if (Number.isNaN(value)) wrong.push(key);
      else if (value !== settings[key]) change[key] = value;
    }
    if (wrong.length) {
      fields.showErrors({ details: wrong.map((key) => ({ field: `body.${key}`, message: t(key === "retention_days" ? "admin.settings.notDays" : "admin.settings.notMinutes") })) });
      problem.textContent = t("admin.form.fix");
      return;
    }
    const tenantChange = {};
    if (name.input.value.trim() !== tenant.name) tenantChange.name = name.input.value;
    if (zone.input.value !== tenant.time_zone) tenantChange.time_zone = zone.input.value;
    save.disabled = true;
    try {
      const newTenant = Object.keys(tenantChange).length ? await api.patch("/api/tenant", tenantChange) : tenant;
      const newSettings = Object.keys(change).length ? await api.patch("/api/tenant/settings", change) : settings;
      draw(root, newTenant, newSettings);
      root.querySelector(".form-status").textContent = Object.keys(change).length || Object.keys(tenantChange).length ? t("admin.settings.saved") : t("admin.settings.unchanged");
    } catch (refusal) {
      save.disabled = false;
      if (Array.isArray(refusal?.details)) {
        const minutes = refusal.details.map((d) => {
          const key = String(d.field ?? "").split(".")[1];
          return key in DURATIONS ? { ...d, message: rangeText(key) } : d;
        });
        const left = fields.showErrors({ details: minutes });
        problem.textContent = [t("admin.form.fix"), ...left].join(" ");
      } else {
        problem.textContent = refusal?.message ?? t("error.unknown");
      }
    }
  });
  clear(root).append(header(t("admin.nav.settings"), t("admin.settings.intro")), form);
}
