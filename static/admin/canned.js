// Canned responses: ready answers agents pick in the composer with `/shortcut`. Staff write them;
// placeholders such as {{contact.name|friend}} are filled in when an agent uses one.

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { Fields, button, confirmDialog, describe, field, formDialog, header, pager, table } from "./kit.js";

export async function render(root, me, page = 1, search = "") {
  const { data, pagination } = await api.getPage("/api/canned-responses", { page, limit: 25, q: search });
  const redraw = (goTo = page, q = search) => render(root, me, goTo, q).catch((problem) => toast(describe(problem)));
  const searchBox = el("input", { type: "search", id: "canned-search", value: search, "aria-label": t("admin.canned.search"), placeholder: t("admin.canned.search") });
  searchBox.addEventListener("change", () => redraw(1, searchBox.value.trim()));
  const columns = [
    { label: t("admin.canned.shortcut"), cell: (c) => el("code", { text: `/${c.shortcut}` }) },
    { label: t("admin.canned.title"), cell: (c) => c.title },
    { label: t("admin.canned.body"), cell: (c) => el("span", { class: "clip", text: c.body }) },
    {
      label: t("admin.actions"),
      cell: (c) =>
        el(
          "div",
          { class: "row-actions" },
          button(t("admin.edit"), () => edit(c, redraw), { secondary: true, label: t("admin.editNamed", { name: c.title }) }),
          button(t("admin.delete"), () => remove(c, redraw), { secondary: true, danger: true, label: t("admin.deleteNamed", { name: c.title }) }),
        ),
    },
  ];
  clear(root).append(
    header(t("admin.nav.canned"), t("admin.canned.intro"), button(t("admin.canned.add"), () => edit(null, redraw))),
    el("div", { class: "admin-filters" }, searchBox),
    table({ name: t("admin.nav.canned"), columns, items: data, empty: search ? t("admin.noMatch") : t("admin.canned.empty") }),
    pager(pagination, redraw) ?? "",
  );
}

function edit(canned, redraw) {
  const fields = new Fields([
    field({ name: "shortcut", label: t("admin.canned.shortcut"), value: canned?.shortcut, required: true, hint: t("admin.canned.shortcutHint") }),
    field({ name: "title", label: t("admin.canned.title"), value: canned?.title, required: true }),
    field({ name: "body", label: t("admin.canned.body"), kind: "textarea", value: canned?.body, required: true, hint: t("admin.canned.bodyHint") }),
  ]);
  formDialog({
    title: canned ? t("admin.canned.editTitle", { name: canned.title }) : t("admin.canned.add"),
    fields,
    wide: true,
    submitLabel: t("admin.save"),
    async submit(f) {
      const body = { shortcut: f.input("shortcut").value, title: f.input("title").value, body: f.input("body").value };
      if (canned) await api.patch(`/api/canned-responses/${canned.id}`, body);
      else await api.post("/api/canned-responses", body);
      await redraw();
    },
  });
}

function remove(canned, redraw) {
  confirmDialog({
    title: t("admin.canned.deleteTitle", { name: canned.title }),
    text: t("admin.canned.deleteText"),
    confirmLabel: t("admin.delete"),
    async action() {
      await api.del(`/api/canned-responses/${canned.id}`);
      await redraw();
    },
  });
}
