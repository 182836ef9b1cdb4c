// What a supervisor does from the wallboard: the conversations behind a count (a queue's waiting or in
// progress, an agent's open ones), each to view read-only, reassign or transfer, take over, or whisper to
// its agent; and an agent's status set for them. The read-only view reads messages and notes and never
// marks anything read (it never calls POST /read).

import * as api from "../api.js";
import { el, toast } from "../dom.js";
import { formatDateTime, formatDuration, t } from "../i18n.js";
import { describeError, openDialog } from "./dialogs.js";

function contactName(conversation) {
  const contact = conversation.contact;
  return contact.name || contact.profile_name || `+${contact.wa_id}`;
}

export function createBoardActions({ store }) {
  function agentName(id) {
    return store.state.agents.find((agent) => agent.user_id === id)?.name ?? t("wallboard.someone");
  }

  async function listConversations({ queue, agent, status }) {
    const query = { status, limit: 50, sort: status === "waiting" ? "enqueued_at" : undefined };
    if (queue) query.queue_id = queue.queue_id;
    if (agent) query.agent_id = agent.user_id;
    const title = queue
      ? t(status === "waiting" ? "wallboard.list.waitingIn" : "wallboard.list.inProgressIn", { name: queue.name })
      : t("wallboard.list.openOf", { name: agent.name });
    const list = el("ul", { class: "board-conversations", "aria-label": title });
    const dialog = openDialog({ title, body: [list], wide: true });
    try {
      const page = await api.get("/api/conversations", query);
      const items = page.items;
      if (!items.length) list.append(el("li", { class: "muted", text: t("wallboard.list.none") }));
      for (const conversation of items) list.append(conversationItem(conversation, dialog));
    } catch (error) {
      dialog.showError(describeError(error));
    }
  }

  function conversationItem(conversation, dialog) {
    const name = contactName(conversation);
    const waited = (Date.now() - Date.parse(conversation.enqueued_at)) / 1000;
    const detail = conversation.status === "waiting"
      ? t("wallboard.list.waitingFor", { duration: formatDuration(waited) })
      : t("wallboard.list.with", { name: agentName(conversation.agent_id) });
    const button = (label, action) => el("button", { type: "button", class: "secondary", text: label, "aria-label": `${label}: ${name}`, onclick: () => { dialog.close(); action(conversation); } });
    return el("li", { dataset: { id: conversation.id } },
      el("span", { class: "board-conversation-name", text: name }), " ", el("span", { class: "muted", text: detail }),
      el("span", { class: "board-conversation-actions" },
        button(t("wallboard.action.view"), view),
        button(t("wallboard.action.transfer"), transfer),
        button(t("wallboard.action.takeOver"), takeOver),
        conversation.status === "assigned" ? button(t("wallboard.action.whisper"), whisper) : null));
  }

  // Messages and notes, oldest first; nothing is marked read.
  async function view(conversation) {
    const log = el("ol", { class: "board-view", "aria-label": t("wallboard.view.log") });
    const dialog = openDialog({ title: t("wallboard.view.title", { name: contactName(conversation) }), body: [el("p", { class: "muted", text: t("wallboard.view.silent") }), log], wide: true });
    try {
      const [messages, notes] = await Promise.all([
        api.get(`/api/conversations/${conversation.id}/messages`, { limit: 100 }),
        api.getAll(`/api/conversations/${conversation.id}/notes`),
      ]);
      const entries = [
        ...messages.items.map((message) => ({ at: message.created_at, node: messageNode(message) })),
        ...notes.items.map((note) => ({ at: note.created_at, node: noteNode(note) })),
      ].sort((a, b) => a.at.localeCompare(b.at));
      if (!entries.length) log.append(el("li", { class: "muted", text: t("wallboard.list.none") }));
      for (const entry of entries) log.append(entry.node);
    } catch (error) {
      dialog.showError(describeError(error));
    }
  }

  function messageNode(message) {
    const who = message.direction === "inbound" ? t("wallboard.view.customer") : message.author_id ? agentName(message.author_id) : t("wallboard.view.automatic");
    return el("li", { class: `board-message ${message.direction}` },
      el("span", { class: "meta", text: `${who} · ${formatDateTime(message.created_at)}` }),
      el("p", { text: message.text ?? t("wallboard.view.media", { kind: message.kind }) }));
  }

  function noteNode(note) {
    const label = note.whisper ? t("wallboard.view.whisperBy", { name: note.author_name }) : t("wallboard.view.noteBy", { name: note.author_name });
    return el("li", { class: `board-message note${note.whisper ? " whisper" : ""}` },
      el("span", { class: "meta", text: `${label} · ${formatDateTime(note.created_at)}` }),
      el("p", { text: note.body }));
  }

  // Reassign to a person or transfer to a queue, as the console's transfer dialog does.
  function transfer(conversation) {
    const target = el("select", { id: "board-transfer-target", required: true });
    let dialog = null;
    api.get(`/api/conversations/${conversation.id}/transfer-targets`).then((targets) => {
      target.append(
        el("optgroup", { label: t("transfer.agents") }, ...targets.agents.map((a) =>
          el("option", { value: `agent:${a.id}`, text: t("transfer.agentOption", { name: a.name, status: t(`presence.${a.status}`), load: a.open_conversations, capacity: a.capacity }) }))),
        el("optgroup", { label: t("transfer.queues") }, ...targets.queues.map((q) =>
          el("option", { value: `queue:${q.id}`, text: t("transfer.queueOption", { name: q.name, count: q.waiting }) }))));
    }).catch((error) => dialog?.showError(describeError(error)));
    dialog = openDialog({
      title: t("wallboard.transfer.title", { name: contactName(conversation) }),
      body: [el("label", { for: "board-transfer-target", text: t("transfer.to") }), target],
      submit: t("transfer.submit"),
      async onSubmit() {
        const [kind, targetId] = target.value.split(":");
        await api.post(`/api/conversations/${conversation.id}/transfer`, kind === "agent" ? { agent_id: targetId, force: true } : { queue_id: targetId });
        toast(t("wallboard.transfer.done"));
      },
    });
  }

  // The supervisor holds it (over their capacity if need be) and it opens in their console.
  async function takeOver(conversation) {
    try {
      await api.post(`/api/conversations/${conversation.id}/assign`, { force: true });
      window.location.assign(`/?conversation=${encodeURIComponent(conversation.id)}`);
    } catch (error) {
      toast(describeError(error));
    }
  }

  function whisper(conversation) {
    const body = el("textarea", { id: "board-whisper", rows: 4, maxlength: 10000, required: true });
    openDialog({
      title: t("wallboard.whisper.title", { name: agentName(conversation.agent_id) }),
      body: [el("p", { class: "muted", text: t("wallboard.whisper.explain") }), el("label", { for: "board-whisper", text: t("wallboard.whisper.label") }), body],
      submit: t("wallboard.whisper.submit"),
      async onSubmit() {
        await api.post(`/api/conversations/${conversation.id}/notes`, { body: body.value, whisper: true });
        toast(t("wallboard.whisper.sent"));
      },
    });
  }

  async function setStatus(agent, status, undo) {
    try {
      await api.put(`/api/agents/${agent.user_id}/status`, { status });
      toast(t("wallboard.agent.statusSet", { name: agent.name, status: t(`presence.${status}`) }));
    } catch (error) {
      toast(describeError(error));
      undo();
    }
  }

  return { listConversations, setStatus };
}
