// The contact panel: the customer's name (editable; empty shows their WhatsApp profile name again), number,
// the conversation's labels, and this contact's past conversations, each of which opens.

import * as api from "../api.js";
import { byId, clear, el } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";
import { describeError } from "./dialogs.js";

export function mountContact({ store, ui }) {
  const panel = byId("contact");
  let shownFor = null;

  async function render(conversationId) {
    const conversation = conversationId && store.state.conversations.get(conversationId);
    panel.hidden = !conversation || ui.contactOpen === false;
    if (!conversation) {
      // Never another conversation's contact: the panel waits for this one to load.
      shownFor = null;
      clear(panel);
      return;
    }
    const contact = conversation.contact;
    const name = el("input", { id: "contact-name", value: contact.name ?? "", maxlength: 200, placeholder: contact.profile_name ?? "" });
    const save = el("button", { type: "button", class: "secondary", text: t("contact.save") });
    const message = el("p", { class: "form-message", role: "alert" });
    save.addEventListener("click", async () => {
      save.disabled = true;
      try {
        await api.patch(`/api/contacts/${contact.id}`, { name: name.value.trim() || null });
        message.textContent = t("contact.saved");
        const current = store.state.conversations.get(conversation.id);
        if (current) store.put({ ...current, contact: { ...current.contact, name: name.value.trim() || null } });
      } catch (error) {
        message.textContent = describeError(error);
      } finally {
        save.disabled = false;
      }
    });
    const past = el("ul", { class: "past", "aria-label": t("contact.past") });
    const back = el("button", { type: "button", class: "secondary back", text: t("contact.back") });
    back.addEventListener("click", () => ui.set({ pane: "conversation" }));
    // The lines a contact lacks (no number, no username) are left out, not written as "null".
    clear(panel).append(...[
      back,
      el("h2", { text: t("contact.title") }),
      el("label", { for: "contact-name", text: t("contact.name") }), name, save, message,
      contact.wa_id ? el("p", {}, el("span", { class: "muted", text: `${t("contact.number")} ` }), el("span", { text: `+${contact.wa_id}` })) : null,
      contact.username ? el("p", {}, el("span", { class: "muted", text: `${t("wa.username")} ` }), el("span", { text: `@${contact.username}` })) : null,
      contact.profile_name ? el("p", {}, el("span", { class: "muted", text: `${t(contact.group_id ? "contact.groupSubject" : "contact.profile")} ` }), el("span", { text: contact.profile_name })) : null,
      el("p", {}, el("span", { class: "muted", text: `${t("contact.labels")} ` }), conversation.labels.map((l) => l.name).join(", ") || t("contact.noLabels")),
      el("h3", { text: t("contact.past") }), past,
    ].filter(Boolean));
    shownFor = conversation.id;
    try {
      const { data } = await api.getPage("/api/conversations", { contact_id: contact.id, limit: 20, sort: "-created_at" });
      if (shownFor !== conversation.id) return;
      const others = data.items.filter((c) => c.id !== conversation.id);
      if (!others.length) past.append(el("li", { class: "muted", text: t("contact.noPast") }));
      for (const other of others) {
        const open = el("button", { type: "button", class: "link", text: `${formatDateTime(other.created_at)} · ${t(`status.${other.status}`)}${other.close_reason ? ` (${other.close_reason})` : ""}` });
        open.addEventListener("click", () => ui.set({ openId: other.id }));
        past.append(el("li", {}, open));
      }
    } catch (error) {
      past.append(el("li", { class: "muted", text: describeError(error) }));
    }
  }

  ui.on((changes) => {
    if ("openId" in changes) render(changes.openId);
    else if ("contactOpen" in changes) panel.hidden = !ui.openId || !ui.contactOpen;
  });
  store.subscribe((change) => {
    // A conversation opened from a search or a notification arrives after it was asked for.
    if ((change.type === "history" || change.type === "snapshot") && ui.openId && shownFor !== ui.openId) {
      render(ui.openId);
      return;
    }
    if (change.type === "conversation" && change.conversation?.id === ui.openId && change.event !== "local") {
      const before = change.before;
      if (!before || before.contact.name !== change.conversation.contact.name || before.labels.length !== change.conversation.labels.length) render(ui.openId);
    }
  });
}
