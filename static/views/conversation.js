// The open conversation: who it is with and where it stands, the actions on it (take, transfer, close,
// unassign, reopen, labels), the history with day separators, delivery ticks, Meta's reason and Retry for
// a failed message, quoted replies, media inline and private notes; infinite scroll loads older messages.
// Opening it as its agent marks the customer's messages read (a supervisor looking in marks nothing).

import * as api from "../api.js";
import { byId, clear, el, linkify, setText } from "../dom.js";
import { dayKey, formatDay, formatTime, t } from "../i18n.js";
import { instant, isStaff } from "../store.js";
import { mountComposer } from "./composer.js";
import { describeError, openDialog } from "./dialogs.js";
import { contactName, kindName } from "./list.js";

const TICKS = { queued: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };

function mediaOf(message) {
  const media = message.media;
  // Sent by a link WhatsApp fetched the file from: the link itself (the console holds no copy).
  if (!media?.id) return media?.link ? el("a", { href: media.link, target: "_blank", rel: "noopener noreferrer", class: "media-document" }, `🔗 ${media.filename || kindName(message.kind)}`) : null;
  const source = `/api/messages/${message.id}/media`;
  switch (message.kind) {
    case "image":
    case "sticker":
      return el("a", { href: source, target: "_blank", rel: "noopener noreferrer", class: "media-image" },
        el("img", { src: source, alt: media.caption || kindName(message.kind), loading: "lazy" }));
    case "audio":
      return el("audio", { controls: true, preload: "none", src: source, "aria-label": t(media.voice ? "kind.voice" : "kind.audio") });
    case "video":
      return el("video", { controls: true, preload: "metadata", src: source, "aria-label": t("kind.video") });
    default:
      return el("a", { href: source, download: media.filename || "", class: "media-document" }, `📄 ${media.filename || t("kind.document")}`);
  }
}

export function mountConversation({ store, ui }) {
  const pane = byId("conversation");
  const me = store.state.me;
  const staff = isStaff(me);
  let current = null; // { id, nodes }
  let stickToBottom = true;

  const header = el("header", { class: "conversation-header" });
  const actions = el("div", { class: "actions", role: "toolbar", "aria-label": t("conversation.actions") });
  const messages = el("ol", { class: "timeline", role: "log", "aria-label": t("conversation.messages"), tabindex: "0" });
  const older = el("button", { type: "button", class: "secondary older", text: t("conversation.older") });
  const colleagues = el("p", { class: "colleagues muted", "aria-live": "polite" });
  const typing = new Map(); // user id → { name, until } of colleagues typing in the open conversation
  const composerBox = el("div", { class: "composer-box" });
  const composer = mountComposer({ store, ui, box: composerBox });

  older.addEventListener("click", () => loadOlder());
  messages.addEventListener("scroll", () => {
    stickToBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    if (messages.scrollTop < 60) loadOlder();
  });

  let loadingOlder = false;
  async function loadOlder() {
    if (!current || loadingOlder) return;
    const history = store.history(current.id);
    if (!history || history.complete) return;
    loadingOlder = true;
    const fromBottom = messages.scrollHeight - messages.scrollTop;
    try {
      await store.loadHistory(current.id, { older: true });
      messages.scrollTop = messages.scrollHeight - fromBottom;
    } catch (error) {
      problem(describeError(error));
      ui.focusMessage = null;
    } finally {
      loadingOlder = false;
    }
  }

  async function act(button, run) {
    button.disabled = true;
    try {
      const conversation = await run();
      if (conversation) store.put(conversation);
    } catch (error) {
      problem(describeError(error));
    } finally {
      button.disabled = false;
    }
  }

  function failed(text) {
    clear(header).append(el("h2", { id: "conversation-title", text: t("conversation.unavailable") }));
    problem(text);
  }

  function problem(text) {
    const box = pane.querySelector(".conversation-problem");
    if (box) setText(box, text);
  }

  function button(label, onClick, extra = {}) {
    const node = el("button", { type: "button", class: "secondary", text: label, ...extra });
    node.addEventListener("click", () => onClick(node));
    return node;
  }

  function transfer() {
    const id = current.id;
    const target = el("select", { id: "transfer-target", required: true });
    const note = el("textarea", { id: "transfer-note", rows: 3, maxlength: 4000 });
    let dialog = null;
    api.get(`/api/conversations/${id}/transfer-targets`).then((targets) => {
      const agents = el("optgroup", { label: t("transfer.agents") }, ...targets.agents.map((a) =>
        el("option", { value: `agent:${a.id}`, text: t("transfer.agentOption", { name: a.name, status: t(`presence.${a.status}`), load: a.open_conversations, capacity: a.capacity }) })));
      const queues = el("optgroup", { label: t("transfer.queues") }, ...targets.queues.map((q) =>
        el("option", { value: `queue:${q.id}`, text: t("transfer.queueOption", { name: q.name, count: q.waiting }) })));
      target.append(agents, queues);
    }).catch((error) => dialog?.showError(describeError(error)));
    dialog = openDialog({
      title: t("transfer.title"),
      body: [el("label", { for: "transfer-target", text: t("transfer.to") }), target, el("label", { for: "transfer-note", text: t("transfer.note") }), note],
      submit: t("transfer.submit"),
      async onSubmit() {
        const [kind, targetId] = target.value.split(":");
        const body = kind === "agent" ? { agent_id: targetId } : { queue_id: targetId };
        if (note.value.trim()) body.note = note.value.trim();
        store.put(await api.post(`/api/conversations/${id}/transfer`, body));
      },
    });
  }

  function close() {
    const id = current.id;
    const reason = el("input", { id: "close-reason", required: true, maxlength: 200, list: "close-reasons" });
    const reasons = el("datalist", { id: "close-reasons" }, ...["solved", "no_reply", "spam", "duplicate"].map((r) => el("option", { value: t(`close.reason.${r}`) })));
    openDialog({
      title: t("close.title"),
      body: [el("label", { for: "close-reason", text: t("close.reason") }), reason, reasons],
      submit: t("close.submit"),
      async onSubmit() {
        store.put(await api.post(`/api/conversations/${id}/close`, { reason: reason.value.trim() }));
      },
    });
  }

  // The header and toolbar are rebuilt only when what they show changed, so an open label menu or a focused
  // button survives a message arriving.
  function headerKey(conversation) {
    const agent = conversation.agent_id ? store.state.presence.get(conversation.agent_id)?.name : null;
    return JSON.stringify([conversation.status, conversation.agent_id, agent, conversation.queue_id, conversation.close_reason,
      conversation.contact.name, conversation.contact.profile_name, conversation.labels.map((l) => l.id), store.state.labels.size, ui.contactOpen,
      me.agents_can_take_waiting]);
  }

  function renderHeader(conversation) {
    const key = headerKey(conversation);
    if (current.headerKey === key) return;
    current.headerKey = key;
    const agent = conversation.agent_id ? store.state.presence.get(conversation.agent_id)?.name ?? t("conversation.anAgent") : null;
    const queue = store.state.queues.get(conversation.queue_id)?.name;
    const where = conversation.status === "assigned"
      ? t("conversation.assignedTo", { name: conversation.agent_id === me.user.id ? t("conversation.you") : agent })
      : conversation.status === "waiting" ? t("conversation.waitingIn", { queue: queue ?? "" }) : t("conversation.closedWith", { reason: conversation.close_reason ?? "" });
    const back = button(t("conversation.back"), () => ui.set({ openId: null, pane: "list" }), { class: "secondary back" });
    // A wide screen shows the contact beside the conversation (the button hides or shows it); a phone
    // shows it instead of the conversation.
    const phone = window.matchMedia("(max-width: 760px)").matches;
    const contactToggle = button(t("conversation.contact"), () => (phone ? ui.set({ pane: "contact" }) : ui.set({ contactOpen: !ui.contactOpen })), {
      "aria-controls": "contact",
      "aria-expanded": String(phone ? false : ui.contactOpen !== false),
    });
    clear(header).append(
      back,
      el("div", { class: "who" }, el("h2", { id: "conversation-title", text: contactName(conversation.contact) }), el("p", { class: "muted", text: where })),
      contactToggle,
    );
    const mine = conversation.status === "assigned" && conversation.agent_id === me.user.id;
    const open = conversation.status !== "closed";
    const id = conversation.id;
    clear(actions);
    if (conversation.status === "waiting" && (staff || me.agents_can_take_waiting)) {
      actions.append(button(t("action.take"), (b) => act(b, () => api.post(`/api/conversations/${id}/assign`, {}))));
    }
    if (open && (mine || staff)) actions.append(button(t("action.transfer"), transfer, { "aria-keyshortcuts": "t" }));
    if (conversation.status === "assigned" && staff) {
      actions.append(button(t("action.unassign"), (b) => act(b, () => api.post(`/api/conversations/${id}/unassign`))));
    }
    if (open && (mine || staff)) actions.append(button(t("action.close"), close, { "aria-keyshortcuts": "c" }));
    if (!open && (staff || conversation.agent_id === me.user.id)) {
      actions.append(button(t("action.reopen"), (b) => act(b, () => api.post(`/api/conversations/${id}/reopen`))));
    }
    const labels = el("select", { "aria-label": t("action.addLabel") }, el("option", { value: "", text: t("action.addLabel") }),
      ...[...store.state.labels.values()].filter((l) => !conversation.labels.some((c) => c.id === l.id)).map((l) => el("option", { value: l.id, text: l.name })));
    labels.addEventListener("change", () => {
      if (labels.value) act(labels, () => api.put(`/api/conversations/${id}/labels/${labels.value}`));
    });
    const chips = conversation.labels.map((label) => {
      const remove = el("button", { type: "button", class: "chip-remove", "aria-label": t("action.removeLabel", { name: label.name }), text: "×" });
      remove.addEventListener("click", () => act(remove, () => api.del(`/api/conversations/${id}/labels/${label.id}`)));
      const chip = el("span", { class: "chip" }, label.name, remove);
      // Through the CSSOM: the CSP refuses style attributes, not styles set from a script of the page.
      chip.style.setProperty("--label", label.color);
      return chip;
    });
    actions.append(el("span", { class: "chips" }, ...chips), labels);
  }

  function quoteOf(message, history) {
    if (!message.reply_to_wa_message_id || !history) return null;
    const quoted = [...history.messages.values()].find((m) => m.wa_message_id === message.reply_to_wa_message_id);
    return el("blockquote", { class: "quote" }, quoted ? (quoted.text ?? kindName(quoted.kind)) : t("message.quotedUnknown"));
  }

  // What a kind without plain text says: a reaction names the message it reacts to, a location links to a
  // map, shared contact cards give their names; every other kind at least says what it is.
  function specialOf(message, history) {
    const details = message.details ?? {};
    if (message.kind === "reaction" && details.reaction) {
      const target = history && [...history.messages.values()].find((m) => m.wa_message_id === details.reaction.message_id);
      const about = target ? (target.text ?? kindName(target.kind)).slice(0, 80) : t("message.quotedUnknown");
      return details.reaction.emoji ? t("message.reacted", { emoji: details.reaction.emoji, text: about }) : t("message.unreacted", { text: about });
    }
    if (message.kind === "location" && details.location) {
      const { latitude, longitude, name, address } = details.location;
      const map = `https://www.openstreetmap.org/?mlat=${latitude}&mlon=${longitude}#map=16/${latitude}/${longitude}`;
      return el("span", {}, `📍 ${[name, address].filter(Boolean).join(", ") || t("kind.location")} `, el("a", { href: map, target: "_blank", rel: "noopener noreferrer", text: t("message.openMap") }));
    }
    if (message.kind === "contacts" && Array.isArray(details.contacts)) {
      return `👤 ${details.contacts.map((card) => card?.name?.formatted_name ?? t("kind.contacts")).join(", ")}`;
    }
    return null;
  }

  // An edited message says so; its earlier texts open under the mark (the customer's edits stay readable).
  function editedMark(message) {
    const earlier = (message.revisions ?? []).map((r) => el("li", {}, el("span", { class: "muted", text: `${formatTime(r.replaced_at)} ` }), r.text ?? ""));
    if (!earlier.length) return el("span", { class: "edited", text: `${t("wa.edited")} ` });
    return el("details", { class: "edited" }, el("summary", { text: t("wa.edited") }), el("p", { class: "muted", text: t("wa.editedBefore") }), el("ul", {}, ...earlier));
  }

  // Reactions sit on the message they react to, one per person (the newest).
  function reactionsOf(message) {
    const reactions = message.reactions ?? [];
    if (!reactions.length) return null;
    const label = t("wa.reactions", { emoji: reactions.map((r) => r.emoji).join(" ") });
    return el("p", { class: "reactions", "aria-label": label, title: label }, ...reactions.map((r) => el("span", { class: `reaction by-${r.by}`, text: r.emoji })));
  }

  function messageNode(message, history) {
    const outbound = message.direction === "outbound";
    const body = el("div", { class: "bubble-body" });
    const media = mediaOf(message);
    const special = specialOf(message, history);
    if (message.details?.forwarded) body.append(el("p", { class: "forwarded muted", text: t("message.forwarded") }));
    if (message.details?.from_app) body.append(el("p", { class: "forwarded muted", text: t("wa.fromApp") }));
    // In a group, each message says which participant wrote it.
    const participant = message.details?.participant;
    if (participant) body.append(el("p", { class: "participant", text: participant.name || (participant.username ? `@${participant.username}` : `+${participant.wa_id ?? ""}`) }));
    if (message.revoked_at) body.append(el("p", { class: "text muted deleted", text: t("wa.deleted") }));
    else {
      if (media) body.append(media);
      if (special) body.append(el("p", { class: "text" }, special));
      else if (message.text) body.append(el("p", { class: "text" }, linkify(message.text)));
      else if (!media) body.append(el("p", { class: "text muted", text: kindName(message.kind) }));
    }
    const meta = el("span", { class: "meta" }, formatTime(message.created_at));
    if (message.edited_at && !message.revoked_at) meta.prepend(editedMark(message));
    if (outbound) {
      const tick = t(`tick.${message.status}`);
      meta.append(el("span", { class: `tick tick-${message.status}`, role: "img", "aria-label": tick, title: tick, text: TICKS[message.status] ?? "" }));
    }
    const found = current?.highlight === message.id ? " found" : "";
    const node = el("li", { class: `bubble ${outbound ? "out" : "in"}${found}`, dataset: { id: message.id, status: message.status } }, quoteOf(message, history), body, meta, reactionsOf(message));
    if (message.status === "failed") {
      const reason = message.error?.reason || message.error?.message || t("message.failed");
      const retry = el("button", { type: "button", class: "secondary", text: t("message.retry") });
      retry.addEventListener("click", () => act(retry, async () => {
        store.putMessage(await api.post(`/api/messages/${message.id}/retry`));
      }));
      node.append(el("p", { class: "failure", role: "note" }, el("span", { text: t("message.failedBecause", { reason }) }), retry));
    }
    if (!outbound || message.status !== "failed") {
      const reply = el("button", { type: "button", class: "link reply", text: t("message.reply"), "aria-label": t("message.replyTo", { text: (message.text ?? "").slice(0, 40) }) });
      reply.addEventListener("click", () => composer.replyTo(message));
      if (message.wa_message_id) node.append(reply);
    }
    return node;
  }

  function noteNode(note) {
    // A whisper is a supervisor's word to this agent: set apart from the notes everyone writes.
    return el("li", { class: note.whisper ? "note whisper" : "note", dataset: { id: note.id } },
      el("p", { class: "note-author", text: note.whisper ? t("wallboard.whisperFrom", { name: note.author_name }) : t("note.by", { name: note.author_name }) }),
      el("p", { class: "text" }, linkify(note.body)),
      el("span", { class: "meta", text: formatTime(note.created_at) }));
  }

  // What a bubble shows: the same key keeps the same element, so a playing voice note or video goes on
  // playing, and a focused Reply or Retry keeps its focus, while other messages arrive.
  function bubbleKey(entry, history) {
    const item = entry.item;
    if (entry.type === "note") return `note:${item.id}`;
    const quoted = item.reply_to_wa_message_id && history ? [...history.messages.values()].some((m) => m.wa_message_id === item.reply_to_wa_message_id) : false;
    return JSON.stringify([item.id, item.status, item.text, item.error?.reason ?? null, item.wa_message_id, current.highlight === item.id, quoted]);
  }

  function renderTimeline() {
    const history = store.history(current.id);
    const wasAtBottom = stickToBottom;
    const nodes = [];
    const kept = new Map();
    if (history && !history.complete) nodes.push(el("li", { class: "older-row" }, older));
    let day = null;
    for (const entry of store.timeline(current.id)) {
      const created = entry.item.created_at;
      if (dayKey(created) !== day) {
        day = dayKey(created);
        nodes.push(el("li", { class: "day", role: "separator", text: formatDay(created) }));
      }
      const key = bubbleKey(entry, history);
      const node = current.bubbles.get(key) ?? (entry.type === "message" ? messageNode(entry.item, history) : noteNode(entry.item));
      kept.set(key, node);
      nodes.push(node);
    }
    current.bubbles = kept;
    messages.replaceChildren(...nodes);
    if (wasAtBottom) messages.scrollTop = messages.scrollHeight;
    // A search result opens at the message it found (loading older pages until it is there), marked.
    if (ui.focusMessage) {
      const target = messages.querySelector(`[data-id="${CSS.escape(ui.focusMessage)}"]`);
      if (target) {
        current.highlight = ui.focusMessage;
        current.bubbles.clear();
        target.classList.add("found");
        target.scrollIntoView({ block: "center" });
        ui.focusMessage = null;
      } else if (history && !history.complete) {
        loadOlder();
      } else {
        ui.focusMessage = null; // not in this conversation's history after all
      }
    }
  }

  function render() {
    const conversation = current && store.state.conversations.get(current.id);
    if (!conversation) return;
    renderHeader(conversation);
    renderTimeline();
    composer.render(conversation);
  }

  async function open(id) {
    store.focus(id);
    // Nothing of the previous conversation may stay usable while this one loads (or fails to).
    clear(actions);
    composer.close();
    if (!id) {
      current = null;
      clear(pane).append(el("p", { class: "muted empty", text: t("conversation.none") }));
      return;
    }
    current = { id, bubbles: new Map(), headerKey: null };
    stickToBottom = true;
    typing.clear();
    setText(colleagues, "");
    clear(pane).append(header, el("p", { class: "conversation-problem", role: "alert" }), actions, messages, colleagues, composerBox);
    clear(header).append(el("h2", { id: "conversation-title", text: t("console.loading") }));
    clear(messages);
    try {
      if (!store.history(id)) {
        const found = await store.loadConversation(id);
        if (!found) {
          failed(t("error.notFound"));
          return;
        }
      }
    } catch (error) {
      failed(describeError(error));
      return;
    }
    if (current?.id !== id) return;
    render();
    composer.open(id);
    markRead();
  }

  store.subscribe((change) => {
    if (!current) return;
    // The tenant's time zone may have changed: every message's time is written anew.
    if (change.type === "tenant") current.bubbles.clear();
    if (change.type === "snapshot" || change.type === "tenant" || change.conversationId === current.id || change.conversation?.id === current.id) {
      render();
      if (change.type === "message" && change.message?.direction === "inbound" && document.visibilityState === "visible") markRead();
    }
  });

  // Only its agent tells the customer their messages were read; a supervisor looks in silently.
  function markRead() {
    const conversation = current && store.state.conversations.get(current.id);
    if (conversation?.status === "assigned" && conversation.agent_id === me.user.id && conversation.unread_count) {
      store.markedRead(current.id);
      api.post(`/api/conversations/${current.id}/read`).catch(() => null);
    }
  }
  // What arrived while the tab was hidden is read when the agent comes back to it.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markRead();
  });

  ui.on((changes) => {
    if ("openId" in changes && changes.openId !== current?.id) open(changes.openId);
    else if (("contactOpen" in changes || changes.focusMessage) && current) render();
  });

  // Who else is typing here, so two people do not answer the customer at once; a notice lasts 4 s.
  function showColleagues() {
    const now = Date.now();
    for (const [id, entry] of typing) if (entry.until < now) typing.delete(id);
    const names = [...typing.values()].map((entry) => entry.name);
    setText(colleagues, names.length ? t("conversation.typing", { names: new Intl.ListFormat(document.documentElement.lang).format(names), count: names.length }) : "");
  }
  window.setInterval(showColleagues, 1000);

  return {
    colleagueTyping(data) {
      if (!current || data.conversation_id !== current.id || data.user_id === me.user.id) return;
      typing.set(data.user_id, { name: data.name, until: Date.now() + 4000 });
      showColleagues();
    },
    transfer: () => current && transfer(),
    close: () => current && close(),
    focusComposer: () => composer.focus(),
    current: () => current?.id ?? null,
  };
}
