// The composer: Enter sends and Shift+Enter breaks the line; `/` and a shortcut (or words of its text)
// picks a canned response with its placeholders filled in; files go with a progress bar; a reply can
// quote a message; emoji; a private-note toggle (notes never reach the customer); the typing indicator
// goes to the customer while the agent types. It shows the 24-hour window's countdown, and once the window
// has closed free text is off and the template picker takes its place. One draft per conversation is
// kept in this browser, so a reload loses nothing and no draft leaks into another chat.

import * as api from "../api.js";
import { clear, el, setText } from "../dom.js";
import { formatDuration, t } from "../i18n.js";
import { isStaff } from "../store.js";
import { describeError } from "./dialogs.js";
import { contactName, kindName } from "./list.js";
import { openTemplatePicker } from "./templates.js";

// What the server takes to send (messages/media.py UPLOAD_RULES): anything else would be refused after uploading.
const ACCEPTED = "image/jpeg,image/png,audio/ogg,audio/mpeg,audio/aac,audio/amr,application/pdf,text/plain,.doc,.docx,.xls,.xlsx,.ppt,.pptx";
const EMOJI = ["😀", "😂", "😊", "😍", "🙏", "👍", "👏", "🎉", "❤️", "😢", "😮", "🤔", "✅", "⏳", "📦", "📞"];
const TYPING_EVERY_MS = 10_000;
// Colleagues following the conversation hear it more often: the server relays one every 2 s at most.
const COLLEAGUES_EVERY_MS = 2_000;
const draftKey = (id) => `fiv.draft.${id}`;

// `{{contact.name}}`, `{{agent.name}}`, and `{{contact.name|there}}` with a fallback when the value is unknown.
export function fillPlaceholders(body, values) {
  return body.replace(/\{\{\s*([\w.]+)\s*(?:\|([^}]*))?\}\}/g, (whole, name, fallback) => values[name] ?? fallback ?? whole);
}

export function mountComposer({ store, ui, box }) {
  const me = store.state.me;
  let conversationId = null;
  let replyingTo = null;
  let lastTyping = 0;
  let lastTold = 0;
  let sending = false;
  let suggestions = [];
  let active = 0;

  const label = el("label", { for: "composer", class: "visually-hidden", text: t("composer.label") });
  const input = el("textarea", { id: "composer", rows: 2, maxlength: 4096, "aria-autocomplete": "list", "aria-controls": "canned", "aria-expanded": "false" });
  const canned = el("ul", { id: "canned", role: "listbox", class: "canned", "aria-label": t("composer.canned"), hidden: true });
  const quote = el("div", { class: "replying", hidden: true });
  // Not a live region: a countdown announced every minute would drown everything else out.
  const windowLine = el("p", { class: "window" });
  const closedBox = el("div", { class: "window-closed", hidden: true });
  const noteToggle = el("input", { type: "checkbox", id: "note-toggle" });
  const fileInput = el("input", { type: "file", id: "attach", class: "visually-hidden", accept: ACCEPTED });
  const attachLabel = el("label", { for: "attach", class: "button secondary", text: t("composer.attach") });
  const progress = el("progress", { max: 1, value: 0, hidden: true, "aria-label": t("composer.uploading") });
  const emojiButton = el("button", { type: "button", class: "secondary", "aria-label": t("composer.emoji"), "aria-expanded": "false", text: "😊" });
  const emojiPanel = el("div", { class: "emoji", hidden: true, role: "group", "aria-label": t("composer.emoji") });
  const send = el("button", { type: "button", text: t("composer.send") });
  const status = el("p", { class: "form-message", role: "alert" });
  const form = el("div", { class: "composer" },
    windowLine, closedBox, quote, label, input, canned,
    el("div", { class: "composer-tools" },
      el("label", { class: "toggle" }, noteToggle, el("span", { text: t("composer.note") })),
      attachLabel, fileInput, emojiButton, send),
    emojiPanel, progress, status);
  box.append(form);

  for (const emoji of EMOJI) {
    const choice = el("button", { type: "button", class: "emoji-choice", text: emoji });
    choice.addEventListener("click", () => {
      insert(emoji);
      emojiPanel.hidden = true;
      emojiButton.setAttribute("aria-expanded", "false");
      input.focus();
    });
    emojiPanel.append(choice);
  }
  emojiButton.addEventListener("click", () => {
    emojiPanel.hidden = !emojiPanel.hidden;
    emojiButton.setAttribute("aria-expanded", String(!emojiPanel.hidden));
  });

  function conversation() {
    return conversationId ? store.state.conversations.get(conversationId) : null;
  }

  function mayReply(c) {
    return c && c.status !== "closed" && ((c.status === "assigned" && c.agent_id === me.user.id) || isStaff(me));
  }

  function windowOpen(c) {
    return Boolean(c?.window_closes_at) && Date.parse(c.window_closes_at) > Date.now();
  }

  function insert(text) {
    const start = input.selectionStart ?? input.value.length;
    input.value = input.value.slice(0, start) + text + input.value.slice(input.selectionEnd ?? start);
    input.selectionStart = input.selectionEnd = start + text.length;
    saveDraft();
  }

  function saveDraft() {
    if (!conversationId) return;
    if (input.value) window.localStorage.setItem(draftKey(conversationId), input.value);
    else window.localStorage.removeItem(draftKey(conversationId));
  }

  function values() {
    const c = conversation();
    return { "contact.name": c?.contact.name || c?.contact.profile_name || undefined, "agent.name": me.user.name };
  }

  function showSuggestions() {
    const match = /^\/(\S*)$/.exec(input.value);
    if (!match) {
      hideSuggestions();
      return;
    }
    const wanted = match[1].toLowerCase();
    suggestions = store.state.canned.filter((c) => c.shortcut.toLowerCase().startsWith(wanted) || c.title.toLowerCase().includes(wanted) || c.body.toLowerCase().includes(wanted)).slice(0, 8);
    active = 0;
    clear(canned).append(...suggestions.map((c, index) => {
      const option = el("li", { role: "option", id: `canned-${index}`, "aria-selected": String(index === active) },
        el("strong", { text: `/${c.shortcut}` }), " ", el("span", { text: c.title }), el("span", { class: "muted canned-body", text: fillPlaceholders(c.body, values()) }));
      option.addEventListener("mousedown", (event) => {
        event.preventDefault();
        choose(index);
      });
      return option;
    }));
    canned.hidden = suggestions.length === 0;
    input.setAttribute("aria-expanded", String(!canned.hidden));
    input.setAttribute("aria-activedescendant", suggestions.length ? "canned-0" : "");
  }

  function hideSuggestions() {
    suggestions = [];
    canned.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function choose(index) {
    const chosen = suggestions[index];
    if (!chosen) return;
    input.value = fillPlaceholders(chosen.body, values());
    hideSuggestions();
    saveDraft();
    input.focus();
  }

  function moveActive(step) {
    active = (active + step + suggestions.length) % suggestions.length;
    canned.querySelectorAll("[role=option]").forEach((node, index) => node.setAttribute("aria-selected", String(index === active)));
    input.setAttribute("aria-activedescendant", `canned-${active}`);
  }

  input.addEventListener("keydown", (event) => {
    if (!canned.hidden && suggestions.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        moveActive(event.key === "ArrowDown" ? 1 : -1);
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        choose(active);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        hideSuggestions();
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", () => {
    saveDraft();
    showSuggestions();
    const c = conversation();
    if (c && input.value.trim() && Date.now() - lastTold > COLLEAGUES_EVERY_MS) {
      lastTold = Date.now();
      ui.live?.send({ type: "typing", conversation_id: c.id });
    }
    if (!noteToggle.checked && mayReply(c) && windowOpen(c) && Date.now() - lastTyping > TYPING_EVERY_MS && input.value.trim()) {
      lastTyping = Date.now();
      api.post(`/api/conversations/${conversationId}/typing`).catch(() => null);
    }
  });
  noteToggle.addEventListener("change", () => {
    form.classList.toggle("as-note", noteToggle.checked);
    render(conversation());
  });
  send.addEventListener("click", submit);

  // A reply (text or media), quoting the message chosen; the answer is the message as it then stands.
  async function reply(c, content, quoting) {
    const body = quoting ? { ...content, reply_to: quoting.id } : content;
    store.putMessage(await api.post(`/api/conversations/${c.id}/messages`, body));
  }

  // After a send, the draft it came from goes, wherever the agent has gone meanwhile.
  function sent(c, text) {
    if (conversationId === c.id) {
      if (input.value.trim() === text) input.value = "";
      saveDraft();
      setReply(null);
    } else if ((window.localStorage.getItem(draftKey(c.id)) ?? "").trim() === text) {
      window.localStorage.removeItem(draftKey(c.id));
    }
  }

  async function submit() {
    const text = input.value.trim();
    const c = conversation();
    // One send at a time: a second Enter (or a held key) must not send the message twice.
    if (!text || !c || sending) return;
    sending = true;
    send.disabled = true;
    setText(status, "");
    const quoting = replyingTo;
    try {
      if (noteToggle.checked) {
        await api.post(`/api/conversations/${c.id}/notes`, { body: text });
      } else {
        await reply(c, { text }, quoting);
      }
      sent(c, text);
    } catch (error) {
      if (conversationId === c.id) setText(status, describeError(error));
    } finally {
      sending = false;
      render(conversation());
      input.focus();
    }
  }

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files?.[0];
    fileInput.value = "";
    const c = conversation();
    if (!file || !c) return;
    // What goes with the file is what was there when it was chosen, whatever happens while it uploads.
    const caption = input.value.trim();
    const quoting = replyingTo;
    progress.hidden = false;
    progress.value = 0;
    setText(status, "");
    try {
      const uploaded = await api.upload(`/api/conversations/${c.id}/media`, file, (share) => {
        progress.value = share;
      });
      const media = { id: uploaded.media_id, kind: uploaded.kind };
      if (uploaded.kind === "document") media.filename = file.name.slice(0, 240);
      if (caption && uploaded.kind !== "audio") media.caption = caption.slice(0, 1024);
      await reply(c, { media }, quoting);
      if (media.caption) sent(c, caption);
      else if (conversationId === c.id) setReply(null);
    } catch (error) {
      if (conversationId === c.id) setText(status, describeError(error));
    } finally {
      progress.hidden = true;
    }
  });

  function setReply(message) {
    replyingTo = message;
    quote.hidden = !message;
    if (!message) return;
    const cancel = el("button", { type: "button", class: "link", text: t("composer.cancelReply") });
    cancel.addEventListener("click", () => setReply(null));
    clear(quote).append(el("span", { class: "muted", text: t("composer.replyingTo") }), el("blockquote", { class: "quote", text: message.text ?? kindName(message.kind) }), cancel);
    input.focus();
  }

  function render(c) {
    if (!c) return;
    const replying = mayReply(c);
    const open = windowOpen(c);
    const asNote = noteToggle.checked;
    const freeText = asNote || (replying && open);
    input.disabled = !freeText;
    send.disabled = !freeText || sending;
    attachLabel.classList.toggle("disabled", !(replying && open) || asNote);
    fileInput.disabled = !(replying && open) || asNote;
    emojiButton.disabled = !freeText;
    send.textContent = asNote ? t("composer.addNote") : t("composer.send");
    input.placeholder = asNote ? t("composer.notePlaceholder") : t("composer.placeholder", { name: contactName(c.contact) });
    clear(closedBox);
    closedBox.hidden = asNote || !replying || open;
    if (!closedBox.hidden) {
      const pick = el("button", { type: "button", text: t("templates.choose") });
      pick.addEventListener("click", () => openTemplatePicker({ store, conversation: c }));
      closedBox.append(el("p", { text: c.last_inbound_at ? t("window.closed") : t("window.neverOpened") }), pick);
    }
    if (!replying && c.status !== "closed" && !asNote) setText(windowLine, t("composer.notYours"));
    else if (c.status === "closed" && !asNote) setText(windowLine, t("composer.closed"));
    else tickWindow();
  }

  function tickWindow() {
    const c = conversation();
    if (!c || noteToggle.checked || !mayReply(c)) return;
    if (windowOpen(c)) {
      const left = (Date.parse(c.window_closes_at) - Date.now()) / 1000;
      setText(windowLine, t("window.closesIn", { time: formatDuration(left) }));
      windowLine.classList.toggle("soon", left < 3600);
    } else {
      setText(windowLine, "");
      if (closedBox.hidden) render(c);
    }
  }
  window.setInterval(tickWindow, 1000);

  return {
    open(id) {
      if (conversationId !== id) {
        conversationId = id;
        input.value = window.localStorage.getItem(draftKey(id)) ?? "";
        setReply(null);
        noteToggle.checked = false;
        form.classList.remove("as-note");
        hideSuggestions();
        setText(status, "");
      }
      render(conversation());
    },
    render(c) {
      if (c.id === conversationId) render(c);
    },
    close() {
      conversationId = null;
      input.disabled = true;
      send.disabled = true;
      fileInput.disabled = true;
    },
    focus() {
      input.focus();
    },
    replyTo(message) {
      setReply(message);
    },
  };
}
