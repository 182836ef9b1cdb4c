// Users (admins): who signs in, with which role, how many conversations they hold at once, which queues
// they serve; adding someone with a first password, resetting a password, disabling and enabling. A role
// change, a password reset and disabling end the person's sessions at once (the API does it).

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { Fields, button, confirmDialog, describe, field, formDialog, header, pager, roleName, table } from "./kit.js";

const ROLES = ["agent", "supervisor", "admin"];

export async function render(root, me, state = { page: 1, q: "", role: "", disabled: "" }) {
  const { data, pagination } = await api.getPage("/api/users", { page: state.page, limit: 25, q: state.q, role: state.role, disabled: state.disabled });
  const redraw = (change = {}) => render(root, me, { ...state, ...change }).catch((problem) => toast(describe(problem)));
  const filters = userFilters(state, redraw);
  const columns = [
    { label: t("admin.users.name"), cell: (u) => u.name },
    { label: t("admin.users.email"), cell: (u) => u.email },
    { label: t("admin.users.role"), cell: (u) => roleName(u.role) },
    { label: t("admin.users.capacity"), cell: (u) => String(u.max_concurrent) },
    { label: t("admin.users.state"), cell: (u) => (u.disabled ? t("admin.users.disabled") : t(`presence.${u.status}`)) },
    { label: t("admin.actions"), cell: (u) => actions(u, me, redraw) },
  ];
  clear(root).append(
    header(t("admin.nav.users"), t("admin.users.intro"), button(t("admin.users.add"), () => create(redraw).catch((problem) => toast(describe(problem))))),
    filters,
    table({ name: t("admin.nav.users"), columns, items: data, empty: state.q || state.role || state.disabled ? t("admin.noMatch") : t("admin.users.empty") }),
    pager(pagination, (page) => redraw({ page })) ?? "",
  );
}

function userFilters(state, redraw) {
  const search = el("input", { type: "search", value: state.q, "aria-label": t("admin.users.search"), placeholder: t("admin.users.search") });
  search.addEventListener("change", () => redraw({ page: 1, q: search.value.trim() }));
  const role = el("select", { "aria-label": t("admin.users.role") }, el("option", { value: "", text: t("admin.users.anyRole") }), ROLES.map((r) => el("option", { value: r, text: roleName(r) })));
  role.value = state.role;
  role.addEventListener("change", () => redraw({ page: 1, role: role.value }));
  const disabled = el(
    "select",
    { "aria-label": t("admin.users.state") },
    el("option", { value: "", text: t("admin.users.anyState") }),
    el("option", { value: "false", text: t("admin.users.enabled") }),
    el("option", { value: "true", text: t("admin.users.disabled") }),
  );
  disabled.value = state.disabled;
  disabled.addEventListener("change", () => redraw({ page: 1, disabled: disabled.value }));
  return el("div", { class: "admin-filters" }, search, role, disabled);
}

function actions(user, me, redraw) {
  const self = me.user?.id === user.id;
  return el(
    "div",
    { class: "row-actions" },
    button(t("admin.edit"), () => edit(user, self, redraw).catch((problem) => toast(describe(problem))), { secondary: true, label: t("admin.editNamed", { name: user.name }) }),
    button(t("admin.users.resetPassword"), () => resetPassword(user), { secondary: true, label: t("admin.users.resetPasswordOf", { name: user.name }) }),
    self
      ? null
      : user.disabled
        ? button(t("admin.users.enable"), () => setDisabled(user, false, redraw).catch((problem) => toast(describe(problem))), { secondary: true, label: t("admin.users.enableNamed", { name: user.name }) })
        : button(t("admin.users.disable"), () => confirmDisable(user, redraw), { secondary: true, danger: true, label: t("admin.users.disableNamed", { name: user.name }) }),
  );
}

async function allQueues() {
  return (await api.getAll("/api/queues")).items;
}

function queueChecks(queues, memberOf) {
  if (queues.length === 0) return el("p", { class: "muted", text: t("admin.users.noQueues") });
  return el(
    "fieldset",
    { class: "checks" },
    el("legend", { text: t("admin.users.queues") }),
    queues.map((q) => el("label", {}, el("input", { type: "checkbox", name: "queue", value: q.id, checked: memberOf.has(q.id) }), ` ${q.name}`)),
  );
}

async function applyQueues(userId, box, before) {
  const wanted = new Set([...box.querySelectorAll("input[name=queue]:checked")].map((i) => i.value));
  for (const id of wanted) if (!before.has(id)) await api.put(`/api/queues/${id}/members/${userId}`, {});
  for (const id of before) if (!wanted.has(id)) await api.del(`/api/queues/${id}/members/${userId}`);
}

async function create(redraw) {
  const queues = await allQueues();
  const box = queueChecks(queues, new Set());
  const fields = new Fields([
    field({ name: "name", label: t("admin.users.name"), required: true }),
    field({ name: "email", label: t("admin.users.email"), kind: "email", required: true }),
    field({ name: "role", label: t("admin.users.role"), kind: "select", value: "agent", options: ROLES.map((r) => [r, roleName(r)]) }),
    field({ name: "max_concurrent", label: t("admin.users.capacity"), kind: "number", value: 3, hint: t("admin.users.capacityHint"), attrs: { min: 1, max: 100 } }),
    field({ name: "password", label: t("admin.users.firstPassword"), kind: "password", required: true, hint: t("admin.users.passwordHint"), attrs: { autocomplete: "new-password" } }),
  ]);
  const dialog = formDialog({
    title: t("admin.users.add"),
    intro: t("admin.users.addIntro"),
    fields,
    wide: true,
    submitLabel: t("admin.users.create"),
    async submit(f) {
      const user = await api.post("/api/users", {
        name: f.input("name").value,
        email: f.input("email").value,
        role: f.input("role").value,
        max_concurrent: Number(f.input("max_concurrent").value),
        password: f.input("password").value,
      });
      await applyQueues(user.id, box, new Set());
      toast(t("admin.users.created", { name: user.name }));
      await redraw();
    },
  });
  dialog.dialog.querySelector(".form-message").before(box);
}

async function edit(user, self, redraw) {
  const [queues, mine] = await Promise.all([allQueues(), api.getAll("/api/queues", { member_id: user.id })]);
  const before = new Set(mine.items.map((q) => q.id));
  const box = queueChecks(queues, before);
  const fields = new Fields([
    field({ name: "name", label: t("admin.users.name"), value: user.name, required: true }),
    field({
      name: "role",
      label: t("admin.users.role"),
      kind: "select",
      value: user.role,
      options: ROLES.map((r) => [r, roleName(r)]),
      hint: self ? t("admin.users.ownRole") : t("admin.users.roleHint"),
      attrs: { disabled: self },
    }),
    field({ name: "max_concurrent", label: t("admin.users.capacity"), kind: "number", value: user.max_concurrent, hint: t("admin.users.capacityHint"), attrs: { min: 1, max: 100 } }),
  ]);
  const dialog = formDialog({
    title: t("admin.users.editTitle", { name: user.name }),
    fields,
    wide: true,
    submitLabel: t("admin.save"),
    async submit(f) {
      const change = {};
      if (f.input("name").value.trim() !== user.name) change.name = f.input("name").value;
      if (!self && f.input("role").value !== user.role) change.role = f.input("role").value;
      if (Number(f.input("max_concurrent").value) !== user.max_concurrent) change.max_concurrent = Number(f.input("max_concurrent").value);
      if (Object.keys(change).length) await api.patch(`/api/users/${user.id}`, change);
      await applyQueues(user.id, box, before);
      await redraw();
    },
  });
  dialog.dialog.querySelector(".form-message").before(box);
}

function resetPassword(user) {
  const fields = new Fields([
    field({ name: "password", label: t("admin.users.newPassword"), kind: "password", required: true, hint: t("admin.users.passwordHint"), attrs: { autocomplete: "new-password" } }),
  ]);
  formDialog({
    title: t("admin.users.resetTitle", { name: user.name }),
    intro: t("admin.users.resetIntro"),
    fields,
    submitLabel: t("admin.users.resetPassword"),
    async submit(f) {
      await api.patch(`/api/users/${user.id}`, { password: f.input("password").value });
      toast(t("admin.users.passwordReset", { name: user.name }));
    },
  });
}

function confirmDisable(user, redraw) {
  confirmDialog({
    title: t("admin.users.disableTitle", { name: user.name }),
    text: t("admin.users.disableText"),
    confirmLabel: t("admin.users.disable"),
    action: () => setDisabled(user, true, redraw),
  });
}

async function setDisabled(user, disabled, redraw) {
  await api.patch(`/api/users/${user.id}`, { disabled });
  await redraw();
}
