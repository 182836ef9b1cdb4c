// Queues: where conversations wait. Staff change a queue's priority, SLA target, opening hours and
// out-of-hours message, whether it is open, and who serves it (with an optional capacity of their own in
// that queue); admins also create queues.

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { currentLanguage, formatDuration, t } from "../i18n.js";
import { openDialog } from "../views/dialogs.js";
import { personSearch } from "./person-search.js";
import { Fields, button, describe, field, formDialog, header, minutesToSeconds, pager, roleName, secondsToMinutes, table } from "./kit.js";

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

function dayName(index) {
  // 1 January 2024 was a Monday.
  return new Intl.DateTimeFormat(currentLanguage(), { weekday: "long", timeZone: "UTC" }).format(new Date(Date.UTC(2024, 0, 1 + index)));
}

function hoursSummary(hours) {
  if (!hours) return t("admin.queues.alwaysOpen");
  const open = WEEKDAYS.filter((d) => hours[d]?.length).length;
  return t("admin.queues.openDays", { count: open });
}

export async function render(root, me, page = 1) {
  const { data, pagination } = await api.getPage("/api/queues", { page, limit: 25, sort: "-priority" });
  const redraw = (goTo = page) => render(root, me, goTo).catch((problem) => toast(describe(problem)));
  const columns = [
    { label: t("admin.queues.name"), cell: (q) => q.name },
    { label: t("admin.queues.priority"), cell: (q) => String(q.priority) },
    { label: t("admin.queues.sla"), cell: (q) => formatDuration(q.sla_seconds) },
    { label: t("admin.queues.hours"), cell: (q) => hoursSummary(q.business_hours) },
    { label: t("admin.queues.state"), cell: (q) => (q.active ? t("admin.queues.active") : t("admin.queues.inactive")) },
    {
      label: t("admin.actions"),
      cell: (q) =>
        el(
          "div",
          { class: "row-actions" },
          button(t("admin.edit"), () => edit(q, redraw), { secondary: true, label: t("admin.editNamed", { name: q.name }) }),
          button(t("admin.queues.members"), () => members(q).catch((problem) => toast(describe(problem))), { secondary: true, label: t("admin.queues.membersOf", { name: q.name }) }),
        ),
    },
  ];
  const add = me.role === "admin" ? button(t("admin.queues.add"), () => edit(null, redraw)) : null;
  clear(root).append(
    header(t("admin.nav.queues"), t("admin.queues.intro"), add),
    table({ name: t("admin.nav.queues"), columns, items: data, empty: t("admin.queues.empty") }),
    pager(pagination, redraw) ?? "",
  );
}

// The week's hours: one line per day ("09:00-12:30, 13:30-18:00"; empty: closed), or open all the time.
function hoursEditor(hours) {
  const always = el("input", { type: "checkbox", id: "hours-always", checked: !hours });
  const days = WEEKDAYS.map((day, index) => {
    const input = el("input", {
      type: "text",
      id: `hours-${day}`,
      value: (hours?.[day] ?? []).map(([a, b]) => `${a}-${b}`).join(", "),
      placeholder: t("admin.queues.closed"),
      disabled: !hours,
    });
    return { day, input, row: el("div", { class: "hours-day" }, el("label", { for: `hours-${day}`, text: dayName(index) }), input) };
  });
  always.addEventListener("change", () => {
    for (const d of days) d.input.disabled = always.checked;
  });
  const error = el("p", { class: "field-error", id: "hours-error" });
  const row = el(
    "fieldset",
    { class: "field hours", "aria-describedby": "hours-hint hours-error" },
    el("legend", { text: t("admin.queues.hours") }),
    el("p", { class: "hint", id: "hours-hint", text: t("admin.queues.hoursHint") }),
    el("div", { class: "field-check" }, always, el("label", { for: "hours-always", text: t("admin.queues.alwaysOpen") })),
    days.map((d) => d.row),
    error,
  );
  return {
    name: "business_hours",
    row,
    input: days[0].input,
    error,
    value() {
      if (always.checked) return null;
      const week = {};
      for (const d of days) {
        const spans = d.input.value
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
          .map((s) => s.split(/\s*[-–]\s*/));
        if (spans.length) week[d.day] = spans;
      }
      return week;
    },
  };
}

function edit(queue, redraw) {
  const hours = hoursEditor(queue?.business_hours ?? null);
  const list = [
    field({ name: "name", label: t("admin.queues.name"), value: queue?.name, required: true }),
    field({ name: "priority", label: t("admin.queues.priority"), kind: "number", value: queue?.priority ?? 0, hint: t("admin.queues.priorityHint"), attrs: { min: -1000, max: 1000 } }),
    field({ name: "sla_seconds", label: t("admin.queues.slaMinutes"), kind: "number", value: secondsToMinutes(queue?.sla_seconds ?? 300), hint: t("admin.queues.slaHint"), attrs: { min: 0.02, step: "any" } }),
    queue ? field({ name: "active", label: t("admin.queues.isActive"), kind: "checkbox", value: queue.active, hint: t("admin.queues.activeHint") }) : null,
    hours,
    field({ name: "out_of_hours_message", label: t("admin.queues.outOfHours"), kind: "textarea", value: queue?.out_of_hours_message, hint: t("admin.queues.outOfHoursHint") }),
  ];
  const fields = new Fields(list);
  formDialog({
    title: queue ? t("admin.queues.editTitle", { name: queue.name }) : t("admin.queues.add"),
    fields,
    wide: true,
    submitLabel: t("admin.save"),
    async submit(f) {
      const body = {
        name: f.input("name").value,
        priority: Number(f.input("priority").value),
        sla_seconds: minutesToSeconds(f.input("sla_seconds").value),
        business_hours: hours.value(),
        out_of_hours_message: f.input("out_of_hours_message").value.trim() || null,
      };
      if (queue) {
        body.active = f.input("active").checked;
        await api.patch(`/api/queues/${queue.id}`, body);
      } else {
        if (body.out_of_hours_message === null) delete body.out_of_hours_message;
        await api.post("/api/queues", body);
      }
      await redraw();
    },
  });
}

// Who serves a queue, a page at a time ("Show more", with how many there are in all): added (found by a
// search, not from a list of everyone) and removed at once, each with the queue's own capacity for them.
const MEMBERS_PAGE = 50;

async function members(queue) {
  let current = [];
  let total = 0;
  let pages = 0;
  let hasNext = false;
  const listBox = el("div", { class: "members" });
  const count = el("p", { class: "muted", role: "status" });
  const moreButton = button(t("admin.queues.showMore"), () => more().catch((problem) => (message.textContent = describe(problem))), { secondary: true });
  const known = () => new Set(current.map((m) => m.user_id));
  const picker = personSearch({
    id: "member-user",
    label: t("admin.queues.addMember"),
    query: { disabled: false },
    note: (person) => (known().has(person.id) ? t("admin.queues.isMember") : null),
  });
  const override = el("input", { type: "number", id: "member-override", min: 1, max: 100, placeholder: t("admin.queues.ownCapacity") });
  const message = el("p", { class: "field-error", role: "alert" });

  async function readPage(page) {
    const { data, pagination } = await api.getPage(`/api/queues/${queue.id}/members`, { page, limit: MEMBERS_PAGE });
    total = pagination.total;
    hasNext = pagination.hasNext;
    return data;
  }

  // The next page, each member once (one added or removed meanwhile shifts the pages by one).
  async function more() {
    const data = await readPage(pages + 1);
    pages += 1;
    const have = known();
    current = [...current, ...data.filter((m) => !have.has(m.user_id))];
    draw();
  }

  // After a change: the pages shown so far, read again, so none is skipped or shown twice.
  async function reread() {
    const shown = Math.max(1, pages);
    const read = [];
    for (let page = 1; page <= shown; page += 1) read.push(...(await readPage(page)));
    const seen = new Set();
    current = read.filter((m) => !seen.has(m.user_id) && seen.add(m.user_id));
    pages = shown;
    draw();
  }

  function draw() {
    count.textContent = total === 0 ? "" : t("admin.queues.showing", { shown: current.length, count: total });
    moreButton.hidden = !hasNext;
    clear(listBox).append(
      current.length === 0
        ? el("p", { class: "muted", text: t("admin.queues.noMembers") })
        : el(
            "ul",
            { class: "member-list", "aria-label": t("admin.queues.membersOf", { name: queue.name }) },
            current.map((m) =>
              el(
                "li",
                {},
                el("span", { text: `${m.name} · ${roleName(m.role)} · ${t("admin.queues.capacityIs", { count: m.max_concurrent_override ?? m.max_concurrent })}` }),
                button(t("admin.queues.remove"), () => remove(m), { secondary: true, danger: true, label: t("admin.queues.removeNamed", { name: m.name }) }),
              ),
            ),
          ),
    );
  }

  async function remove(member) {
    message.textContent = "";
    try {
      await api.del(`/api/queues/${queue.id}/members/${member.user_id}`);
      await reread();
    } catch (problem) {
      message.textContent = describe(problem);
    }
  }

  async function add() {
    message.textContent = "";
    const person = picker.value();
    if (!person) {
      message.textContent = t("admin.queues.choosePerson");
      picker.input.focus();
      return;
    }
    try {
      const body = override.value ? { max_concurrent_override: Number(override.value) } : {};
      await api.put(`/api/queues/${queue.id}/members/${person.id}`, body);
      picker.set(null);
      override.value = "";
      await reread();
    } catch (problem) {
      message.textContent = describe(problem);
    }
  }

  await more();
  openDialog({
    title: t("admin.queues.membersOf", { name: queue.name }),
    wide: true,
    body: [
      count,
      listBox,
      moreButton,
      el(
        "div",
        { class: "member-add" },
        el("label", { for: "member-user", text: t("admin.queues.addMember") }),
        picker.row,
        el("label", { for: "member-override", text: t("admin.queues.override") }),
        override,
        button(t("admin.queues.addButton"), add),
      ),
      message,
    ],
  });
}
