// What every administration section is built from: a heading with its actions, a table named for screen
// readers, a pager, and forms whose fields show the server's own reasons next to them (the `details` of a
// refused change: `{field: "body.email", message}`), in a dialog that keeps what was typed.

import { el } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";
import { describeError, openDialog } from "../views/dialogs.js";

let fieldCount = 0;

// One labelled control with its hint and its error line. `kind`: text, email, password, number, textarea,
// select (options: [[value, label]]), checkbox, datetime-local, color.
export function field({ name, label, kind = "text", value, hint, required = false, options = [], attrs = {} }) {
  fieldCount += 1;
  const id = `field-${name}-${fieldCount}`;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const described = [hintId, errorId].filter(Boolean).join(" ");
  let input;
  if (kind === "textarea") {
    input = el("textarea", { id, name, rows: 3, required, "aria-describedby": described, ...attrs });
    input.value = value ?? "";
  } else if (kind === "select") {
    input = el("select", { id, name, required, "aria-describedby": described, ...attrs }, options.map(([optionValue, text]) => el("option", { value: optionValue, text })));
    if (value !== undefined && value !== null) input.value = String(value);
  } else if (kind === "checkbox") {
    input = el("input", { id, name, type: "checkbox", "aria-describedby": described, ...attrs });
    input.checked = Boolean(value);
  } else {
    input = el("input", { id, name, type: kind, required, "aria-describedby": described, autocomplete: "off", ...attrs });
    if (value !== undefined && value !== null) input.value = String(value);
  }
  const error = el("p", { id: errorId, class: "field-error" });
  const labelNode = el("label", { for: id, text: label });
  const row =
    kind === "checkbox"
      ? el("div", { class: "field field-check" }, input, labelNode, hint ? el("p", { id: hintId, class: "hint", text: hint }) : null, error)
      : el("div", { class: "field" }, labelNode, hint ? el("p", { id: hintId, class: "hint", text: hint }) : null, input, error);
  return { name, row, input, error };
}

// The fields of one form: their rows, and the server's refusal shown field by field.
export class Fields {
  constructor(list) {
    this.list = list.filter(Boolean);
    this.byName = new Map(this.list.map((f) => [f.name, f]));
  }

  get rows() {
    return this.list.map((f) => f.row);
  }

  input(name) {
    return this.byName.get(name).input;
  }

  clearErrors() {
    for (const f of this.list) {
      f.error.textContent = "";
      f.input.removeAttribute("aria-invalid");
    }
  }

  // True when every reason found its field; the others are returned to be shown for the whole form.
  showErrors(problem) {
    this.clearErrors();
    const left = [];
    for (const detail of Array.isArray(problem?.details) ? problem.details : []) {
      const [where, name] = String(detail.field ?? "").split(".");
      const target = where === "body" || where === "query" ? this.byName.get(name) : null;
      if (target) {
        target.error.textContent = [target.error.textContent, detail.message].filter(Boolean).join("; ");
        target.input.setAttribute("aria-invalid", "true");
      } else {
        left.push(detail.message);
      }
    }
    const first = this.list.find((f) => f.input.getAttribute("aria-invalid") === "true");
    first?.input.focus();
    return left;
  }
}

// A dialog with a form: `submit(fields)` sends it; a refusal with field details is shown by the fields and
// keeps the dialog open.
export function formDialog({ title, fields, submitLabel, submit, intro, wide = false }) {
  return openDialog({
    title,
    wide,
    submit: submitLabel,
    body: [intro ? el("p", { class: "muted", text: intro }) : null, ...fields.rows].filter(Boolean),
    async onSubmit() {
      fields.clearErrors();
      try {
        return await submit(fields);
      } catch (problem) {
        if (!Array.isArray(problem?.details)) throw problem;
        const left = fields.showErrors(problem);
        throw { message: left.length ? `${t("admin.form.fix")} ${left.join("; ")}` : t("admin.form.fix") };
      }
    },
  });
}

// A destructive action asks first, naming what it does.
export function confirmDialog({ title, text, confirmLabel, action }) {
  return openDialog({ title, submit: confirmLabel, body: [el("p", { text })], onSubmit: action });
}

export function describe(problem) {
  return describeError(problem);
}

// A section's heading, an introduction and its buttons.
export function header(title, intro, ...actions) {
  return el(
    "div",
    { class: "admin-header" },
    el("div", {}, el("h1", { text: title }), intro ? el("p", { class: "muted", text: intro }) : null),
    el("div", { class: "admin-actions" }, ...actions),
  );
}

// A table named `name` (its accessible name); `columns`: [{label, cell(item) → text | Node}].
export function table({ name, columns, items, empty }) {
  if (items.length === 0) return el("p", { class: "muted empty", text: empty });
  const cell = (value) => (value instanceof Node ? value : document.createTextNode(value ?? ""));
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "admin-table", "aria-label": name },
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c.label })))),
      el(
        "tbody",
        {},
        items.map((item) => el("tr", { dataset: { id: item.id ?? "" } }, columns.map((c) => el("td", {}, cell(c.cell(item)))))),
      ),
    ),
  );
}

// Previous / next for an API page (`pagination` of the envelope).
export function pager(pagination, goTo) {
  if (!pagination || (pagination.page === 1 && !pagination.hasNext)) return null;
  const pages = Math.max(1, Math.ceil(pagination.total / pagination.limit));
  return el(
    "nav",
    { class: "pager", "aria-label": t("admin.pager.label") },
    el("button", { type: "button", class: "secondary", disabled: pagination.page <= 1, text: t("admin.pager.previous"), onclick: () => goTo(pagination.page - 1) }),
    el("span", { text: t("admin.pager.where", { page: pagination.page, pages, total: pagination.total }) }),
    el("button", { type: "button", class: "secondary", disabled: !pagination.hasNext, text: t("admin.pager.next"), onclick: () => goTo(pagination.page + 1) }),
  );
}

export function button(text, onclick, { secondary = false, danger = false, label } = {}) {
  const classes = [secondary ? "secondary" : null, danger ? "danger" : null].filter(Boolean).join(" ");
  return el("button", { type: "button", class: classes || null, text, onclick, "aria-label": label });
}

export function when(iso) {
  return iso ? formatDateTime(iso) : "—";
}

export function roleName(role) {
  return t(`admin.role.${role}`);
}

// A number field typed in minutes and saved in seconds (exactly: 1.5 minutes are 90 seconds).
export function minutesToSeconds(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return null;
  const minutes = Number(trimmed.replace(",", "."));
  return Number.isFinite(minutes) ? Math.round(minutes * 60) : Number.NaN;
}

export function secondsToMinutes(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return String(Math.round((seconds / 60) * 100) / 100);
}

// The instant at which the wall clock in `zone` (the tenant's) reads `local` ("2026-12-03T10:00"): what a
// date typed on these pages means, whatever the computer's own time zone.
export function instantIn(zone, local) {
  const [date, time = "00:00"] = local.split("T");
  const [year, month, day] = date.split("-").map(Number);
  const [hour, minute] = time.split(":").map(Number);
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall;
  // Twice: the offset at the first guess may differ from the offset at the answer (a DST change between).
  for (let round = 0; round < 2; round += 1) guess = wall - offsetAt(zone, guess);
  return new Date(guess);
}

function offsetAt(zone, instant) {
  const format = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const parts = Object.fromEntries(format.formatToParts(new Date(instant)).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return asUtc - Math.floor(instant / 1000) * 1000;
}
