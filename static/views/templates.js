// The template picker, offered once the 24-hour window has closed (only an approved template may go then):
// the number's approved templates with name, language and category, a preview that fills in as the agent
// types, and a field for every value the template takes — header (text, or a file for a media header),
// body (positional {{1}} or named {{first_name}}) and buttons. The server checks the values against the
// template again and builds Meta's `components`.

import * as api from "../api.js";
import { clear, el, setText } from "../dom.js";
import { formatDuration, t } from "../i18n.js";
import { describeError, openDialog } from "./dialogs.js";

function categoryName(category) {
  const key = `templates.category.${category.toLowerCase()}`;
  const name = t(key);
  return name === key ? category.toLowerCase() : name;
}

function fill(text, values) {
  return (text ?? "").replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, name) => values[name] || whole);
}

export function openTemplatePicker({ store, conversation }) {
  const id = conversation.id;
  let templates = [];
  let chosen = null;
  const fields = { header: new Map(), body: new Map(), buttons: new Map() };
  let headerFile = null;

  const choice = el("select", { id: "template-choice", required: true });
  const refresh = el("button", { type: "button", class: "secondary", text: t("templates.refresh") });
  const about = el("p", { class: "muted", role: "status" });
  const inputs = el("div", { class: "stack template-fields" });
  const preview = el("div", { class: "template-preview bubble out", "aria-live": "polite", "aria-label": t("templates.preview") });

  function field(group, key, label, parameter) {
    const input = el("input", { id: `template-${group}-${key}`, required: true, maxlength: 1024, placeholder: parameter?.example ?? "" });
    input.addEventListener("input", renderPreview);
    fields[group].set(key, input);
    inputs.append(el("label", { for: input.id, text: label }), input);
  }

  function values(group) {
    return Object.fromEntries([...fields[group]].map(([key, input]) => [key, input.value]));
  }

  function renderPreview() {
    clear(preview);
    if (!chosen) return;
    if (chosen.header?.text) preview.append(el("p", { class: "template-header", text: fill(chosen.header.text, values("header")) }));
    else if (chosen.header?.kind && chosen.header.kind !== "text") preview.append(el("p", { class: "muted", text: headerFile ? `📎 ${headerFile.name}` : t(`kind.${chosen.header.kind}`) }));
    if (chosen.body) preview.append(el("p", { class: "text", text: fill(chosen.body.text, values("body")) }));
    if (chosen.footer) preview.append(el("p", { class: "muted", text: chosen.footer }));
    for (const button of chosen.buttons) preview.append(el("p", { class: "template-button", text: `↗ ${button.text ?? ""}` }));
  }

  function choose() {
    chosen = templates.find((template) => `${template.name}|${template.language}` === choice.value) ?? null;
    for (const group of Object.values(fields)) group.clear();
    headerFile = null;
    clear(inputs);
    if (!chosen) return renderPreview();
    const header = chosen.header;
    if (header?.kind === "text") for (const p of header.parameters) field("header", p.name, t("templates.headerValue", { name: p.name }), p);
    else if (header && ["image", "video", "document"].includes(header.kind)) {
      const file = el("input", { type: "file", id: "template-header-file", required: true, accept: header.kind === "image" ? "image/jpeg,image/png" : header.kind === "document" ? "application/pdf" : "" });
      file.addEventListener("change", () => {
        headerFile = file.files?.[0] ?? null;
        renderPreview();
      });
      inputs.append(el("label", { for: file.id, text: t("templates.headerFile", { kind: t(`kind.${header.kind}`) }) }), file);
    }
    for (const p of chosen.body?.parameters ?? []) field("body", p.name, `{{${p.name}}}`, p);
    for (const button of chosen.buttons) if (button.parameter) field("buttons", String(button.index), t("templates.buttonValue", { text: button.text ?? button.type }), button.parameter);
    renderPreview();
  }
  choice.addEventListener("change", choose);

  async function load(fresh = false) {
    setText(about, t("console.loading"));
    try {
      const answer = await api.get(`/api/conversations/${id}/templates`, { refresh: fresh ? "true" : undefined });
      templates = answer.templates.filter((template) => template.sendable);
      const keep = choice.value;
      clear(choice).append(el("option", { value: "", text: t("templates.pick") }),
        ...templates.map((template) => el("option", { value: `${template.name}|${template.language}`, text: `${template.name} · ${template.language}${template.category ? ` · ${categoryName(template.category)}` : ""}` })));
      choice.value = keep;
      if (answer.unavailable || !templates.length) setText(about, answer.message ?? t("templates.none"));
      else if (answer.stale) setText(about, t("templates.stale", { age: formatDuration(answer.age_seconds ?? 0) }));
      else setText(about, "");
      choose();
    } catch (error) {
      setText(about, describeError(error));
    }
  }
  refresh.addEventListener("click", () => load(true));

  openDialog({
    title: t("templates.title"),
    wide: true,
    body: [
      el("label", { for: "template-choice", text: t("templates.template") }),
      el("div", { class: "row" }, choice, refresh),
      about, inputs,
      el("p", { class: "muted", text: t("templates.previewTitle") }), preview,
    ],
    submit: t("templates.send"),
    async onSubmit() {
      if (!chosen) throw new Error(t("templates.pick"));
      const template = { name: chosen.name, language: chosen.language };
      const body = values("body");
      if (Object.keys(body).length) template.parameters = chosen.parameter_format === "NAMED" ? body : chosen.body.parameters.map((p) => body[p.name]);
      if (chosen.header?.kind === "text" && chosen.header.parameters.length) template.header = { kind: "text", text: Object.values(values("header"))[0] };
      else if (headerFile) {
        const uploaded = await api.upload(`/api/conversations/${id}/media`, headerFile, () => null);
        template.header = { kind: chosen.header.kind, id: uploaded.media_id, ...(chosen.header.kind === "document" ? { filename: headerFile.name.slice(0, 240) } : {}) };
      }
      const buttons = [...fields.buttons].map(([index, input]) => ({ index: Number(index), parameter: input.value }));
      if (buttons.length) template.buttons = buttons;
      store.putMessage(await api.post(`/api/conversations/${id}/messages`, { template }));
    },
  });
  load();
}
