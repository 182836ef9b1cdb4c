// Labels: what agents put on conversations to sort them. Staff create, rename, recolour and delete them
// (deleting takes a label off every conversation, so it asks first).

import * as api from "../api.js";
import { clear, el, toast } from "../dom.js";
import { t } from "../i18n.js";
import { Fields, button, confirmDialog, describe, field, formDialog, header, pager, table } from "./kit.js";

export async function render(root, _me, page = 1) {
  const { data, pagination } = await api.getPage("/api/labels", { page, limit: 50 });
  const redraw = (goTo = page) => render(root, _me, goTo).catch((problem) => toast(describe(problem)));
  const columns = [
    { label: t("admin.labels.name"), cell: (l) => el("span", { class: "label-chip" }, el("span", { class: "swatch", dataset: { color: l.color } }), l.name) },
    { label: t("admin.labels.color"), cell: (l) => l.color },
    {
      label: t("admin.actions"),
      cell: (l) =>
        el(
          "div",
          { class: "row-actions" },
          button(t("admin.edit"), () => edit(l, redraw), { secondary: true, label: t("admin.editNamed", { name: l.name }) }),
          button(t("admin.delete"), () => remove(l, redraw), { secondary: true, danger: true, label: t("admin.deleteNamed", { name: l.name }) }),
        ),
    },
  ];
  clear(root).append(
    header(t("admin.nav.labels"), t("admin.labels.intro"), button(t("admin.labels.add"), () => edit(null, redraw))),
    table({ name: t("admin.nav.labels"), columns, items: data, empty: t("admin.labels.empty") }),
    pager(pagination, redraw) ?? "",
  );
  paintSwatches(root);
}

// Colours come from data: set as a style property, never as markup.
function paintSwatches(root) {
  for (const swatch of root.querySelectorAll(".swatch[data-color]")) swatch.style.backgroundColor = swatch.dataset.color;
}

function edit(label, redraw) {
  const fields = new Fields([
    field({ name: "name", label: t("admin.labels.name"), value: label?.name, required: true }),
    field({ name: "color", label: t("admin.labels.color"), kind: "color", value: label?.color ?? "#607d8b" }),
  ]);
  formDialog({
    title: label ? t("admin.labels.editTitle", { name: label.name }) : t("admin.labels.add"),
    fields,
    submitLabel: t("admin.save"),
    async submit(f) {
      const body = { name: f.input("name").value, color: f.input("color").value };
      if (label) await api.patch(`/api/labels/${label.id}`, body);
      else await api.post("/api/labels", body);
      await redraw();
    },
  });
}

function remove(label, redraw) {
  confirmDialog({
    title: t("admin.labels.deleteTitle", { name: label.name }),
    text: t("admin.labels.deleteText"),
    confirmLabel: t("admin.delete"),
    async action() {
      await api.del(`/api/labels/${label.id}`);
      await redraw();
    },
  });
}
