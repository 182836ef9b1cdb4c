// The conversation list: tabs (Mine; Waiting in my queues; All for supervisors and admins, with filters),
// a search over names, numbers and message text, and the conversations with the customer's name, the last
// message, a waiting time that ticks and the unread count. It renders from the store, so events move,
// add and drop conversations without a reload.

import * as api from "../api.js";
import { byId, clear, el, setText } from "../dom.js";
import { formatDuration, formatTime, t } from "../i18n.js";
import { TABS, instant, isStaff } from "../store.js";
import { describeError } from "./dialogs.js";

// What a kind of message is called; one WhatsApp adds later is "a message that cannot be shown here".
export function kindName(kind) {
  const key = `kind.${kind}`;
  const name = t(key);
  return name === key ? t("kind.unsupported") : name;
}

export function contactName(contact) {
  // A customer with a username may come without a number (WhatsApp's business-scoped ids, 2026).
  if (contact.name || contact.profile_name) return contact.name || contact.profile_name;
  if (contact.group_id) return t("wa.group");
  return contact.username ? `@${contact.username}` : `+${contact.wa_id}`;
}

export function previewOf(message) {
  if (!message) return "";
  const text = message.text ? message.text.replace(/\s+/g, " ") : kindName(message.kind);
  return message.direction === "outbound" ? t("list.you", { text }) : text;
}

export function mountList({ store, ui }) {
  const me = store.state.me;
  const staff = isStaff(me);
  const tabs = byId("tabs");
  const list = byId("conversation-list");
  const empty = byId("list-empty");
  const more = byId("list-more");
  const search = byId("search");
  const filters = byId("filters");
  const panel = byId("list-panel");
  const loadError = byId("list-error");
  let results = null; // a search's conversations, or null when not searching
  let searchError = null;
  let searchTimer = null;

  byId("list-retry").addEventListener("click", () => store.loadSnapshot().catch(() => null));

  const names = Object.keys(TABS).filter((tab) => staff || !TABS[tab].staffOnly);
  const tabButtons = new Map(
    names.map((tab) => {
      const button = el("button", { type: "button", role: "tab", id: `tab-${tab}`, "aria-controls": "list-panel" });
      button.addEventListener("click", () => {
        search.value = "";
        results = null;
        ui.set({ tab });
      });
      tabs.append(button);
      return [tab, button];
    }),
  );
  tabs.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const index = names.indexOf(ui.tab) + (event.key === "ArrowRight" ? 1 : -1);
    const tab = names[(index + names.length) % names.length];
    ui.set({ tab });
    tabButtons.get(tab).focus();
  });

  if (staff) {
    filters.hidden = false;
    const queue = el("select", { id: "filter-queue" });
    const agent = el("select", { id: "filter-agent" });
    const status = el("select", { id: "filter-status" });
    const fill = () => {
      const keep = [queue.value, agent.value, status.value];
      clear(queue).append(el("option", { value: "", text: t("filter.anyQueue") }), ...[...store.state.queues.values()].map((q) => el("option", { value: q.id, text: q.name })));
      clear(agent).append(el("option", { value: "", text: t("filter.anyAgent") }), ...[...store.state.presence.values()].filter((p) => !p.disabled).map((p) => el("option", { value: p.id, text: p.name })));
      clear(status).append(el("option", { value: "", text: t("filter.anyStatus") }), ...["waiting", "assigned", "closed"].map((s) => el("option", { value: s, text: t(`status.${s}`) })));
      [queue.value, agent.value, status.value] = keep;
    };
    filters.append(
      el("label", { for: "filter-queue", text: t("filter.queue") }), queue,
      el("label", { for: "filter-agent", text: t("filter.agent") }), agent,
      el("label", { for: "filter-status", text: t("filter.status") }), status,
    );
    const apply = () =>
      store
        .setFilters({ queue_id: queue.value || null, agent_id: agent.value || null, status: status.value || null })
        .catch((error) => {
          searchError = describeError(error);
          render();
        });
    for (const select of [queue, agent, status]) select.addEventListener("change", apply);
    store.subscribe((change) => {
      if (change.type === "snapshot" || change.type === "queues") fill();
    });
  }

  search.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(runSearch, 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      search.value = "";
      runSearch();
    }
  });

  async function runSearch() {
    const q = search.value.trim();
    searchError = null;
    if (!q) {
      results = null;
      render();
      return;
    }
    try {
      const { data } = await api.getPage("/api/conversations", { q, limit: 50, sort: "-last_message_at" });
      if (search.value.trim() !== q) return;
      results = data.items;
    } catch (error) {
      results = [];
      searchError = describeError(error);
    }
    render();
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await store.loadMore(ui.tab);
    } catch (error) {
      searchError = describeError(error);
      render();
    } finally {
      more.disabled = false;
    }
  });

  async function take(conversation, button) {
    button.disabled = true;
    try {
      store.put(await api.post(`/api/conversations/${conversation.id}/assign`, {}));
      ui.set({ tab: "mine", openId: conversation.id });
    } catch (error) {
      button.disabled = false;
      const note = button.parentElement.querySelector(".item-problem") ?? el("p", { class: "item-problem", role: "alert" });
      note.textContent = describeError(error);
      button.parentElement.append(note);
    }
  }

  function item(conversation, match) {
    const unread = conversation.unread_count ?? 0;
    const waiting = conversation.status === "waiting";
    const since = waiting ? conversation.enqueued_at : conversation.last_message?.created_at ?? conversation.last_message_at;
    const open = el(
      "button",
      { type: "button", class: "item-open", "aria-current": ui.openId === conversation.id ? "true" : "false", dataset: { id: conversation.id } },
      el("span", { class: "item-top" },
        el("span", { class: "item-name", text: contactName(conversation.contact) }),
        el("span", { class: waiting ? "item-time waiting" : "item-time", dataset: { since: since ?? "", ticking: waiting ? "1" : "" } }),
      ),
      el("span", { class: "item-bottom" },
        el("span", { class: "item-preview", text: match ? match.text : previewOf(conversation.last_message) }),
        unread ? el("span", { class: "badge", "aria-label": t("list.unread", { count: unread }), text: String(unread) }) : null,
      ),
    );
    open.addEventListener("click", () => ui.set({ openId: conversation.id, focusMessage: match?.message_id ?? null }));
    const row = el("li", { class: unread ? "item unread" : "item", dataset: { id: conversation.id } }, open);
    const canTake = waiting && (staff || me.agents_can_take_waiting);
    if (canTake && !results) {
      const button = el("button", { type: "button", class: "take secondary", text: t("list.take"), "aria-label": t("list.takeNamed", { name: contactName(conversation.contact) }) });
      button.addEventListener("click", () => take(conversation, button));
      row.append(button);
    }
    return row;
  }

  function tick() {
    const now = Date.now();
    for (const node of list.querySelectorAll("[data-since]")) {
      const since = node.dataset.since;
      if (!since) continue;
      setText(node, node.dataset.ticking ? formatDuration((now - instant(since) / 1000) / 1000) : formatTime(since));
    }
  }

  function render() {
    for (const [tab, button] of tabButtons) {
      const count = tab === "all" ? "" : ` (${store.view(tab).length}${store.hasMore(tab) ? "+" : ""})`;
      button.textContent = t(`tab.${tab}`) + count;
      button.setAttribute("aria-selected", String(!results && tab === ui.tab));
      button.tabIndex = tab === ui.tab ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", `tab-${ui.tab}`);
    loadError.hidden = !store.state.error;
    const conversations = results ?? store.view(ui.tab);
    // Redrawing must not lose the person's place: the focused row (or its Take button) gets focus back.
    const active = document.activeElement;
    const focused = active?.closest?.("#conversation-list") ? { id: active.closest(".item")?.dataset.id, take: active.classList.contains("take") } : null;
    clear(list).append(...conversations.map((c) => item(c, results ? c.match : null)));
    if (focused?.id) list.querySelector(`.item[data-id="${CSS.escape(focused.id)}"] ${focused.take ? ".take" : ".item-open"}`)?.focus();
    empty.hidden = conversations.length > 0 && !searchError;
    if (searchError) setText(empty, searchError);
    else if (!conversations.length && !results) setText(empty, t(store.state.loading ? "console.loading" : store.state.error ? "console.loadFailed" : `empty.${ui.tab}`));
    else if (!conversations.length) setText(empty, t("empty.search"));
    more.hidden = Boolean(results) || !store.hasMore(ui.tab);
    tick();
  }

  store.subscribe((change) => {
    if (change.type !== "history" && change.type !== "note" && change.type !== "presence") render();
    if (change.type === "snapshot") searchError = null;
  });
  ui.on((changes) => {
    if ("tab" in changes || "openId" in changes) render();
  });
  window.setInterval(tick, 1000);
  render();

  return {
    // The conversation above or below the open one, for the keyboard.
    neighbour(step) {
      const ids = [...list.querySelectorAll(".item-open")].map((node) => node.dataset.id);
      if (!ids.length) return null;
      const index = ids.indexOf(ui.openId);
      return ids[Math.min(ids.length - 1, Math.max(0, index === -1 ? 0 : index + step))];
    },
    focusSearch() {
      search.focus();
    },
  };
}
