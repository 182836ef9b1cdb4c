// The audit log (admins): who did which sensitive thing, when and from where, newest first, filtered by
// action, by who did it (a person, or any integration's token) and by days in the tenant's time zone.

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { describe, header, instantIn, pager, table, when } from "./kit.js";
import { personSearch } from "./person-search.js";

// The actions the server writes, offered while typing (any other text is still a filter).
const ACTIONS = [
  "login.succeeded",
  "login.failed",
  "logout",
  "user.created",
  "user.changed",
  "user.role_changed",
  "user.disabled",
  "user.enabled",
  "user.password_reset",
  "user.password_changed",
  "queue.created",
  "queue.changed",
  "queue.member_set",
  "queue.member_removed",
  "channel.created",
  "channel.changed",
  "token.created",
  "token.revoked",
  "tenant.changed",
  "tenant.settings_changed",
];

function nextDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + 1);
  return date.toISOString().slice(0, 10);
}

function query(state, zone) {
  const q = { page: state.page, limit: 50, action: state.action };
  if (state.who === "token") q.actor_kind = "token";
  else if (state.who) q.actor_id = state.who;
  if (state.from) q.since = instantIn(zone, `${state.from}T00:00`).toISOString();
  // The last day counts whole: up to the start of the next.
  if (state.to) q.until = instantIn(zone, `${nextDay(state.to)}T00:00`).toISOString();
  return q;
}

function who(entry) {
  if (entry.actor_kind === "token") return t("admin.audit.byToken", { name: entry.actor_name ?? "—" });
  if (entry.actor_kind === "user") return entry.actor_name ?? "—";
  return t(`admin.audit.kind.${entry.actor_kind}`);
}

function details(entry) {
  const text = Object.keys(entry.details ?? {}).length ? JSON.stringify(entry.details) : "";
  return el("code", { class: "clip", text });
}

export async function render(root, me, state = { page: 1, action: "", who: "", whoName: "", from: "", to: "" }) {
  const { data, pagination } = await api.getPage("/api/audit-log", query(state, me.time_zone));
  const redraw = (change = {}) => render(root, me, { ...state, ...change }).catch((problem) => toast(describe(problem)));
  const columns = [
    { label: t("admin.audit.when"), cell: (e) => when(e.created_at) },
    { label: t("admin.audit.who"), cell: who },
    { label: t("admin.audit.action"), cell: (e) => el("code", { text: e.action }) },
    { label: t("admin.audit.target"), cell: (e) => (e.target_type ? `${e.target_type} ${e.target_id ?? ""}`.trim() : "—") },
    { label: t("admin.audit.details"), cell: details },
    { label: t("admin.audit.address"), cell: (e) => e.client_address ?? "—" },
  ];
  const filtered = state.action || state.who || state.from || state.to;
  clear(root).append(
    header(t("admin.nav.audit"), t("admin.audit.intro", { zone: me.time_zone })),
    filters(state, redraw),
    table({ name: t("admin.nav.audit"), columns, items: data, empty: filtered ? t("admin.noMatch") : t("admin.audit.empty") }),
    pager(pagination, (page) => redraw({ page })) ?? "",
  );
}

// Who did it: anyone, any integration, or one person, found by typing part of their name or email.
function filters(state, redraw) {
  const action = el("input", { id: "audit-action", type: "search", value: state.action, list: "audit-actions" });
  const actions = el("datalist", { id: "audit-actions" }, ACTIONS.map((a) => el("option", { value: a })));
  const anyone = { id: "", name: t("admin.audit.anyone") };
  const integrations = { id: "token", name: t("admin.audit.integrations") };
  const actor = personSearch({ id: "audit-who", label: t("admin.audit.who"), fixed: [anyone, integrations] });
  actor.set(state.who ? { id: state.who, name: state.whoName } : null);
  const actorError = el("p", { class: "field-error", id: "audit-who-error", role: "alert" });
  const from = el("input", { id: "audit-from", type: "date", value: state.from });
  const to = el("input", { id: "audit-to", type: "date", value: state.to });
  const form = el(
    "form",
    { class: "admin-filters", "aria-label": t("admin.audit.filters") },
    el("label", { for: "audit-action", text: t("admin.audit.action") }),
    action,
    actions,
    el("label", { for: "audit-who", text: t("admin.audit.who") }),
    actor.row,
    el("label", { for: "audit-from", text: t("admin.audit.from") }),
    from,
    el("label", { for: "audit-to", text: t("admin.audit.to") }),
    to,
    el("button", { type: "submit", text: t("admin.audit.apply") }),
    actorError,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = actor.value() ?? (actor.text() ? null : anyone);
    if (!chosen) {
      // Typed text that names nobody chosen filters nothing silently: it asks for a choice.
      actorError.textContent = t("admin.audit.choosePerson");
      actor.input.setAttribute("aria-invalid", "true");
      actor.input.focus();
      return;
    }
    redraw({ page: 1, action: action.value.trim(), who: chosen.id, whoName: chosen.name, from: from.value, to: to.value });
  });
  return form;
}
